#include "jobs/queue.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>

#include "storage/memory/memory_store.h"
#include "storage/sqlite/sqlite_store.h"

namespace caas::jobs {
namespace {

Instant At(const char* s) { return ParseRfc3339(s).value(); }

struct Harness {
  ManualClock clock{At("2026-05-01T00:00:00Z")};
  IdGenerator ids{clock};
  storage::MemoryStore store{{JobsCollectionSpec()}};
  JobQueue queue{store, clock, ids, "test"};
  int runs = 0;

  Job Add(std::string type, Instant run_at, std::optional<std::string> key = std::nullopt,
          int max_attempts = 8) {
    auto j =
        queue.Enqueue(JobSpec{std::move(type), {{"n", 1}}, run_at, std::move(key), max_attempts});
    EXPECT_TRUE(j.ok());
    return *j;
  }
  Job Reload(const Job& j) { return queue.Get(j.id).value(); }
};

TEST(JobQueue, AnEnqueueWithTheSameKeyIsOneJob) {
  Harness h;
  Job a = h.Add("invoice.finalize", h.clock.Now(), "inv_1:finalize");
  Job b = h.Add("invoice.finalize", h.clock.Now() + std::chrono::hours(1), "inv_1:finalize");
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(b.run_at, a.run_at);  // the first enqueue's terms stand
  Job c = h.Add("invoice.finalize", h.clock.Now(), "inv_2:finalize");
  EXPECT_NE(a.id, c.id);
  EXPECT_EQ(h.queue.List(std::nullopt, std::nullopt, "", 100).items.size(), 2u);
}

TEST(JobQueue, RunsWhatIsDueInOrderAndNothingEarly) {
  Harness h;
  std::vector<int64_t> order;
  h.queue.Register("t", [&](const Job& j) {
    order.push_back(j.payload.at("n").as_int64());
    return Status::Ok();
  });
  const Instant now = h.clock.Now();
  ASSERT_TRUE(
      h.queue.Enqueue(JobSpec{"t", {{"n", 2}}, now + std::chrono::seconds(20), std::nullopt, 8})
          .ok());
  ASSERT_TRUE(
      h.queue.Enqueue(JobSpec{"t", {{"n", 1}}, now + std::chrono::seconds(10), std::nullopt, 8})
          .ok());
  ASSERT_TRUE(
      h.queue.Enqueue(JobSpec{"t", {{"n", 3}}, now + std::chrono::hours(1), std::nullopt, 8}).ok());
  EXPECT_EQ(h.queue.NextDue(), now + std::chrono::seconds(10));
  EXPECT_FALSE(h.queue.RunOne(now));  // nothing due yet
  ASSERT_TRUE(h.clock.Set(now + std::chrono::seconds(30)).ok());
  EXPECT_TRUE(h.queue.RunOne(h.clock.Now()));
  EXPECT_TRUE(h.queue.RunOne(h.clock.Now()));
  EXPECT_FALSE(h.queue.RunOne(h.clock.Now()));
  EXPECT_EQ(order, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(h.queue.NextDue(), now + std::chrono::hours(1));
  auto done = h.queue.List(JobState::kDone, std::nullopt, "", 10).items;
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0].attempts, 1);
  EXPECT_TRUE(done[0].finished_at.has_value());
  EXPECT_FALSE(done[0].lease_until.has_value());
}

TEST(JobQueue, AFailureIsRetriedWithBackoffAndEndsDead) {
  Harness h;
  h.queue.Register("flaky", [](const Job&) {
    return Status(Error::Make(ErrorCode::kUnavailable, "smtp down"));
  });
  Job j = h.Add("flaky", h.clock.Now(), std::nullopt, 4);
  for (int attempt = 1; attempt <= 4; ++attempt) {
    const Instant before = h.clock.Now();
    ASSERT_TRUE(h.queue.RunOne(before)) << attempt;
    Job now = h.Reload(j);
    EXPECT_EQ(now.attempts, attempt);
    EXPECT_EQ(now.last_error, "smtp down");
    if (attempt < 4) {
      ASSERT_EQ(now.state, JobState::kQueued);
      // 2 s × 2^(attempt−1), times a jitter factor in [0.5, 1).
      const Micros full = std::chrono::seconds(2) * (1 << (attempt - 1));
      EXPECT_GE(now.run_at - before, full / 2);
      EXPECT_LT(now.run_at - before, full);
      EXPECT_FALSE(h.queue.RunOne(before));  // not before its backoff
      ASSERT_TRUE(h.clock.Set(now.run_at).ok());
    } else {
      EXPECT_EQ(now.state, JobState::kDead);
      EXPECT_TRUE(now.finished_at.has_value());
    }
  }
  EXPECT_FALSE(h.queue.NextDue().has_value());  // a dead job is never due
}

TEST(JobQueue, BackoffDoublesUpToItsCap) {
  EXPECT_EQ(JobQueue::Backoff(1, 0.0), Micros(1'000'000));       // 2 s × 0.5
  EXPECT_EQ(JobQueue::Backoff(3, 0.0), Micros(4'000'000));       // 8 s × 0.5
  EXPECT_EQ(JobQueue::Backoff(3, 0.5), Micros(6'000'000));       // 8 s × 0.75
  EXPECT_EQ(JobQueue::Backoff(40, 0.0), Micros(1'800'000'000));  // 1 h × 0.5
}

TEST(JobQueue, AnInvalidJobOrAnUnknownTypeIsDeadAtOnce) {
  Harness h;
  h.queue.Register("bad", [](const Job&) {
    return Status(Error::Invalid("payload.invoice", "no such invoice"));
  });
  Job bad = h.Add("bad", h.clock.Now());
  Job unknown = h.Add("nobody.handles.this", h.clock.Now());
  EXPECT_TRUE(h.queue.RunOne(h.clock.Now()));
  EXPECT_TRUE(h.queue.RunOne(h.clock.Now()));
  EXPECT_EQ(h.Reload(bad).state, JobState::kDead);
  EXPECT_EQ(h.Reload(bad).attempts, 1);
  EXPECT_EQ(h.Reload(bad).last_error, "no such invoice");
  EXPECT_EQ(h.Reload(unknown).state, JobState::kDead);
  EXPECT_NE(h.Reload(unknown).last_error.find("no handler"), std::string::npos);
}

TEST(JobQueue, AnExceptionIsAnErrorThatIsRetried) {
  Harness h;
  h.queue.Register("throws", [](const Job&) -> Status { throw std::runtime_error("boom"); });
  Job j = h.Add("throws", h.clock.Now());
  EXPECT_TRUE(h.queue.RunOne(h.clock.Now()));
  EXPECT_EQ(h.Reload(j).state, JobState::kQueued);
  EXPECT_EQ(h.Reload(j).last_error, "boom");
}

TEST(JobQueue, RetryPutsADeadJobBackAndRefusesADoneOne) {
  Harness h;
  bool fail = true;
  h.queue.Register(
      "t", [&](const Job&) { return fail ? Status(Error::Invalid("x", "broken")) : Status::Ok(); });
  Job j = h.Add("t", h.clock.Now());
  ASSERT_TRUE(h.queue.RunOne(h.clock.Now()));
  ASSERT_EQ(h.Reload(j).state, JobState::kDead);
  ASSERT_TRUE(h.clock.Set(h.clock.Now() + std::chrono::hours(2)).ok());
  fail = false;
  auto r = h.queue.Retry(j.id);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->state, JobState::kQueued);
  EXPECT_EQ(r->attempts, 0);
  EXPECT_EQ(r->run_at, h.clock.Now());
  ASSERT_TRUE(h.queue.RunOne(h.clock.Now()));
  EXPECT_EQ(h.Reload(j).state, JobState::kDone);
  auto again = h.queue.Retry(j.id);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(h.queue.Retry("job_01NOSUCHJOB0000000000000000").error().code, ErrorCode::kNotFound);
}

TEST(JobQueue, AnExpiredLeaseIsTakenOverAndTheFirstWorkerLosesIt) {
  Harness h;
  JobQueue other(h.store, h.clock, h.ids, "other");
  int first = 0, second = 0;
  other.Register("t", [&](const Job&) {
    ++second;
    return Status::Ok();
  });
  h.queue.Register("t", [&](const Job& j) {
    ++first;
    // This worker stalls past its lease; the other takes the job over.
    EXPECT_EQ(j.lease_owner, "test");
    EXPECT_FALSE(other.RunOne(h.clock.Now()));  // the lease still holds
    EXPECT_TRUE(h.clock.Set(h.clock.Now() + JobQueue::kLease + std::chrono::seconds(1)).ok());
    EXPECT_TRUE(other.RunOne(h.clock.Now()));
    return Status::Ok();
  });
  Job j = h.Add("t", h.clock.Now());
  EXPECT_TRUE(h.queue.RunOne(h.clock.Now()));
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1);
  Job end = h.Reload(j);
  EXPECT_EQ(end.state, JobState::kDone);
  EXPECT_EQ(end.attempts, 2);
  EXPECT_EQ(end.lease_owner, "");
}

TEST(JobQueue, ListsByStateAndTypePageByPage) {
  Harness h;
  h.queue.Register("a", [](const Job&) { return Status::Ok(); });
  for (int i = 0; i < 7; ++i) h.Add(i % 2 ? "b" : "a", h.clock.Now() + std::chrono::hours(i));
  ASSERT_TRUE(h.queue.RunOne(h.clock.Now()));  // the first "a"
  auto b = h.queue.List(JobState::kQueued, std::string("b"), "", 2);
  ASSERT_EQ(b.items.size(), 2u);
  EXPECT_TRUE(b.has_more);
  auto rest = h.queue.List(JobState::kQueued, std::string("b"), b.items.back().id, 2);
  ASSERT_EQ(rest.items.size(), 1u);
  EXPECT_FALSE(rest.has_more);
  EXPECT_EQ(h.queue.List(JobState::kDone, std::nullopt, "", 10).items.size(), 1u);
  EXPECT_EQ(h.queue.List(std::nullopt, std::string("a"), "", 10).items.size(), 4u);
}

// A worker process killed in the middle of a job: after its lease, another
// process runs it again, and a job that always kills its worker ends dead.
TEST(JobQueue, AWorkerKilledMidJobIsTakenOverAfterItsLease) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("caas-jobs-crash-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "db.sqlite").string();
  ManualClock clock(At("2026-05-01T00:00:00Z"));
  IdGenerator ids(clock);
  std::string id, doomed;
  {
    storage::SqliteStore store(path, {JobsCollectionSpec()});
    store.Migrate();
    JobQueue q(store, clock, ids, "parent");
    id = q.Enqueue(JobSpec{"t", {}, clock.Now(), std::nullopt, 3}).value().id;
    doomed = q.Enqueue(JobSpec{"crash", {}, clock.Now() + std::chrono::hours(1), std::nullopt, 2})
                 .value()
                 .id;
  }
  auto crash_once = [&](Instant at) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ManualClock c(at);
      storage::SqliteStore store(path, {JobsCollectionSpec()});
      JobQueue q(store, c, ids, "child");
      q.Register("t", [](const Job&) -> Status { ::_exit(9); });
      q.Register("crash", [](const Job&) -> Status { ::_exit(9); });
      q.RunOne(c.Now());
      ::_exit(0);  // nothing was due
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 9);
  };
  crash_once(clock.Now());  // takes "t" (the earliest) and dies
  storage::SqliteStore store(path, {JobsCollectionSpec()});
  JobQueue q(store, clock, ids, "parent");
  int runs = 0;
  q.Register("t", [&](const Job&) {
    ++runs;
    return Status::Ok();
  });
  Job mid = q.Get(id).value();
  EXPECT_EQ(mid.state, JobState::kRunning);
  EXPECT_EQ(mid.lease_owner, "child");
  EXPECT_FALSE(q.RunOne(clock.Now()));  // its lease still holds
  ASSERT_TRUE(clock.Set(clock.Now() + JobQueue::kLease + std::chrono::seconds(1)).ok());
  EXPECT_TRUE(q.RunOne(clock.Now()));  // "t", its lease expired
  EXPECT_EQ(runs, 1);
  Job after = q.Get(id).value();
  EXPECT_EQ(after.state, JobState::kDone);
  EXPECT_EQ(after.attempts, 2);
  // "crash" kills its worker twice (max_attempts 2): then it is dead, not run.
  ASSERT_TRUE(clock.Set(clock.Now() + std::chrono::hours(1)).ok());
  crash_once(clock.Now());
  ASSERT_TRUE(clock.Set(clock.Now() + JobQueue::kLease + std::chrono::seconds(1)).ok());
  crash_once(clock.Now());
  ASSERT_TRUE(clock.Set(clock.Now() + JobQueue::kLease + std::chrono::seconds(1)).ok());
  q.Register("crash", [](const Job&) -> Status {
    ADD_FAILURE() << "a job past its attempts must not run";
    return Status::Ok();
  });
  EXPECT_TRUE(q.RunOne(clock.Now()));
  Job dead = q.Get(doomed).value();
  EXPECT_EQ(dead.state, JobState::kDead);
  EXPECT_EQ(dead.attempts, 2);
  EXPECT_NE(dead.last_error.find("lease of child expired"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace caas::jobs
