// Load generator for metering over real HTTP on loopback.
//
//   metering_load ingest PORT SECONDS CONNECTIONS BATCH KEY TENANT
//     Closed loop: each connection sends batches of BATCH distinct CloudEvents
//     (application/cloudevents-batch+json) back to back; checks that every
//     event is answered "accepted"; prints events/s and request latency.
//   metering_load visibility PORT SAMPLES KEY TENANT
//     Sends one event, then asks /v1/quota/check until the event is counted;
//     prints the p50/p99 time from sending the event to seeing it counted.
#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

std::string NowRfc3339() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

void PutDigits(char* p, uint64_t v, int width) {
  for (int i = width - 1; i >= 0; --i) {
    p[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
}

double Pct(std::vector<uint32_t>& v, double p) {
  if (v.empty()) return 0;
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))] / 1000.0;
}

struct Conn {
  boost::asio::io_context io;
  beast::tcp_stream stream{io};
  beast::flat_buffer buf;
  explicit Conn(const std::string& port) {
    tcp::resolver resolver(io);
    stream.connect(resolver.resolve("127.0.0.1", port));
    stream.socket().set_option(tcp::no_delay(true));
  }
  bhttp::response<bhttp::string_body> Send(const bhttp::request<bhttp::string_body>& req) {
    bhttp::write(stream, req);
    bhttp::response<bhttp::string_body> res;
    bhttp::read(stream, buf, res);
    return res;
  }
};

int Ingest(const std::string& port, int seconds, int conns, int batch, const std::string& key,
           const std::string& tenant) {
  const std::string time = NowRfc3339();
  const uint64_t run = static_cast<uint64_t>(std::time(nullptr)) % 1000000;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> errors{0}, accepted{0};
  std::mutex mu;
  std::vector<uint32_t> all_us;
  std::vector<std::thread> threads;
  for (int c = 0; c < conns; ++c) {
    threads.emplace_back([&, c] {
      std::vector<uint32_t> lat;
      try {
        Conn conn(port);
        // One body, reused: the 12 counter digits of every id are rewritten
        // before each send, so every event is new.
        std::string body = "[";
        std::vector<size_t> digit_at;
        static const char* kTypes[] = {"message.sent", "api.call", "message.sent", "user.active"};
        for (int i = 0; i < batch; ++i) {
          if (i) body += ',';
          body += R"({"specversion":"1.0","id":"b)";
          char prefix[32];
          std::snprintf(prefix, sizeof prefix, "%06llu-%03d-", static_cast<unsigned long long>(run),
                        c);
          body += prefix;
          digit_at.push_back(body.size());
          body += "000000000000";
          body += R"(","source":"/bench","type":")";
          body += kTypes[i % 4];
          body += R"(","time":")" + time + R"(","tenant":")" + tenant + '"';
          if (i % 4 == 3) body += R"(,"subject":"user-)" + std::to_string(i % 997) + '"';
          if (i % 4 == 2) body += R"(,"data":{"quantity":3})";
          body += '}';
        }
        body += ']';
        bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/v1/events", 11};
        req.set(bhttp::field::host, "127.0.0.1");
        req.set(bhttp::field::authorization, "Bearer " + key);
        req.set(bhttp::field::content_type, "application/cloudevents-batch+json");
        req.keep_alive(true);
        req.body() = body;
        req.prepare_payload();
        const std::string want = "{\"accepted\":" + std::to_string(batch) + ",";
        uint64_t n = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          char* p = req.body().data();
          for (size_t i = 0; i < digit_at.size(); ++i) PutDigits(p + digit_at[i], n++, 12);
          const auto t0 = Clock::now();
          auto res = conn.Send(req);
          lat.push_back(static_cast<uint32_t>(
              std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count()));
          if (res.result_int() != 200 || res.body().compare(0, want.size(), want) != 0) {
            if (errors.fetch_add(1) == 0) {
              std::fprintf(stderr, "unexpected answer %d: %.300s\n", res.result_int(),
                           res.body().c_str());
            }
          } else {
            accepted.fetch_add(static_cast<uint64_t>(batch));
          }
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "connection failed: %s\n", e.what());
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
  std::printf(
      "POST /v1/events: %.0f events/s accepted (batches of %d, %.0f req/s), request p50 %.2f ms, "
      "p99 %.2f ms, errors %llu (%d connections, %d s)\n",
      static_cast<double>(accepted.load()) / seconds, batch,
      static_cast<double>(all_us.size()) / seconds, Pct(all_us, 0.5), Pct(all_us, 0.99),
      static_cast<unsigned long long>(errors.load()), conns, seconds);
  return errors.load() == 0 ? 0 : 1;
}

int Visibility(const std::string& port, int samples, const std::string& key,
               const std::string& tenant) {
  Conn ingest(port), check(port);
  const std::string time = NowRfc3339();
  const uint64_t run = static_cast<uint64_t>(std::time(nullptr));
  bhttp::request<bhttp::string_body> q{bhttp::verb::post, "/v1/quota/check", 11};
  q.set(bhttp::field::host, "127.0.0.1");
  q.set(bhttp::field::authorization, "Bearer " + key);
  q.set(bhttp::field::content_type, "application/json");
  q.body() = R"({"tenant":")" + tenant + R"(","metric":"api_calls","quantity":0})";
  q.prepare_payload();
  auto used = [&] {
    auto res = check.Send(q);
    auto at = res.body().find("\"used\":");
    return at == std::string::npos ? -1L : std::atol(res.body().c_str() + at + 7);
  };
  std::vector<uint32_t> lat;
  long before = used();
  for (int i = 0; i < samples; ++i) {
    bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/v1/events", 11};
    req.set(bhttp::field::host, "127.0.0.1");
    req.set(bhttp::field::authorization, "Bearer " + key);
    req.set(bhttp::field::content_type, "application/cloudevents+json");
    req.body() = R"({"specversion":"1.0","id":"vis-)" + std::to_string(run) + "-" +
                 std::to_string(i) + R"(","source":"/bench","type":"api.call","time":")" + time +
                 R"(","tenant":")" + tenant + R"("})";
    req.prepare_payload();
    const auto t0 = Clock::now();
    auto res = ingest.Send(req);
    if (res.result_int() != 200) {
      std::fprintf(stderr, "ingest failed: %s\n", res.body().c_str());
      return 1;
    }
    while (used() <= before) {
      if (Clock::now() - t0 > std::chrono::seconds(5)) {
        std::fprintf(stderr, "event not visible after 5 s\n");
        return 1;
      }
    }
    ++before;
    lat.push_back(static_cast<uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count()));
  }
  std::sort(lat.begin(), lat.end());
  std::printf("event to visible in quota check: p50 %.2f ms, p99 %.2f ms (%d samples)\n",
              Pct(lat, 0.5), Pct(lat, 0.99), samples);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "ingest" && argc == 8) {
    return Ingest(argv[2], std::clamp(std::atoi(argv[3]), 1, 300),
                  std::clamp(std::atoi(argv[4]), 1, 256), std::clamp(std::atoi(argv[5]), 1, 10000),
                  argv[6], argv[7]);
  }
  if (mode == "visibility" && argc == 6) {
    return Visibility(argv[2], std::clamp(std::atoi(argv[3]), 1, 100000), argv[4], argv[5]);
  }
  std::fprintf(stderr,
               "usage: metering_load ingest PORT SECONDS CONNECTIONS BATCH KEY TENANT\n"
               "       metering_load visibility PORT SAMPLES KEY TENANT\n");
  return 2;
}
