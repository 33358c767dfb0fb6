// The quota view of one tenant: the counters of its current billing period
// and the limits of the terms in force, published by the one thread that
// applies events (under the tenant's lock) and read without any lock by quota
// checks, through a sequence lock.
//
// The view is valid for a window of time: the part of the period in which
// the same terms segment is in force. A reader outside the window asks the
// engine to publish it again.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace caas::metering {

class QuotaView {
 public:
  static constexpr int64_t kNone = -1;  // no limit / nothing included

  struct Snapshot {
    int64_t period_start = 0, period_end = 0;
    int64_t used = 0;
    int64_t limit = kNone;
    int64_t included = kNone;
  };
  struct Terms {
    std::array<int64_t, 3> limit{kNone, kNone, kNone};  // messages, api_calls, mau
    std::array<int64_t, 3> included{kNone, kNone, kNone};
  };

  // Writer side (one writer at a time: the caller holds the tenant's lock).
  void Publish(int64_t period_start, int64_t period_end, int64_t window_start, int64_t window_end,
               const std::array<int64_t, 3>& used, const Terms& terms);
  void PublishUsed(const std::array<int64_t, 3>& used);
  void Invalidate();
  int64_t period_start() const { return p_start_.load(std::memory_order_relaxed); }

  // Reader side: false when `now_us` is outside the published window.
  bool Read(int metric, int64_t now_us, Snapshot* out) const;

 private:
  // Release stores pair with acquire loads in Read, so a reader that sees any
  // new value also sees the odd sequence number (no standalone fences, which
  // ThreadSanitizer cannot check). Free on x86 (plain moves).
  void BeginWrite() { seq_.fetch_add(1, std::memory_order_acq_rel); }
  void EndWrite() { seq_.fetch_add(1, std::memory_order_release); }

  std::atomic<uint64_t> seq_{0};
  std::atomic<int64_t> p_start_{0}, p_end_{0}, w_start_{0}, w_end_{0};
  std::array<std::atomic<int64_t>, 3> used_{};
  std::array<std::atomic<int64_t>, 3> limit_{};
  std::array<std::atomic<int64_t>, 3> included_{};
};

inline void QuotaView::Publish(int64_t period_start, int64_t period_end, int64_t window_start,
                               int64_t window_end, const std::array<int64_t, 3>& used,
                               const Terms& terms) {
  BeginWrite();
  p_start_.store(period_start, std::memory_order_release);
  p_end_.store(period_end, std::memory_order_release);
  w_start_.store(window_start, std::memory_order_release);
  w_end_.store(window_end, std::memory_order_release);
  for (int i = 0; i < 3; ++i) {
    used_[i].store(used[i], std::memory_order_release);
    limit_[i].store(terms.limit[i], std::memory_order_release);
    included_[i].store(terms.included[i], std::memory_order_release);
  }
  EndWrite();
}

inline void QuotaView::PublishUsed(const std::array<int64_t, 3>& used) {
  BeginWrite();
  for (int i = 0; i < 3; ++i) used_[i].store(used[i], std::memory_order_release);
  EndWrite();
}

inline void QuotaView::Invalidate() {
  BeginWrite();
  w_end_.store(0, std::memory_order_release);
  EndWrite();
}

inline bool QuotaView::Read(int metric, int64_t now_us, Snapshot* out) const {
  for (;;) {
    const uint64_t s1 = seq_.load(std::memory_order_acquire);
    const int64_t ws = w_start_.load(std::memory_order_acquire);
    const int64_t we = w_end_.load(std::memory_order_acquire);
    out->period_start = p_start_.load(std::memory_order_acquire);
    out->period_end = p_end_.load(std::memory_order_acquire);
    out->used = used_[metric].load(std::memory_order_acquire);
    out->limit = limit_[metric].load(std::memory_order_acquire);
    out->included = included_[metric].load(std::memory_order_acquire);
    const uint64_t s2 = seq_.load(std::memory_order_relaxed);
    if (s1 != s2 || (s1 & 1)) continue;
    return now_us >= ws && now_us < we;
  }
}

}  // namespace caas::metering
