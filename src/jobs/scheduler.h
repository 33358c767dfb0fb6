// The one scheduler: everything that happens later (jobs, subscription
// transitions, outbox relays, record expiry) is a due source, found by an
// ordered index query on its due time, never by scanning every document.
//
// On the system clock, worker threads sleep until the earliest due instant
// (or a Wake(), or `idle_wait` at most) and run what fell due. On a manual
// clock nothing runs by itself: RunDue() runs everything due up to an
// instant, in time order across sources, each item at its own instant.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"

namespace caas::jobs {

class Scheduler {
 public:
  struct Source {
    std::string name;
    // The earliest instant something is due; nullopt when nothing is.
    std::function<std::optional<Instant>()> next_due;
    // Runs the earliest item due at or before `until`; false when none was.
    std::function<bool(Instant until)> run_one;
  };

  explicit Scheduler(const Clock& clock,
                     std::chrono::milliseconds idle_wait = std::chrono::seconds(5))
      : clock_(clock), idle_wait_(idle_wait) {}
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Set up before Start() or RunDue().
  void Add(Source source);

  // Runs, in time order across sources, everything due at or before
  // `until`; `before_each(due)` is called first for each (a manual clock
  // moves there). Returns how many items ran.
  int RunDue(Instant until, const std::function<void(Instant)>& before_each);

  // System clock: `workers` threads run what falls due until Stop().
  void Start(int workers);
  // Something new may be due sooner: the workers look again.
  void Wake();
  // Stops the workers after the items they are running (a bounded wait).
  void Stop();

  // Where the time goes (for /metrics): passes and items run.
  uint64_t passes() const;
  uint64_t ran() const;

 private:
  void Work();
  // The source with the earliest due instant, if any.
  std::optional<std::pair<size_t, Instant>> Earliest();

  const Clock& clock_;
  const std::chrono::milliseconds idle_wait_;
  std::vector<Source> sources_;  // set up before use
  mutable std::mutex mu_;        // guards stop_, wakes_, passes_, ran_
  std::condition_variable cv_;
  bool stop_ = false;
  uint64_t wakes_ = 0;
  uint64_t passes_ = 0;
  uint64_t ran_ = 0;
  std::vector<std::thread> workers_;
};

}  // namespace caas::jobs
