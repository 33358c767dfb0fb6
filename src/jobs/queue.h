// The durable job queue, on the DocumentStore port (collection "jobs").
//
// A job has a type, a JSON payload, a run-at time, a count of attempts, a
// lease and the last error. A worker claims the earliest due job by taking
// its lease (a versioned write: two workers never both hold it) and runs the
// handler registered for its type:
// - success: the job is done;
// - an error: it is retried after an exponential backoff with jitter, and
//   is dead after `max_attempts` (or at once for kInvalidArgument, which a
//   retry cannot mend);
// - a crash: the lease expires and another worker takes the job. Attempts
//   are counted when the lease is taken, so a job that crashes its worker
//   still ends dead.
// Handlers must be idempotent: a job can run more than once (a crash after
// its effect, before its completion was written).
//
// Due work is found through the declared key `due_at` (run_at while queued,
// the lease's end while running), by an ordered index query: the cost does
// not grow with the number of jobs that are not due.
#pragma once

#include <boost/json/object.hpp>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "core/status.h"
#include "storage/document_store.h"

namespace caas::jobs {

enum class JobState { kQueued, kRunning, kDone, kDead };
std::string_view JobStateName(JobState s);
std::optional<JobState> ParseJobState(std::string_view s);

struct Job {
  std::string id;  // job_…
  std::string type;
  boost::json::object payload;
  JobState state = JobState::kQueued;
  Instant run_at;
  int attempts = 0;
  int max_attempts = 8;
  std::string lease_owner;
  std::optional<Instant> lease_until;
  std::string last_error;
  std::optional<std::string> key;  // the idempotency key it was enqueued with
  Instant created_at;
  Instant updated_at;
  std::optional<Instant> finished_at;
  int64_t version = 0;
};

boost::json::object JobToJson(const Job& j);

storage::CollectionSpec JobsCollectionSpec();

struct JobSpec {
  std::string type;
  boost::json::object payload;
  Instant run_at;
  // The same key enqueues one job, ever (a retried enqueue returns it).
  std::optional<std::string> key;
  int max_attempts = 8;
};

class JobQueue {
 public:
  // A handler's error is retried, except kInvalidArgument (dead at once).
  using Handler = std::function<Status(const Job&)>;

  static constexpr auto kLease = std::chrono::seconds(60);
  static constexpr auto kBackoffBase = std::chrono::seconds(2);
  static constexpr auto kBackoffCap = std::chrono::hours(1);

  // `owner` names this process in leases.
  JobQueue(storage::DocumentStore& store, const Clock& clock, IdGenerator& ids, std::string owner);
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // Set up before use; read-only after.
  void Register(std::string type, Handler handler);

  Result<Job> Enqueue(JobSpec spec);

  // The earliest instant a job is due (queued, or its lease expired).
  std::optional<Instant> NextDue();
  // Claims the earliest job due at or before `until` and runs it. False when
  // none was due (or another worker took it first).
  bool RunOne(Instant until);
  // The ids of jobs due at or before `until`, earliest first; and running
  // one of them by id (true also when it is no longer due: another worker
  // took it). Jobs are independent, so several run at once.
  std::vector<std::string> DueIds(Instant until, size_t limit);
  bool Run(const std::string& id, Instant until);

  Result<Job> Get(std::string_view id);
  struct ListPage {
    std::vector<Job> items;
    bool has_more = false;
  };
  ListPage List(std::optional<JobState> state, std::optional<std::string> type,
                std::string_view starting_after, int limit);
  // A dead (or queued) job back in the queue now, with its attempts reset.
  Result<Job> Retry(std::string_view id);

  // The backoff before attempt `attempts + 1`: kBackoffBase × 2^(attempts−1),
  // at most kBackoffCap, times a random factor in [0.5, 1) (jitter).
  static Micros Backoff(int attempts, double jitter01);

 private:
  Status Save(Job& job);
  Result<Job> Decode(const storage::Document& d);

  storage::DocumentStore& store_;
  const Clock& clock_;
  IdGenerator& ids_;
  const std::string owner_;
  std::map<std::string, Handler, std::less<>> handlers_;  // set up before use
};

}  // namespace caas::jobs
