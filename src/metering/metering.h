// The metering engine: exactly-once ingestion of usage events, aggregates per
// tenant, billing period, terms slice and day, and in-memory quota checks.
//
// Write path (docs/metering.md, "Durability and exactly-once"): request
// threads parse and validate; under one short lock each event's key (tenant,
// source, id) is looked up in the dedupe index and, when new, claimed and its
// record appended to the log buffer, in the same critical section; a single
// flusher thread writes the buffer and fdatasyncs it (group commit); an
// applier thread then applies the records to the aggregates in log order
// (overlapping the next fsync) and wakes the requests. Ingest() returns only
// once every event it reports as accepted is durable and visible. If the
// write fails the process ends (see EventLog): the claims, which live in
// memory, go with it, and a restart rebuilds index and aggregates from the
// log. So a claim and its durable write are one atomic step.
//
// Terms: each tenant's terms timeline (catalog/timeline.h) is pushed to the
// engine (SetTimeline) and recorded in the same log, between the events, so
// the order of events and terms changes is part of the log and a replay files
// every event exactly where the live engine did (aggregates.h).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "catalog/timeline.h"
#include "core/clock.h"
#include "core/decimal.h"
#include "core/status.h"
#include "metering/aggregates.h"
#include "metering/dedupe_index.h"
#include "metering/event_log.h"
#include "metering/quota_view.h"
#include "metering/usage_event.h"

namespace caas::metering {

struct MeteringOptions {
  std::string dir;  // the event log directory
  std::chrono::microseconds late_window = std::chrono::hours(24 * 35);
  std::chrono::microseconds future_window = std::chrono::minutes(5);
  uint64_t segment_bytes = 256ull << 20;
  // Memory to set aside at start for this many event keys (0: grow as
  // needed). See DedupeIndex::Reserve.
  size_t reserve_events = 0;
  // The file system of the log (tests inject faults); nullptr: the real one.
  LogEnv* env = nullptr;
};

enum class OutcomeKind : uint8_t { kAccepted, kDuplicate, kConflict, kRejected };
std::string_view OutcomeName(OutcomeKind kind);

struct Outcome {
  OutcomeKind kind = OutcomeKind::kRejected;
  std::string field;   // rejected/conflict: the attribute at fault
  std::string reason;  // rejected/conflict
};

struct QuotaDecision {
  bool allowed = true;
  Metric metric = Metric::kMessages;
  Decimal used;                  // counts are whole numbers; storage in GB-month
  std::optional<Decimal> limit;  // hard limit; nullopt: none
  std::optional<Decimal> remaining;
  std::optional<Decimal> included;
  Period period;
};

struct IngestStats {
  uint64_t events = 0;  // distinct event keys ever accepted
  uint64_t log_bytes = 0;
  size_t dedupe_memory_bytes = 0;
  // Outcomes since the process started.
  uint64_t accepted = 0, duplicate = 0, conflict = 0, rejected = 0, voided = 0;
  uint64_t group_commits = 0;
};

using catalog::VersionedTimeline;

class MeteringEngine {
 public:
  // The timeline of a tenant metering has not seen yet: kNotFound for an
  // unknown tenant.
  using TimelineSource = std::function<Result<VersionedTimeline>(std::string_view tenant)>;
  using ThresholdSink = std::function<void(const ThresholdEvent&)>;

  MeteringEngine(MeteringOptions options, const Clock& clock, TimelineSource timelines,
                 ThresholdSink thresholds);
  ~MeteringEngine();
  MeteringEngine(const MeteringEngine&) = delete;
  MeteringEngine& operator=(const MeteringEngine&) = delete;

  // Replays the log (rebuilding index and aggregates) and starts the
  // flusher. Throws LogCorruption / std::system_error.
  void Open();

  // One outcome per element, in order. Blocks until accepted events are
  // durable and visible in usage and quota answers. When the log cannot be
  // written (kResourceExhausted: no space left; kUnavailable), nothing of the
  // request was recorded and no outcome stands: the caller retries later.
  Result<std::vector<Outcome>> Ingest(std::vector<ParsedEvent>& events);

  // Records `timeline` as the tenant's terms from now on, unless it is the one
  // recorded already or comes from an older version. Blocks until durable.
  Status SetTimeline(std::string_view tenant, const VersionedTimeline& timeline);

  // Why the last write of the log failed, until a write succeeds again.
  std::optional<std::string> WriteError();

  // Removes a counted event from every aggregate; its key stays taken.
  // kNotFound when unknown, kConflict when already voided.
  Result<VoidRecord> Void(std::string_view tenant, std::string_view source, std::string_view id,
                          std::string_view actor, std::string_view reason);
  std::vector<VoidRecord> Voids(std::string_view tenant);

  // kNotFound for an unknown tenant. No storage round trip once the tenant
  // is known.
  Result<QuotaDecision> CheckQuota(std::string_view tenant, Metric metric, const Decimal& quantity);
  // The fast path for counted metrics (messages, api_calls, mau).
  Result<QuotaDecision> CheckCount(std::string_view tenant, Metric metric, int64_t quantity);
  // True when `subject` is already counted as active in the current period.
  bool IsActive(std::string_view tenant, std::string_view subject);

  Result<UsageReport> Usage(std::string_view tenant, Instant at);
  Result<std::vector<DayUsage>> Daily(std::string_view tenant, int64_t from_day, int64_t to_day);

