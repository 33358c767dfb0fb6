// A closed-loop HTTP/1.1 load generator in the style of wrk: C keep-alive
// connections, each sending the same request back to back (one in flight per
// connection, no pipelining) for D seconds; prints requests/s and latency
// percentiles. One thread drives every connection with epoll and raw
// sockets, so that the generator costs the cores it shares with the server
// as little as possible. Loopback only.
//
//   http_load PORT SECONDS CONNECTIONS METHOD PATH [BEARER_KEY] [BODY]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using Clock = std::chrono::steady_clock;

namespace {

struct Conn {
  int fd = -1;
  std::string in;
  Clock::time_point t0;
};

// Bytes of a complete response at the start of `in`, or 0 if incomplete.
size_t ResponseLength(const std::string& in, int* status) {
  const size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  if (in.size() > 12) *status = std::atoi(in.c_str() + 9);
  size_t length = 0;
  for (size_t at = in.find('\n'); at != std::string::npos && at < end; at = in.find('\n', at + 1)) {
    if (strncasecmp(in.c_str() + at + 1, "content-length:", 15) == 0) {
      length = std::strtoul(in.c_str() + at + 16, nullptr, 10);
    }
  }
  return in.size() >= end + 4 + length ? end + 4 + length : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: http_load PORT SECONDS CONNECTIONS METHOD PATH [KEY] [BODY]\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const int seconds = std::clamp(std::atoi(argv[2]), 1, 120);
  const int conns = std::clamp(std::atoi(argv[3]), 1, 1024);
  const std::string method = argv[4], path = argv[5];
  const std::string key = argc > 6 ? argv[6] : "";
  const std::string body = argc > 7 ? argv[7] : "";
  std::string request = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (!key.empty()) request += "Authorization: Bearer " + key + "\r\n";
  if (!body.empty() || method == "POST") {
    request +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n" + body;

  const int ep = epoll_create1(0);
  std::vector<Conn> cs(static_cast<size_t>(conns));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (size_t i = 0; i < cs.size(); ++i) {
    cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(cs[i].fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      std::perror("connect");
      return 1;
    }
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.u64 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &e);
  }
  uint64_t errors = 0;
  std::vector<uint32_t> lat;
  lat.reserve(1 << 22);
  auto send = [&](Conn& c) {
    c.t0 = Clock::now();
    if (write(c.fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
      ++errors;  // a short write of a small request on loopback: count it, stop this connection
      return false;
    }
    return true;
  };
  for (auto& c : cs) send(c);
  const auto warm_until = Clock::now() + std::chrono::milliseconds(250);
  const auto until = warm_until + std::chrono::seconds(seconds);
  bool measuring = false;
  std::vector<epoll_event> events(cs.size());
  char buf[64 << 10];
  int shown = 0;
  while (true) {
    const auto now = Clock::now();
    if (!measuring && now >= warm_until) {
      measuring = true;
      lat.clear();
    }
    if (now >= until) break;
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    for (int k = 0; k < n; ++k) {
      Conn& c = cs[events[static_cast<size_t>(k)].data.u64];
      const ssize_t got = read(c.fd, buf, sizeof buf);
      if (got <= 0) {
        ++errors;
        epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        continue;
      }
      c.in.append(buf, static_cast<size_t>(got));
      int status = 0;
      const size_t len = ResponseLength(c.in, &status);
      if (len == 0) continue;
      if (status >= 400 && shown++ == 0) {
        std::fprintf(stderr, "answer %d: %.300s\n", status, c.in.c_str());
      }
      if (status >= 400) ++errors;
      c.in.erase(0, len);
      lat.push_back(static_cast<uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - c.t0).count()));
      send(c);
    }
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) {
    if (lat.empty()) return 0.0;
    return lat[std::min(lat.size() - 1, static_cast<size_t>(p * lat.size()))] / 1000.0;
  };
  std::printf("%s %s: %.0f req/s, p50 %.2f ms, p99 %.2f ms, errors %llu (%d connections, %d s)\n",
              method.c_str(), path.c_str(), static_cast<double>(lat.size()) / seconds, pct(0.5),
              pct(0.99), static_cast<unsigned long long>(errors), conns, seconds);
  for (auto& c : cs) close(c.fd);
  return errors == 0 && !lat.empty() ? 0 : 1;
}
