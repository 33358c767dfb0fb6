// Request counts and latency histograms per route, in the Prometheus text
// exposition format. Routes are registered at start; observation is lock-free.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <string>

namespace caas::http {

class Metrics {
 public:
  // Upper bounds of the latency buckets, in microseconds.
  static constexpr std::array<int64_t, 14> kBucketsUs = {100,    250,    500,     1000,   2500,
                                                         5000,   10000,  25000,   50000,  100000,
                                                         250000, 500000, 1000000, 2500000};

  // Not thread-safe: call before serving.
  size_t RegisterRoute(std::string method, std::string pattern);
  // Thread-safe.
  void Observe(size_t route, int status, int64_t duration_us);
  std::string Render() const;

 private:
  struct Series {
    std::string method;
    std::string pattern;
    std::array<std::atomic<uint64_t>, 5> by_class{};  // 1xx..5xx
    std::array<std::atomic<uint64_t>, kBucketsUs.size() + 1> buckets{};
    std::atomic<uint64_t> sum_us{0};
  };
  std::deque<Series> series_;  // deque: stable addresses, atomics never move
};

}  // namespace caas::http
