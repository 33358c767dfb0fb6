#include "jobs/queue.h"

#include <boost/json.hpp>
#include <random>

#include "core/log.h"

namespace caas::jobs {
namespace json = boost::json;

namespace {

constexpr const char* kCollection = "jobs";

std::string Ts(Instant t) { return FormatRfc3339(t); }
int64_t Us(Instant t) { return t.time_since_epoch().count(); }

std::optional<Instant> OptTime(const json::object& o, std::string_view k) {
  const json::value* v = o.if_contains(k);
  if (!v || !v->is_string()) return std::nullopt;
  auto t = ParseRfc3339(std::string_view(v->as_string()));
  if (!t) return std::nullopt;
  return *t;
}

double Jitter() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

std::string_view JobStateName(JobState s) {
  switch (s) {
    case JobState::kQueued:
      return "queued";
    case JobState::kRunning:
      return "running";
    case JobState::kDone:
      return "done";
    case JobState::kDead:
      return "dead";
  }
  return "queued";
}

std::optional<JobState> ParseJobState(std::string_view s) {
  for (auto st : {JobState::kQueued, JobState::kRunning, JobState::kDone, JobState::kDead}) {
    if (JobStateName(st) == s) return st;
  }
  return std::nullopt;
}

storage::CollectionSpec JobsCollectionSpec() {
  return {kCollection, {{"due_at", false}, {"key", true}, {"state", false}, {"type", false}}};
}

json::object JobToJson(const Job& j) {
  json::object o{{"id", j.id},
                 {"type", j.type},
                 {"payload", j.payload},
                 {"state", JobStateName(j.state)},
                 {"run_at", Ts(j.run_at)},
                 {"attempts", j.attempts},
                 {"max_attempts", j.max_attempts},
                 {"lease_owner", j.lease_owner},
                 {"lease_until", j.lease_until ? json::value(Ts(*j.lease_until)) : nullptr},
                 {"last_error", j.last_error},
                 {"key", j.key ? json::value(*j.key) : nullptr},
                 {"created_at", Ts(j.created_at)},
                 {"updated_at", Ts(j.updated_at)},
                 {"finished_at", j.finished_at ? json::value(Ts(*j.finished_at)) : nullptr}};
  return o;
}

JobQueue::JobQueue(storage::DocumentStore& store, const Clock& clock, IdGenerator& ids,
                   std::string owner)
    : store_(store), clock_(clock), ids_(ids), owner_(std::move(owner)) {}

void JobQueue::Register(std::string type, Handler handler) {
  handlers_[std::move(type)] = std::move(handler);
}

Result<Job> JobQueue::Decode(const storage::Document& d) {
  json::error_code ec;
  json::value v = json::parse(d.body, ec);
  if (ec || !v.is_object()) throw storage::CorruptDocument(kCollection, d.id, "not a JSON object");
  const json::object& o = v.as_object();
  auto str = [&](std::string_view k) {
    const json::value* x = o.if_contains(k);
    return x && x->is_string() ? std::string(x->as_string()) : std::string();
  };
  auto num = [&](std::string_view k) {
    const json::value* x = o.if_contains(k);
    return x && x->is_int64() ? static_cast<int>(x->as_int64()) : 0;
  };
  Job j;
  j.id = d.id;
  j.type = str("type");
  if (const auto* p = o.if_contains("payload"); p && p->is_object()) j.payload = p->as_object();
  auto state = ParseJobState(str("state"));
  auto run_at = OptTime(o, "run_at");
  auto created = OptTime(o, "created_at");
  if (j.type.empty() || !state || !run_at || !created) {
    throw storage::CorruptDocument(kCollection, d.id, "type, state, run_at or created_at");
  }
  j.state = *state;
  j.run_at = *run_at;
  j.attempts = num("attempts");
  j.max_attempts = num("max_attempts");
  j.lease_owner = str("lease_owner");
  j.lease_until = OptTime(o, "lease_until");
  j.last_error = str("last_error");
  if (const auto* k = o.if_contains("key"); k && k->is_string())
    j.key = std::string(k->as_string());
  j.created_at = *created;
  j.updated_at = OptTime(o, "updated_at").value_or(*created);
  j.finished_at = OptTime(o, "finished_at");
  j.version = d.version;
  return j;
}

// Writes the job (a versioned replace; an insert for version 0). Its keys:
// due_at while it waits or runs, state and type for listing, key if given.
Status JobQueue::Save(Job& job) {
  storage::Document doc;
  doc.id = job.id;
  doc.body = json::serialize(JobToJson(job));
  doc.keys["state"] = std::string(JobStateName(job.state));
  doc.keys["type"] = job.type;
  if (job.key) doc.keys["key"] = *job.key;
  if (job.state == JobState::kQueued) doc.keys["due_at"] = storage::SortableTime(Us(job.run_at));
  if (job.state == JobState::kRunning && job.lease_until) {
    doc.keys["due_at"] = storage::SortableTime(Us(*job.lease_until));
  }
  if (job.version == 0) {
    Status s = store_.Insert(kCollection, doc);
    if (s) job.version = 1;
    return s;
  }
  auto v = store_.Replace(kCollection, doc, job.version);
  if (!v) return v.error();
  job.version = *v;
  return Status::Ok();
}

Result<Job> JobQueue::Enqueue(JobSpec spec) {
  if (spec.key) {
    auto existing = store_.FindUnique(kCollection, "key", *spec.key);
    if (existing) return Decode(*existing);
  }
  Job j;
  j.id = ids_.Next("job");
  j.type = std::move(spec.type);
  j.payload = std::move(spec.payload);
  j.run_at = spec.run_at;
  j.max_attempts = std::max(1, spec.max_attempts);
  j.key = std::move(spec.key);
  j.created_at = j.updated_at = clock_.Now();
  Status s = Save(j);
  if (!s) {
    if (s.error().code == ErrorCode::kAlreadyExists && j.key) {  // a concurrent enqueue won
      auto existing = store_.FindUnique(kCollection, "key", *j.key);
      if (existing) return Decode(*existing);
    }
    return s.error();
  }
  return j;
}

std::optional<Instant> JobQueue::NextDue() {
  return storage::EarliestTime(store_, kCollection, "due_at");
}

Micros JobQueue::Backoff(int attempts, double jitter01) {
  const int shift = std::clamp(attempts - 1, 0, 30);
  Micros d = std::chrono::duration_cast<Micros>(kBackoffBase) * (int64_t{1} << shift);
  d = std::min(d, std::chrono::duration_cast<Micros>(kBackoffCap));
  return Micros(static_cast<int64_t>(static_cast<double>(d.count()) * (0.5 + 0.5 * jitter01)));
}

bool JobQueue::RunOne(Instant until) {
  auto ids = DueIds(until, 1);
  return !ids.empty() && Run(ids.front(), until);
}

std::vector<std::string> JobQueue::DueIds(Instant until, size_t limit) {
  return storage::DueIds(store_, kCollection, "due_at", until, limit);
}

bool JobQueue::Run(const std::string& id, Instant until) {
  auto doc = store_.Get(kCollection, id);
  if (!doc) return doc.error().code == ErrorCode::kNotFound;  // gone: nothing is due
  auto decoded = Decode(*doc);
  if (!decoded) throw storage::CorruptDocument(kCollection, id, decoded.error().message);
  Job job = std::move(*decoded);
  const std::optional<Instant> due = job.state == JobState::kQueued    ? job.run_at
                                     : job.state == JobState::kRunning ? job.lease_until
                                                                       : std::nullopt;
  if (!due || *due > until) return true;  // another worker ran it meanwhile
  const Instant now = clock_.Now();
  if (job.state == JobState::kRunning) {
    // Its lease expired (due_at was its end): the worker stopped mid-attempt.
    job.last_error = "attempt " + std::to_string(job.attempts) + " stopped: the lease of " +
                     job.lease_owner + " expired";
    if (job.attempts >= job.max_attempts) {
      job.state = JobState::kDead;
      job.lease_owner.clear();
      job.lease_until.reset();
      job.updated_at = job.finished_at.emplace(now);
      Log(LogLevel::kError, "job_dead",
          {{"job", job.id},
           {"type", job.type},
           {"attempts", static_cast<int64_t>(job.attempts)},
           {"error", job.last_error}});
      Status s = Save(job);
      return s || s.error().code == ErrorCode::kConflict;
    }
  }
  // Take the lease.
  job.state = JobState::kRunning;
  job.attempts += 1;
  job.lease_owner = owner_;
  job.lease_until = now + kLease;
  job.updated_at = now;
  if (Status s = Save(job); !s) {
    // Another worker took it: look again. Any other failure (the store is
    // down) is not progress: the scheduler waits before its next look.
    return s.error().code == ErrorCode::kConflict;
  }
  auto handler = handlers_.find(job.type);
  Status result = handler == handlers_.end()
                      ? Status(Error::Invalid("type", "no handler for job type " + job.type))
                      : Status::Ok();
  if (handler != handlers_.end()) {
    try {
      result = handler->second(job);
    } catch (const std::exception& e) {
      result = Error::Make(ErrorCode::kUnavailable, e.what());
    }
  }
  const Instant end = clock_.Now();
  job.lease_owner.clear();
  job.lease_until.reset();
  job.updated_at = end;
  if (result) {
    job.state = JobState::kDone;
    job.finished_at = end;
    job.last_error.clear();
  } else {
    job.last_error = result.error().message;
    const bool permanent = result.error().code == ErrorCode::kInvalidArgument;
    if (permanent || job.attempts >= job.max_attempts) {
      job.state = JobState::kDead;
      job.finished_at = end;
      Log(LogLevel::kError, "job_dead",
          {{"job", job.id},
           {"type", job.type},
           {"attempts", static_cast<int64_t>(job.attempts)},
           {"error", job.last_error}});
    } else {
      job.state = JobState::kQueued;
      job.run_at = end + Backoff(job.attempts, Jitter());
      Log(LogLevel::kWarn, "job_retry",
          {{"job", job.id},
           {"type", job.type},
           {"attempts", static_cast<int64_t>(job.attempts)},
           {"run_at", Ts(job.run_at)},
           {"error", job.last_error}});
    }
  }
  if (Status s = Save(job); !s) {
    // The lease ran out and another worker took the job over: it runs again
    // there (handlers are idempotent).
    Log(LogLevel::kWarn, "job_lease_lost", {{"job", job.id}, {"error", s.error().message}});
  }
  return true;
}

Result<Job> JobQueue::Get(std::string_view id) {
  auto d = store_.Get(kCollection, id);
  if (!d) return Error::NotFound("no job " + std::string(id));
  return Decode(*d);
}

JobQueue::ListPage JobQueue::List(std::optional<JobState> state, std::optional<std::string> type,
                                  std::string_view starting_after, int limit) {
  storage::ListQuery q;
  if (state) {
    q.where_key = "state";
    q.where_value = std::string(JobStateName(*state));
  } else if (type) {
    q.where_key = "type";
    q.where_value = *type;
  }
  q.starting_after = std::string(starting_after);
  ListPage out;
  // A second filter is applied here; keep paging until the page is full.
  for (;;) {
    q.limit = limit;
    auto page = store_.List(kCollection, q);
    for (const auto& d : page.items) {
      Job j = *Decode(d);
      if (type && j.type != *type) continue;
      if (static_cast<int>(out.items.size()) == limit) {
        out.has_more = true;
        return out;
      }
      out.items.push_back(std::move(j));
    }
    if (!page.has_more || page.items.empty()) return out;
    q.starting_after = page.items.back().id;
  }
}

Result<Job> JobQueue::Retry(std::string_view id) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto j = Get(id);
    if (!j) return j.error();
    if (j->state == JobState::kRunning || j->state == JobState::kDone) {
      return Error::Make(ErrorCode::kFailedPrecondition,
                         "job " + j->id + " is " + std::string(JobStateName(j->state)) +
                             ": only a queued or dead job is retried");
    }
    j->state = JobState::kQueued;
    j->attempts = 0;
    j->run_at = clock_.Now();
    j->finished_at.reset();
    j->updated_at = j->run_at;
    Status s = Save(*j);
    if (s) return j;
    if (s.error().code != ErrorCode::kConflict) return s.error();
  }
  return Error::Make(ErrorCode::kConflict, "the job keeps changing; retry later");
}

}  // namespace caas::jobs