  IngestStats Stats();
  // Every aggregate, as canonical text (tests compare an incremental engine
  // with one rebuilt from the log, and with an oracle).
  std::string DebugSnapshot();

 private:
  struct TenantState {
    explicit TenantState(std::string id) : usage(std::move(id)) {}
    std::mutex mu;      // guards usage, and the writes to quota
    TenantUsage usage;  // guarded by mu
    QuotaView quota;    // written under mu, read lock-free
  };
  enum class OpKind : uint8_t { kEvent, kVoid, kTerms };
  // What a void or a terms record carries beyond an event (kept out of line:
  // event ops are built and moved inside the ingest lock, so they stay small).
  struct OpExtra {
    uint64_t filed_lsn = 0;  // void: the record of the event it voids
    Instant voided_at{};
    std::string actor, reason;         // void
    std::string tenant;                // terms
    int64_t version = 0;               // terms
    catalog::Timeline::Change change;  // terms
    int64_t prev_version = -1;         // terms: what was logged before (undo)
    catalog::Timeline prev_timeline;
  };
  struct Op {
    OpKind kind = OpKind::kEvent;
    uint64_t lsn = 0;            // of its record
    uint32_t dedupe_ref = 0;     // event, void: its index entry (undone if the write fails)
    UsageEvent event;            // event, void
    std::unique_ptr<OpExtra> x;  // void, terms
  };
  struct ApplyGroup {
    std::vector<Op> ops;
    uint64_t end = 0;
  };
  struct Logged {  // the timeline the log holds for a tenant
    int64_t version = -1;
    catalog::Timeline timeline;
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  template <class V>
  using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

  TenantState* Find(std::string_view tenant);
  // The tenant's state, created on first use; for a tenant the log has no
  // timeline of yet, with the timeline from the source. nullptr: unknown.
  TenantState* FindOrLoad(std::string_view tenant);
  TenantState& Create(std::string_view tenant);
  // When the tenant's billing started, recording its timeline in the log
  // first if it is not there yet. nullopt: unknown tenant.
  std::optional<Instant> TenantStart(std::string_view tenant);
  // A small number per tenant, used in dedupe keys instead of the id text
  // (saves memory per event). Assigned on first sight; not persisted.
  uint32_t TenantRef(std::string_view tenant);
  // Queues a record and its op; caller holds ingest_mu_. Returns the LSN
  // just past it.
  uint64_t QueueLocked(std::string_view payload, Op op);
  // Opens the pending group if none is; caller holds ingest_mu_.
  void BeginGroupLocked();
  // Takes back the claims of ops whose records were never written.
  void UndoLocked(const Op& op);
  void FlushLoop();
  void ApplyLoop();
  void Apply(Op& op, Instant now);
  void RefreshQuota(TenantState& t, Instant now);  // caller holds t.mu
  // Waits until the records up to `lsn_end` queued in `epoch` are durable
  // and applied; an error when a failed write discarded them.
  Status WaitDurable(uint64_t lsn_end, uint64_t epoch);
  void ReplayRecord(uint64_t lsn, std::string_view payload);
  void FlushReplay();

  MeteringOptions options_;
  const Clock& clock_;
  TimelineSource timelines_;
  ThresholdSink thresholds_;
  EventLog log_;

  std::mutex ingest_mu_;  // guards dedupe_, pending_*, next_lsn_, logged_, epoch_, stop_
  std::condition_variable work_cv_;
  DedupeIndex dedupe_;
  std::string pending_buf_;
  std::vector<Op> pending_ops_;
  uint64_t next_lsn_ = 0;
  uint64_t epoch_ = 0;  // +1 on every failed write: what was queued in it is gone
  StringMap<Logged> logged_;
  bool stop_ = false;

  std::mutex apply_mu_;  // guards apply_queue_, apply_stop_
  std::condition_variable apply_cv_;
  std::deque<ApplyGroup> apply_queue_;
  bool apply_stop_ = false;

  std::mutex durable_mu_;  // guards durable_lsn_, durable_epoch_, failed_at_, write_error_
  std::condition_variable durable_cv_;
  uint64_t durable_lsn_ = 0;
  uint64_t durable_epoch_ = 0;
  std::map<uint64_t, uint64_t> failed_at_;  // epoch -> where the log ended when it failed
  std::optional<Error> write_error_;

  std::shared_mutex tenants_mu_;  // guards tenants_ (the states themselves never move)
  StringMap<std::unique_ptr<TenantState>> tenants_;
  std::shared_mutex refs_mu_;  // guards refs_
  StringMap<uint32_t> refs_;
  std::shared_mutex starts_mu_;  // guards starts_
  StringMap<Instant> starts_;    // when each known tenant's billing started

  std::thread flusher_;
  std::thread applier_;
  TenantState* apply_tenant_ = nullptr;  // the applier's (or replay's) last tenant
  struct ReplayItem {
    uint64_t lsn;
    Op op;
    std::string key;
    uint64_t hash;
  };
  std::vector<ReplayItem> replay_batch_;
  std::string replay_tenant_;
  uint32_t replay_ref_ = 0;
  Instant replay_now_{};
  std::atomic<uint64_t> outcome_counts_[4] = {0, 0, 0, 0};
  std::atomic<uint64_t> voided_{0};
  std::atomic<uint64_t> group_commits_{0};
};

}  // namespace caas::metering
