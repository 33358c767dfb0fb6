// The metering engine: exactly-once ingestion of usage events, aggregates per
// tenant, metric, billing period and day, and in-memory quota checks.
//
// Write path (see docs/architecture.md, "Metering"): request threads parse and
// validate; under one short lock each event's key (tenant, source, id) is
// looked up in the dedupe index and, when new, claimed and its record
// appended to the log buffer, in the same critical section; a single flusher
// thread writes the buffer and fdatasyncs it (group commit); an applier thread
// then applies the events to the aggregates (overlapping the next fsync) and
// wakes the requests. Ingest() returns only once
// every event it reports as accepted is durable, and duplicates of an event
// still in flight wait for that event's fsync. If the write fails the process
// ends (see EventLog): the claims, which live in memory, go with it, and a
// restart rebuilds index and aggregates from the log. So a claim and its
// durable write are one atomic step.
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
#include <unordered_set>
#include <vector>

#include "core/clock.h"
#include "core/decimal.h"
#include "core/status.h"
#include "metering/dedupe_index.h"
#include "metering/event_log.h"
#include "metering/plan_terms.h"
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
};

enum class OutcomeKind : uint8_t { kAccepted, kDuplicate, kConflict, kRejected };
std::string_view OutcomeName(OutcomeKind kind);

struct Outcome {
  OutcomeKind kind = OutcomeKind::kRejected;
  std::string field;   // rejected/conflict: the attribute at fault
  std::string reason;  // rejected/conflict
};

// A usage threshold crossed for the first time in a period.
struct ThresholdEvent {
  std::string tenant;
  Metric metric;
  Period period;
  int percent;  // 80 or 100
  int64_t used;
  int64_t included;
  Instant event_time;  // of the event that crossed it
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

struct MetricUsage {
  Metric metric;
  Decimal used;
  std::optional<Decimal> included;
  std::optional<Decimal> limit;
  Decimal overage;  // billable: beyond included when there is no hard limit
};

struct UsageReport {
  std::string tenant;
  std::string plan;
  Period period;
  Instant as_of;
  std::vector<MetricUsage> metrics;  // messages, api_calls, mau, storage
};

struct DayUsage {
  int64_t day;  // days since 1970-01-01 (UTC)
  int64_t messages = 0;
  int64_t api_calls = 0;
  int64_t active_users = 0;   // distinct subjects with user.active that day
  int64_t storage_bytes = 0;  // stored at the end of the day
};

struct VoidRecord {
  std::string tenant, source, id;
  UsageType type;
  Instant event_time;
  int64_t quantity;
  std::string subject;
  Instant voided_at;
  std::string actor;
  std::string reason;
};

struct IngestStats {
  uint64_t events = 0;  // distinct event keys ever accepted
  uint64_t log_bytes = 0;
  size_t dedupe_memory_bytes = 0;
  // Outcomes since the process started.
  uint64_t accepted = 0, duplicate = 0, conflict = 0, rejected = 0, voided = 0;
  uint64_t group_commits = 0;
};

// A log record as read back (event, or void with its audit fields).
struct DecodedRecord {
  uint8_t kind = 0;
  UsageEvent event;
  Instant voided_at{};
  std::string actor, reason;
};

class MeteringEngine {
 public:
  using TenantExists = std::function<bool(std::string_view tenant)>;
  using ThresholdSink = std::function<void(const ThresholdEvent&)>;

  MeteringEngine(MeteringOptions options, const Clock& clock, const PlanDirectory& plans,
                 TenantExists tenant_exists, ThresholdSink thresholds);
  ~MeteringEngine();
  MeteringEngine(const MeteringEngine&) = delete;
  MeteringEngine& operator=(const MeteringEngine&) = delete;

  // Replays the log (rebuilding index and aggregates) and starts the
  // flusher. Throws LogCorruption / std::system_error.
  void Open();

  // One outcome per element, in order. Blocks until accepted events are
  // durable and visible in usage and quota answers.
  std::vector<Outcome> Ingest(std::vector<ParsedEvent>& events);

  // Removes a counted event from every aggregate; its key stays taken.
  // kNotFound when unknown, kConflict when already voided.
  Result<VoidRecord> Void(std::string_view tenant, std::string_view source, std::string_view id,
                          std::string_view actor, std::string_view reason);
  std::vector<VoidRecord> Voids(std::string_view tenant) const;

  // kNotFound for an unknown tenant. No storage round trip.
  Result<QuotaDecision> CheckQuota(std::string_view tenant, Metric metric,
                                   const Decimal& quantity) const;
  // The fast path for counted metrics (messages, api_calls, mau).
  Result<QuotaDecision> CheckCount(std::string_view tenant, Metric metric, int64_t quantity) const;
  // True when `subject` is already counted as active in the current period.
  bool IsActive(std::string_view tenant, std::string_view subject) const;

