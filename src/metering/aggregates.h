// The usage of one tenant: the terms timeline as metering recorded it, the
// aggregates per billing period and terms slice, per UTC day, the storage
// history and the voids, and the reports computed from them.
//
// Attribution (docs/metering.md, "Periods and terms"): an event is filed, when
// it is applied, under the billing period and the terms segment that the
// timeline known at that moment puts at the event's time. As the log holds
// events and timeline changes in one order, a replay files every event where
// the live engine did. Reports map what was filed onto the current timeline:
// usage filed under a segment that a later change removed (a downgrade that
// was scheduled, then withdrawn) counts under the segment now in force.
//
// Not thread-safe: the engine guards each tenant with its own lock.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "catalog/terms.h"
#include "catalog/timeline.h"
#include "core/decimal.h"
#include "metering/usage_event.h"

namespace caas::metering {

using catalog::Metric;

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

struct DayUsage {
  int64_t day;  // days since 1970-01-01 (UTC)
  int64_t messages = 0;
  int64_t api_calls = 0;
  int64_t active_users = 0;   // distinct subjects with user.active that day
  int64_t storage_bytes = 0;  // stored at the end of the day
};

// One slice of a billing period (one terms segment in force), rated.
struct SliceUsage {
  Instant from, to;
  catalog::Terms terms;
  // By MetricIndex. `used`: what the slice added to the period (MAU: users
  // first active in it; storage: GB-month accrued in it). `billable`: what of
  // that is billed (catalog/allowance.h).
  std::array<Decimal, 4> used;
  std::array<Decimal, 4> billable;
};

struct MetricUsage {
  Metric metric;
  Decimal used;
  std::optional<Decimal> included;  // of the terms in force at as_of
  std::optional<Decimal> limit;
  Decimal overage;  // billable units over the whole period
};

struct UsageReport {
  std::string tenant;
  std::string plan;
  catalog::BillingPeriod period;
  Instant as_of;
  std::vector<MetricUsage> metrics;  // messages, api_calls, mau, storage
  std::vector<SliceUsage> slices;    // in time order
};

using UserCounts = std::unordered_map<std::string, int32_t>;

class TenantUsage {
 public:
  explicit TenantUsage(std::string tenant) : tenant_(std::move(tenant)) {}
  TenantUsage(const TenantUsage&) = delete;
  TenantUsage& operator=(const TenantUsage&) = delete;

  const std::string& tenant() const { return tenant_; }
  bool has_timeline() const { return !timeline_.empty(); }
  const catalog::Timeline& timeline() const { return timeline_; }
  int64_t timeline_version() const { return timeline_version_; }
  // A change of the timeline recorded at log position `lsn`.
  void ApplyTimeline(uint64_t lsn, int64_t version, const catalog::Timeline::Change& change);

  // Adds an event recorded at `lsn` under the timeline now in force. Returns
  // the start of the period it was filed under (µs). Appends to `crossed` the
  // thresholds the event crossed first.
  int64_t Add(const UsageEvent& ev, std::vector<ThresholdEvent>* crossed);
  // Removes an event recorded at `lsn` from where Add filed it (under the
  // timeline in force at `lsn`). Returns the period start.
  int64_t Remove(const UsageEvent& ev, uint64_t lsn);
  void AddVoid(VoidRecord v) { voids_.push_back(std::move(v)); }
  const std::vector<VoidRecord>& voids() const { return voids_; }

  // Counts of the period that starts at `period_start` (µs): messages,
  // api_calls, mau by MetricIndex; zeros when nothing was filed there.
  std::array<int64_t, 3> Counts(int64_t period_start) const;
  bool IsActive(int64_t period_start, const std::string& subject) const;

  UsageReport Report(Instant at, Instant now) const;
  std::vector<DayUsage> Daily(int64_t from_day, int64_t to_day) const;
  // GB-month accrued over [from, to) of a period `full_seconds` long: the
  // integral of the bytes stored (never below zero) over 10^9 × the period,
  // 12 decimals, half away from zero.
  Decimal StorageGbMonths(Instant from, Instant to, int64_t full_seconds) const;

  // Every aggregate as canonical text (tests compare engines and oracles).
  std::string Snapshot() const;

 private:
  struct SliceAgg {
    int64_t segment_from;  // µs
    int64_t messages = 0;
    int64_t api_calls = 0;
    UserCounts users;  // kept only while the period has several slices
  };
  struct PeriodAgg {
    int64_t messages = 0;
    int64_t api_calls = 0;
    UserCounts users;
    std::vector<SliceAgg> slices;  // ascending by segment_from
    uint8_t thresholds = 0;        // bits: messages 80/100, mau 80/100
  };
  struct DayAgg {
    int64_t messages = 0;
    int64_t api_calls = 0;
    UserCounts users;
  };
  // Where an event at `t` is filed, cached for the last slice used (events
  // come in runs of one tenant and one month).
  struct Place {
    int64_t period_start;
    int64_t segment_from;
    size_t segment;
  };
  Place PlaceOf(Instant t);
  static Place PlaceIn(const catalog::Timeline& timeline, Instant t);
  SliceAgg& SliceOf(PeriodAgg& p, int64_t segment_from);
  PeriodAgg& Count(const UsageEvent& ev, const Place& place, int sign);

  const std::string tenant_;
  catalog::Timeline timeline_;
  int64_t timeline_version_ = -1;
  // Every timeline this tenant had, by the log position it came into force
  // at (a void un-files an event from where it was filed).
  std::vector<std::pair<uint64_t, catalog::Timeline>> history_;
  std::map<int64_t, PeriodAgg> periods_;  // by period start (µs)
  std::map<int64_t, DayAgg> days_;
  std::map<int64_t, int64_t> storage_;  // event time (µs) -> summed byte delta
  std::vector<VoidRecord> voids_;
  // PlaceOf cache: valid for event times in [cache_from_, cache_to_).
  int64_t cache_from_ = 0, cache_to_ = 0;
  Place cache_{};
};

}  // namespace caas::metering
