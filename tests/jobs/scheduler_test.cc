#include "jobs/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

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

// A keyed source of independent items: each runs once, and records how many
// ran at the same time.
struct KeyedFake {
  std::mutex mu;
  std::map<std::string, Instant> due;  // key -> due instant
  std::map<std::string, int> runs;
  std::vector<std::pair<std::string, Instant>> log;  // key, clock when it ran
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};
  std::set<std::string> running;  // guarded by mu
  int overlaps = 0;               // an item run by two at once; guarded by mu
  const Clock* clock = nullptr;
  Scheduler::Source Make() {
    return Scheduler::Keyed(
        "keyed",
        [this]() -> std::optional<Instant> {
          std::lock_guard l(mu);
          std::optional<Instant> best;
          for (const auto& [k, at] : due) {
            if (!best || at < *best) best = at;
          }
          return best;
        },
        [this](Instant until, size_t limit) {
          std::lock_guard l(mu);
          std::vector<std::pair<Instant, std::string>> v;
          for (const auto& [k, at] : due) {
            if (at <= until) v.emplace_back(at, k);
          }
          std::sort(v.begin(), v.end());
          std::vector<std::string> out;
          for (size_t i = 0; i < v.size() && i < limit; ++i) out.push_back(v[i].second);
          return out;
        },
        [this](const std::string& key, Instant until) {
          {
            std::lock_guard l(mu);
            if (!running.insert(key).second) ++overlaps;
          }
          const int now_in = ++in_flight;
          for (int m = max_in_flight.load(); now_in > m;) {
            if (max_in_flight.compare_exchange_weak(m, now_in)) break;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
          {
            std::lock_guard l(mu);
            auto it = due.find(key);
            if (it != due.end() && it->second <= until) {
              due.erase(it);
              ++runs[key];
              log.emplace_back(key, clock->Now());
            }
          }
          --in_flight;
          std::lock_guard l(mu);
          running.erase(key);
          return true;
        });
  }
};

// On a manual clock the items of a keyed source due at one instant run as a
// wave, `parallelism` at a time; time order across instants and sources
// holds, and each item runs once, with the clock at its instant.
TEST(Scheduler, KeyedItemsDueAtOneInstantRunTogetherInTimeOrder) {
  ManualClock clock(At("2026-01-01T00:00:00Z"));
  Scheduler scheduler(clock, std::chrono::seconds(5), 4);
  KeyedFake k;
  k.clock = &clock;
  for (int i = 0; i < 40; ++i) k.due["a" + std::to_string(i)] = At("2026-01-02T00:00:00Z");
  for (int i = 0; i < 20; ++i) k.due["b" + std::to_string(i)] = At("2026-01-04T00:00:00Z");
  std::vector<std::pair<std::string, int>> log;
  FakeSource other{"other", {{At("2026-01-03T00:00:00Z"), 7}}, &log};
  scheduler.Add(k.Make());
  scheduler.Add(other.Make());
  std::optional<Instant> other_ran_at;
  const int ran = scheduler.RunDue(At("2026-02-01T00:00:00Z"), [&](Instant due) {
    if (due > clock.Now()) (void)clock.Set(due);
  });
  EXPECT_EQ(ran, 61);
  ASSERT_EQ(k.log.size(), 60u);
  for (const auto& [key, runs] : k.runs) EXPECT_EQ(runs, 1) << key;
  for (size_t i = 0; i < k.log.size(); ++i) {
    const bool first_day = i < 40;
    EXPECT_EQ(k.log[i].first[0], first_day ? 'a' : 'b') << i;
    EXPECT_EQ(k.log[i].second, first_day ? At("2026-01-02T00:00:00Z") : At("2026-01-04T00:00:00Z"));
  }
  ASSERT_EQ(log.size(), 1u);
  EXPECT_GT(k.max_in_flight.load(), 1) << "the wave ran one item at a time";
  EXPECT_LE(k.max_in_flight.load(), 4);
}

// On the system clock, workers share a keyed source's due items: never two
// at once on the same item, every item once.
TEST(Scheduler, WorkersNeverRunTheSameKeyedItemAtOnce) {
  SystemClock clock;
  Scheduler scheduler(clock, std::chrono::seconds(30));
  KeyedFake k;
  k.clock = &clock;
  const Instant now = clock.Now();
  for (int i = 0; i < 120; ++i) k.due["k" + std::to_string(i)] = now;
  scheduler.Add(k.Make());
  scheduler.Start(6);
  for (int i = 0; i < 2000; ++i) {
    {
      std::lock_guard l(k.mu);
      if (k.due.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  scheduler.Stop();
  std::lock_guard l(k.mu);
  EXPECT_TRUE(k.due.empty());
  EXPECT_EQ(k.overlaps, 0);
  EXPECT_EQ(k.runs.size(), 120u);
  for (const auto& [key, runs] : k.runs) EXPECT_EQ(runs, 1) << key;
  EXPECT_GT(k.max_in_flight.load(), 1);
  EXPECT_LE(k.max_in_flight.load(), 6);
}

}  // namespace
}  // namespace caas::jobs