  Result<UsageReport> Usage(std::string_view tenant, Instant at) const;
  Result<std::vector<DayUsage>> Daily(std::string_view tenant, int64_t from_day,
                                      int64_t to_day) const;

  // Call when a tenant's plan terms or period changed.
  void RefreshTerms(std::string_view tenant);

  IngestStats Stats() const;
  // Every aggregate, as canonical text (tests compare an incremental engine
  // with one rebuilt from the log, and with an oracle).
  std::string DebugSnapshot() const;

 private:
  struct PeriodAgg {
    Period period;
    int64_t messages = 0;
    int64_t api_calls = 0;
    std::unordered_map<std::string, int32_t> users;
    uint8_t thresholds = 0;  // bits: messages 80/100, mau 80/100
  };
  struct DayAgg {
    int64_t messages = 0;
    int64_t api_calls = 0;
    std::unordered_map<std::string, int32_t> users;
  };
  struct TenantState {
    explicit TenantState(std::string id) : tenant(std::move(id)) {}
    const std::string tenant;
    mutable std::mutex mu;  // guards everything below but the atomics
    PlanTerms terms;
    std::map<int64_t, PeriodAgg> periods;  // by period start (µs)
    std::map<int64_t, DayAgg> days;
    std::map<int64_t, int64_t> storage;  // event time (µs) -> summed byte delta
    std::vector<VoidRecord> voids;
    Period last_period{};  // cache for PeriodFor
    // The quota view of the current period, published with a sequence lock.
    mutable std::atomic<uint64_t> q_seq{0};
    mutable std::atomic<int64_t> q_start{0}, q_end{0};
    mutable std::atomic<int64_t> q_used[3] = {0, 0, 0};
    std::atomic<int64_t> q_limit[3] = {-1, -1, -1};     // -1: none
    std::atomic<int64_t> q_included[3] = {-1, -1, -1};  // -1: none
  };
  struct Op {
    bool is_void;
    UsageEvent event;
    Instant voided_at;
    std::string actor;
    std::string reason;
  };

  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  TenantState* Find(std::string_view tenant) const;
  TenantState* FindOrCreate(std::string_view tenant);
  bool KnownTenant(std::string_view tenant);
  // A small number per tenant, used in dedupe keys instead of the id text
  // (saves memory per event). Assigned on first sight; not persisted.
  uint32_t TenantRef(std::string_view tenant);
  void LoadTerms(TenantState& t);
  struct ApplyGroup {
    std::vector<Op> ops;
    uint64_t end = 0;
  };
  void FlushLoop();
  void ApplyLoop();
  void Apply(const Op& op, bool emit_thresholds, Instant now);
  PeriodAgg& PeriodOf(TenantState& t, Instant time);
  void PublishQuota(const TenantState& t, const PeriodAgg& p) const;
  void RefreshQuotaView(const TenantState& t, Instant now) const;
  Decimal StorageGbMonths(const TenantState& t, const Period& p, Instant as_of) const;
  void WaitDurable(uint64_t lsn_end);
  void ReplayRecord(uint64_t lsn, std::string_view payload);

  MeteringOptions options_;
  const Clock& clock_;
  const PlanDirectory& plans_;
  TenantExists tenant_exists_;
  ThresholdSink thresholds_;
  EventLog log_;

  std::mutex ingest_mu_;  // dedupe_, pending_*, next_lsn_
  std::condition_variable work_cv_;
  DedupeIndex dedupe_;
  std::string pending_buf_;
  std::vector<Op> pending_ops_;
  uint64_t next_lsn_ = 0;
  bool stop_ = false;

  std::mutex apply_mu_;
  std::condition_variable apply_cv_;
  std::deque<ApplyGroup> apply_queue_;
  bool apply_stop_ = false;

  std::mutex durable_mu_;
  std::condition_variable durable_cv_;
  uint64_t durable_lsn_ = 0;

  mutable std::shared_mutex tenants_mu_;
  std::unordered_map<std::string, std::unique_ptr<TenantState>, StringHash, std::equal_to<>>
      tenants_;
  std::shared_mutex refs_mu_;
  std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>> refs_;
  std::mutex known_mu_;
  std::unordered_set<std::string, StringHash, std::equal_to<>> known_;

  std::thread flusher_;
  std::thread applier_;
  TenantState* apply_tenant_ = nullptr;  // the applier's (or replay's) last tenant
  struct ReplayItem {
    uint64_t lsn;
    DecodedRecord record;
    std::string key;
    uint64_t hash;
  };
  void FlushReplay();
  std::vector<ReplayItem> replay_batch_;
  std::string replay_tenant_, replay_key_;
  uint32_t replay_ref_ = 0;
  Instant replay_now_{};
  std::atomic<uint64_t> outcome_counts_[4] = {0, 0, 0, 0};
  std::atomic<uint64_t> voided_{0};
  std::atomic<uint64_t> group_commits_{0};
};

}  // namespace caas::metering
