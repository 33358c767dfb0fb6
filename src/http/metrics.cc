#include "http/metrics.h"

#include <cstdio>

#include "core/log.h"

namespace caas::http {

size_t Metrics::RegisterRoute(std::string method, std::string pattern) {
  auto& s = series_.emplace_back();
  s.method = std::move(method);
  s.pattern = std::move(pattern);
  return series_.size() - 1;
}

void Metrics::Observe(size_t route, int status, int64_t duration_us) {
  Series& s = series_[route];
  const int cls = status / 100;
  if (cls >= 1 && cls <= 5)
    s.by_class[static_cast<size_t>(cls - 1)].fetch_add(1, std::memory_order_relaxed);
  size_t b = 0;
  while (b < kBucketsUs.size() && duration_us > kBucketsUs[b]) ++b;
  s.buckets[b].fetch_add(1, std::memory_order_relaxed);
  s.sum_us.fetch_add(static_cast<uint64_t>(duration_us), std::memory_order_relaxed);
}

std::string Metrics::Render() const {
  std::string out;
  out += "# HELP caas_http_requests_total HTTP requests answered, by route and status class.\n";
  out += "# TYPE caas_http_requests_total counter\n";
  for (const auto& s : series_) {
    const std::string labels = "method=" + JsonQuote(s.method) + ",route=" + JsonQuote(s.pattern);
    for (size_t c = 0; c < s.by_class.size(); ++c) {
      out += "caas_http_requests_total{" + labels + ",code=\"" + std::to_string(c + 1) + "xx\"} " +
             std::to_string(s.by_class[c].load(std::memory_order_relaxed)) + "\n";
    }
  }
  out += "# HELP caas_http_request_duration_seconds Time from a request's arrival to its answer.\n";
  out += "# TYPE caas_http_request_duration_seconds histogram\n";
  for (const auto& s : series_) {
    const std::string labels = "method=" + JsonQuote(s.method) + ",route=" + JsonQuote(s.pattern);
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= kBucketsUs.size(); ++b) {
      cumulative += s.buckets[b].load(std::memory_order_relaxed);
      std::string le = "+Inf";
      if (b < kBucketsUs.size()) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", static_cast<double>(kBucketsUs[b]) / 1e6);
        le = buf;
      }
      out += "caas_http_request_duration_seconds_bucket{" + labels + ",le=\"" + le + "\"} " +
             std::to_string(cumulative) + "\n";
    }
    char sum[64];
    std::snprintf(sum, sizeof sum, "%.6f",
                  static_cast<double>(s.sum_us.load(std::memory_order_relaxed)) / 1e6);
    out += "caas_http_request_duration_seconds_sum{" + labels + "} " + sum + "\n";
    out += "caas_http_request_duration_seconds_count{" + labels + "} " +
           std::to_string(cumulative) + "\n";
  }
  return out;
}

}  // namespace caas::http
