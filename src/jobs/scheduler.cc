#include "jobs/scheduler.h"

#include <atomic>
#include <exception>

#include "core/log.h"

namespace caas::jobs {

void Scheduler::Add(Source source) { sources_.push_back(std::move(source)); }

Scheduler::Source Scheduler::Keyed(
    std::string name, std::function<std::optional<Instant>()> next_due,
    std::function<std::vector<std::string>(Instant, size_t)> due_keys,
    std::function<bool(const std::string&, Instant)> run_key) {
  Source s;
  s.name = std::move(name);
  s.next_due = std::move(next_due);
  s.due_keys = std::move(due_keys);
  s.run_key = std::move(run_key);
  s.run_one = [due = s.due_keys, run = s.run_key](Instant until) {
    auto keys = due(until, 1);
    return !keys.empty() && run(keys.front(), until);
  };
  return s;
}

// One wave: its items are taken one at a time by the caller and the pool.
struct Scheduler::Wave {
  const Source* source;
  const std::vector<std::string>* keys;
  Instant until;
  std::atomic<size_t> next{0};
  std::atomic<int> ran{0};
  void Work() {
    for (size_t k = next++; k < keys->size(); k = next++) {
      try {
        if (source->run_key((*keys)[k], until)) ++ran;
      } catch (const std::exception& e) {
        Log(LogLevel::kError, "scheduler_failed",
            {{"source", source->name}, {"key", (*keys)[k]}, {"error", std::string_view(e.what())}});
      }
    }
  }
};

int Scheduler::RunWave(size_t i, const std::vector<std::string>& keys, Instant until) {
  Wave wave{&sources_[i], &keys, until};
  if (keys.size() <= 1 || parallelism_ <= 1) {
    wave.Work();
    return wave.ran.load();
  }
  std::unique_lock lock(pool_mu_);
  // The helpers live as long as the scheduler: threads (and what they keep
  // per thread, such as the PDF renderer's font map) are made once.
  while (pool_.size() + 1 < static_cast<size_t>(parallelism_)) {
    pool_.emplace_back([this] { Help(); });
  }
  wave_ = &wave;
  ++wave_seq_;
  joined_ = 0;
  pool_cv_.notify_all();
  lock.unlock();
  wave.Work();
  lock.lock();
  // Every helper has taken this wave and finished with it before it goes.
  pool_done_cv_.wait(lock, [&] { return joined_ == pool_.size() && busy_ == 0; });
  wave_ = nullptr;
  return wave.ran.load();
}

void Scheduler::Help() {
  uint64_t seen = 0;
  std::unique_lock lock(pool_mu_);
  for (;;) {
    pool_cv_.wait(lock, [&] { return pool_stop_ || wave_seq_ != seen; });
    if (pool_stop_) return;
    seen = wave_seq_;
    Wave* wave = wave_;
    ++joined_;
    ++busy_;
    lock.unlock();
    wave->Work();
    lock.lock();
    --busy_;
    pool_done_cv_.notify_all();
  }
}

std::optional<std::pair<size_t, Instant>> Scheduler::Earliest() {
  std::optional<std::pair<size_t, Instant>> best;
  for (size_t i = 0; i < sources_.size(); ++i) {
    std::optional<Instant> due;
    try {
      due = sources_[i].next_due();
    } catch (const std::exception& e) {
      Log(LogLevel::kError, "scheduler_source_failed",
          {{"source", sources_[i].name}, {"error", std::string_view(e.what())}});
      continue;
    }
    if (due && (!best || *due < best->second)) best = std::make_pair(i, *due);
  }
  return best;
}

int Scheduler::RunDue(Instant until, const std::function<void(Instant)>& before_each) {
  int ran = 0;
  for (int guard = 0; guard < 10'000'000; ++guard) {
    auto next = Earliest();
    if (!next || next->second > until) break;
    if (before_each) before_each(next->second);
    // An item that cannot run now (a store failure) ends the run: it stays
    // due, and the next run tries again.
    const Source& source = sources_[next->first];
    const Instant at = std::max(next->second, clock_.Now());
    int progressed = 0;
    try {
      if (source.due_keys && parallelism_ > 1) {
        // Everything of this source due by now, as one wave. (Items due
        // later are not in it: their instant comes in a later turn.)
        progressed = RunWave(next->first, source.due_keys(at, kWave), at);
      } else {
        progressed = source.run_one(at) ? 1 : 0;
      }
    } catch (const std::exception& e) {
      Log(LogLevel::kError, "scheduler_failed",
          {{"source", source.name}, {"error", std::string_view(e.what())}});
    }
    if (progressed == 0) break;
    ran += progressed;
  }
  std::lock_guard lock(mu_);
  ran_ += static_cast<uint64_t>(ran);
  return ran;
}

void Scheduler::Start(int workers) {
  worker_count_ = static_cast<size_t>(std::max(workers, 1));
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { Work(); });
}

