#include "jobs/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>

namespace caas::jobs {
namespace {

Instant At(const char* s) { return ParseRfc3339(s).value(); }

// A source of items due at given instants (sorted on use).
struct FakeSource {
  std::string name;
  std::multimap<Instant, int> due;
  std::vector<std::pair<std::string, int>>* log;
  Scheduler::Source Make() {
    return Scheduler::Source{name,
                             [this]() -> std::optional<Instant> {
                               if (due.empty()) return std::nullopt;
                               return due.begin()->first;
                             },
                             [this](Instant until) {
                               if (due.empty() || due.begin()->first > until) return false;
                               log->emplace_back(name, due.begin()->second);
                               due.erase(due.begin());
                               return true;
                             }};
  }
};

TEST(Scheduler, RunDueRunsEverySourceInTimeOrderEachAtItsInstant) {
  ManualClock clock(At("2026-01-01T00:00:00Z"));
  Scheduler scheduler(clock);
  std::vector<std::pair<std::string, int>> log;
  FakeSource a{"a", {}, &log}, b{"b", {}, &log};
  a.due = {{At("2026-01-03T00:00:00Z"), 3}, {At("2026-01-01T12:00:00Z"), 1}};
  b.due = {{At("2026-01-02T00:00:00Z"), 2}, {At("2026-02-01T00:00:00Z"), 4}};
  scheduler.Add(a.Make());
  scheduler.Add(b.Make());
  std::vector<Instant> moved;
  const int ran = scheduler.RunDue(At("2026-01-31T00:00:00Z"), [&](Instant due) {
    moved.push_back(due);
    ASSERT_TRUE(clock.Set(due).ok());
  });
  EXPECT_EQ(ran, 3);
  EXPECT_EQ(log, (std::vector<std::pair<std::string, int>>{{"a", 1}, {"b", 2}, {"a", 3}}));
  EXPECT_EQ(moved, (std::vector<Instant>{At("2026-01-01T12:00:00Z"), At("2026-01-02T00:00:00Z"),
                                         At("2026-01-03T00:00:00Z")}));
  EXPECT_EQ(b.due.size(), 1u);  // not due before the target
  EXPECT_EQ(scheduler.ran(), 3u);
}

TEST(Scheduler, ASourceThatCannotRunWhatIsDueStopsTheRunInsteadOfSpinning) {
  ManualClock clock(At("2026-01-01T00:00:00Z"));
  Scheduler scheduler(clock);
  int calls = 0;
  scheduler.Add(Scheduler::Source{"stuck", [&] { return std::optional<Instant>(clock.Now()); },
                                  [&](Instant) {
                                    ++calls;
                                    return false;
                                  }});
  EXPECT_EQ(scheduler.RunDue(At("2026-01-02T00:00:00Z"), nullptr), 0);
  EXPECT_EQ(calls, 1);
}

TEST(Scheduler, ASourceThatThrowsIsSkippedAndTheOthersRun) {
  ManualClock clock(At("2026-01-01T00:00:00Z"));
  Scheduler scheduler(clock);
  std::vector<std::pair<std::string, int>> log;
  FakeSource ok{"ok", {{At("2026-01-01T01:00:00Z"), 1}}, &log};
  scheduler.Add(Scheduler::Source{
      "broken", []() -> std::optional<Instant> { throw std::runtime_error("store down"); },
      [](Instant) { return false; }});
  scheduler.Add(ok.Make());
  EXPECT_EQ(scheduler.RunDue(At("2026-01-02T00:00:00Z"), nullptr), 1);
}

// On the system clock the workers run what is due and then sleep: an idle
// scheduler makes one pass per wake-up or idle_wait, not a busy loop.
TEST(Scheduler, WorkersRunWhatFallsDueAndSleepWhenIdle) {
  SystemClock clock;
  Scheduler scheduler(clock, std::chrono::seconds(30));
  std::mutex mu;
  std::condition_variable cv;
  std::multimap<Instant, int> due;
  int ran = 0;
  scheduler.Add(Scheduler::Source{"s",
                                  [&]() -> std::optional<Instant> {
                                    std::lock_guard l(mu);
                                    if (due.empty()) return std::nullopt;
                                    return due.begin()->first;
                                  },
                                  [&](Instant until) {
                                    std::lock_guard l(mu);
                                    if (due.empty() || due.begin()->first > until) return false;
                                    due.erase(due.begin());
                                    ++ran;
                                    cv.notify_all();
                                    return true;
                                  }});
  scheduler.Start(2);
  {
    std::lock_guard l(mu);
    due.emplace(clock.Now(), 1);
    due.emplace(clock.Now() + std::chrono::milliseconds(50), 2);
  }
  scheduler.Wake();
  {
    std::unique_lock l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(20), [&] { return ran == 2; }));
  }
  const uint64_t passes = scheduler.passes();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // Nothing is due: each worker waits for idle_wait (30 s) or a wake-up.
  EXPECT_LE(scheduler.passes() - passes, 2u);
  scheduler.Stop();
  EXPECT_EQ(scheduler.ran(), 2u);
}

}  // namespace
}  // namespace caas::jobs
