#include "jobs/scheduler.h"

#include <exception>

#include "core/log.h"

namespace caas::jobs {

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Add(Source source) { sources_.push_back(std::move(source)); }

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
    bool progressed = false;
    try {
      progressed = sources_[next->first].run_one(std::max(next->second, clock_.Now()));
    } catch (const std::exception& e) {
      Log(LogLevel::kError, "scheduler_failed",
          {{"source", sources_[next->first].name}, {"error", std::string_view(e.what())}});
    }
    if (!progressed) break;
    ++ran;
  }
  std::lock_guard lock(mu_);
  ran_ += static_cast<uint64_t>(ran);
  return ran;
}

void Scheduler::Start(int workers) {
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { Work(); });
}

void Scheduler::Wake() {
  {
    std::lock_guard lock(mu_);
    ++wakes_;
  }
  cv_.notify_all();
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

uint64_t Scheduler::passes() const {
  std::lock_guard lock(mu_);
  return passes_;
}

uint64_t Scheduler::ran() const {
  std::lock_guard lock(mu_);
  return ran_;
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
        ran = sources_[next->first].run_one(now);
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
      continue;  // there may be more due now
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