void Scheduler::Wake() {
  {
    std::lock_guard lock(mu_);
    ++wakes_;
  }
  // One worker looks; if it finds something to run, it wakes the next (below),
  // so a burst of work wakes the workers one by one, and a change with
  // nothing due (most API writes) costs one look, not one per worker.
  cv_.notify_one();
}

void Scheduler::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

Scheduler::~Scheduler() {
  Stop();
  {
    std::lock_guard lock(pool_mu_);
    pool_stop_ = true;
  }
  pool_cv_.notify_all();
  for (auto& t : pool_) t.join();
}

uint64_t Scheduler::passes() const {
  std::lock_guard lock(mu_);
  return passes_;
}

uint64_t Scheduler::ran() const {
  std::lock_guard lock(mu_);
  return ran_;
}

std::optional<bool> Scheduler::RunUnclaimed(size_t i, Instant now) {
  const Source& source = sources_[i];
  const auto keys = source.due_keys(now, 2 * worker_count_ + 1);
  std::optional<std::pair<size_t, std::string>> claim;
  {
    std::lock_guard lock(mu_);
    for (const auto& k : keys) {
      if (running_.emplace(i, k).second) {
        claim.emplace(i, k);
        break;
      }
    }
  }
  if (!claim) return std::nullopt;
  bool ran = false;
  try {
    ran = source.run_key(claim->second, now);
  } catch (...) {
    std::lock_guard lock(mu_);
    running_.erase(*claim);
    ++wakes_;
    cv_.notify_all();
    throw;
  }
  {
    std::lock_guard lock(mu_);
    running_.erase(*claim);
    ++wakes_;  // a worker waiting for a free item looks again
  }
  cv_.notify_all();
  return ran;
}

void Scheduler::Work() {
  for (;;) {
    uint64_t seen_wakes;
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
      seen_wakes = wakes_;
      ++passes_;
    }
    std::optional<std::pair<size_t, Instant>> next;
    bool ran = false, stuck = false;
    try {
      next = Earliest();
      const Instant now = clock_.Now();
      if (next && next->second <= now) {
        if (sources_[next->first].due_keys) {
          auto r = RunUnclaimed(next->first, now);
          if (!r) {  // the other workers run all that is due: wait for one of them
            std::unique_lock lock(mu_);
            cv_.wait_for(lock, idle_wait_, [&] { return stop_ || wakes_ != seen_wakes; });
            continue;
          }
          ran = *r;
        } else {
          ran = sources_[next->first].run_one(now);
        }
        stuck = !ran;  // due but not runnable now (a store error): do not spin
      }
    } catch (const std::exception& e) {  // nothing escapes a worker thread
      Log(LogLevel::kError, "scheduler_failed",
          {{"source", next ? sources_[next->first].name : std::string("?")},
           {"error", std::string_view(e.what())}});
      stuck = true;
    }
    std::unique_lock lock(mu_);
    if (ran) {
      ++ran_;
      ++wakes_;
      lock.unlock();
      cv_.notify_one();  // there may be more due now: another worker helps
      continue;
    }
    // Sleep until the next due instant (or a wake-up, or idle_wait).
    auto wait = idle_wait_;
    if (next && !stuck) {
      const auto until =
          std::chrono::duration_cast<std::chrono::milliseconds>(next->second - clock_.Now());
      wait = std::clamp(until, std::chrono::milliseconds(1), idle_wait_);
    }
    cv_.wait_for(lock, wait, [&] { return stop_ || wakes_ != seen_wakes; });
  }
}

}  // namespace caas::jobs
