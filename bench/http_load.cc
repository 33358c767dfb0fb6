// A closed-loop HTTP load generator: C connections on keep-alive, each sending
// the same request back to back for D seconds; prints requests/s and latency
// percentiles. Loopback only (the target must be 127.0.0.1 or ::1).
//
//   http_load PORT SECONDS CONNECTIONS METHOD PATH [BEARER_KEY] [BODY]
#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: http_load PORT SECONDS CONNECTIONS METHOD PATH [KEY] [BODY]\n");
    return 2;
  }
  const std::string port = argv[1];
  const int seconds = std::clamp(std::atoi(argv[2]), 1, 120);
  const int conns = std::clamp(std::atoi(argv[3]), 1, 256);
  const std::string method = argv[4], path = argv[5];
  const std::string key = argc > 6 ? argv[6] : "";
  const std::string body = argc > 7 ? argv[7] : "";
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> errors{0};
  std::mutex mu;
  std::vector<uint32_t> all_us;  // guarded by mu
  std::vector<std::thread> threads;
  for (int c = 0; c < conns; ++c) {
    threads.emplace_back([&] {
      std::vector<uint32_t> lat;
      try {
        boost::asio::io_context io;
        tcp::resolver resolver(io);
        beast::tcp_stream stream(io);
        stream.connect(resolver.resolve("127.0.0.1", port));
        stream.socket().set_option(tcp::no_delay(true));
        bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), path, 11};
        req.set(bhttp::field::host, "127.0.0.1");
        if (!key.empty()) req.set(bhttp::field::authorization, "Bearer " + key);
        if (!body.empty()) {
          req.set(bhttp::field::content_type, "application/json");
          req.body() = body;
        }
        req.keep_alive(true);
        req.prepare_payload();
        beast::flat_buffer buf;
        while (!stop.load(std::memory_order_relaxed)) {
          const auto t0 = std::chrono::steady_clock::now();
          bhttp::write(stream, req);
          bhttp::response<bhttp::string_body> res;
          bhttp::read(stream, buf, res);
          const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::steady_clock::now() - t0)
                              .count();
          if (res.result_int() >= 400) errors.fetch_add(1);
          lat.push_back(static_cast<uint32_t>(us));
        }
      } catch (const std::exception&) {
        errors.fetch_add(1);
      }
      std::lock_guard lock(mu);
      all_us.insert(all_us.end(), lat.begin(), lat.end());
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  std::sort(all_us.begin(), all_us.end());
  auto pct = [&](double p) {
    if (all_us.empty()) return 0.0;
    return all_us[std::min(all_us.size() - 1, static_cast<size_t>(p * all_us.size()))] / 1000.0;
  };
  std::printf("%s %s: %.0f req/s, p50 %.2f ms, p99 %.2f ms, errors %llu (%d connections, %d s)\n",
              method.c_str(), path.c_str(), static_cast<double>(all_us.size()) / seconds, pct(0.5),
              pct(0.99), static_cast<unsigned long long>(errors.load()), conns, seconds);
  return errors.load() == 0 ? 0 : 1;
}
