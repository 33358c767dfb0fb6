// The one scheduler: everything that happens later (jobs, subscription
// transitions, outbox relays, record expiry) is a due source, found by an
// ordered index query on its due time, never by scanning every document.
//
// On the system clock, worker threads sleep until the earliest due instant
// (or a Wake(), or `idle_wait` at most) and run what fell due. On a manual
// clock nothing runs by itself: RunDue() runs everything due up to an
// instant, in time order across sources, each item at its own instant.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
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
    // Sources whose items are independent of one another (each one
    // document's business) also name them, and such items run several at
    // once: the keys of at most `limit` items due at or before `until`,
    // earliest first; and running one by its key, false when it could not
    // (it stays due). Keyed() fills run_one from these.
    std::function<std::vector<std::string>(Instant until, size_t limit)> due_keys = {};
    std::function<bool(const std::string& key, Instant until)> run_key = {};
  };
  static Source Keyed(std::string name, std::function<std::optional<Instant>()> next_due,
                      std::function<std::vector<std::string>(Instant, size_t)> due_keys,
                      std::function<bool(const std::string&, Instant)> run_key);

  // `parallelism`: how many items of a keyed source run at once (threads).
  explicit Scheduler(const Clock& clock,
                     std::chrono::milliseconds idle_wait = std::chrono::seconds(5),
                     int parallelism = 1)
      : clock_(clock), idle_wait_(idle_wait), parallelism_(std::max(parallelism, 1)) {}
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Set up before Start() or RunDue().
  void Add(Source source);

  // Runs, in time order across sources, everything due at or before
  // `until`; `before_each(due)` is called first for each instant (a manual
  // clock moves there). The items of a keyed source due at that instant run
  // at once, `parallelism` at a time. Returns how many items ran.
  int RunDue(Instant until, const std::function<void(Instant)>& before_each);

  // System clock: `workers` threads run what falls due until Stop(). Two
  // workers never run the same keyed item at once.
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
  // Runs the due items of keyed source `i` named by `keys`, `parallelism_`
  // at a time (the caller and parallelism_ - 1 pool threads); returns how
  // many ran. RunDue's only: one wave at a time.
  struct Wave;
  int RunWave(size_t i, const std::vector<std::string>& keys, Instant until);
  void Help();  // a pool thread
  // A worker's turn at keyed source `i`: runs one due item no other worker
  // is running. nullopt: all of them are taken.
  std::optional<bool> RunUnclaimed(size_t i, Instant now);

  const Clock& clock_;
  const std::chrono::milliseconds idle_wait_;
  static constexpr size_t kWave = 1024;  // keyed items run per wave at most
  const int parallelism_;
  std::vector<Source> sources_;  // set up before use
  mutable std::mutex mu_;        // guards stop_, wakes_, passes_, ran_, running_
  std::condition_variable cv_;
  bool stop_ = false;
  uint64_t wakes_ = 0;
  uint64_t passes_ = 0;
  uint64_t ran_ = 0;
  size_t worker_count_ = 0;                           // set by Start() before the workers start
  std::set<std::pair<size_t, std::string>> running_;  // keyed items the workers run now
  std::vector<std::thread> workers_;
  std::mutex pool_mu_;               // guards pool_, wave_, wave_seq_, joined_, busy_, pool_stop_
  std::condition_variable pool_cv_;  // a wave starts, or the pool stops
  std::condition_variable pool_done_cv_;  // a helper finished its part
  std::vector<std::thread> pool_;
  Wave* wave_ = nullptr;
  uint64_t wave_seq_ = 0;
  size_t joined_ = 0;
  size_t busy_ = 0;
  bool pool_stop_ = false;
};

}  // namespace caas::jobs
