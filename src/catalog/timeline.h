// A tenant's terms over time: which terms were (and, as far as is scheduled,
// will be) in force at every instant, and the billing periods they fall in.
//
// A timeline is a list of segments, ascending by their start; a segment is in
// force from its `from` until the next one's. Each segment carries the
// schedule of billing periods it belongs to: periods repeat monthly from the
// schedule's anchor (or follow calendar months, or are one trial period), and
// are clipped to the schedule's life, which starts at `schedule.start` and
// ends where a later segment starts another schedule (a cancellation, a trial
// end, a re-anchoring). A plan change that keeps the schedule (an upgrade, a
// price change, a migration) starts a new segment inside the same period.
//
// The subscriptions module builds timelines (the realized history plus the
// next scheduled transition); metering records them in its event log and
// rates usage by them; invoices rate periods by them. Nothing here reads a
// clock or a store.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "catalog/terms.h"
#include "core/time.h"

namespace caas::catalog {

struct Schedule {
  Instant start;          // when these periods began (a subscription start, a re-anchoring)
  Instant anchor;         // monthly periods repeat from here
  bool calendar = false;  // calendar months (the first one clipped at `start`)
  std::optional<Instant> trial_end;  // a trial: one period [start, trial_end)
  bool operator==(const Schedule&) const = default;
};

struct Segment {
  Instant from;
  Schedule schedule;
  Terms terms;
  bool operator==(const Segment&) const = default;
};

// A billing period and the length of the whole monthly period it is part of.
// They differ for a first calendar period that starts mid-month and for a
// period cut short by a cancellation: prorations and GB-month divide by the
// whole length.
struct BillingPeriod {
  Period period;
  int64_t full_seconds = 0;
  bool operator==(const BillingPeriod&) const = default;
};

// The period of `s` containing `t`, unclipped, and the whole length.
BillingPeriod SchedulePeriodAt(const Schedule& s, Instant t);

class Timeline {
 public:
  // One piece of a billing period in which one segment is in force.
  struct Slice {
    Instant from;
    Instant to;
    size_t segment;  // index into segments()
  };

  Timeline() = default;
  // `segments` ascending by `from`, strictly; aborts otherwise (a bug).
  explicit Timeline(std::vector<Segment> segments);

  const std::vector<Segment>& segments() const { return segments_; }
  bool empty() const { return segments_.empty(); }
  // When the first segment starts (the tenant's first subscription).
  Instant start() const { return segments_.front().from; }

  // The segment in force at `t` (the first one for an instant before start()).
  size_t IndexAt(Instant t) const;
  const Segment& At(Instant t) const { return segments_[IndexAt(t)]; }
  // Where segment `i` stops being in force (Instant::max() for the last).
  Instant SegmentEnd(size_t i) const;
  // The billing period containing `t`, clipped to its schedule's life.
  // Before start(): the first schedule's periods, extended backwards.
  BillingPeriod PeriodAt(Instant t) const;
  // The slices of `period` (as returned by PeriodAt), in time order.
  std::vector<Slice> SlicesOf(const Period& period) const;

  // Changes as a record of "keep the first `keep` segments, then `tail`":
  // applying Diff(next) to this timeline gives `next`.
  struct Change {
    size_t keep = 0;
    std::vector<Segment> tail;
  };
  // std::nullopt when `next` equals this timeline.
  std::optional<Change> Diff(const Timeline& next) const;
  // Applies a change; aborts when it would break the order.
  void Apply(const Change& change);

  bool operator==(const Timeline&) const = default;

 private:
  // Where the schedule of segment `i` ends: the first later segment with
  // another schedule (Instant::max() when none).
  Instant ScheduleEnd(size_t i) const;
  void Check() const;
  std::vector<Segment> segments_;
};

// A timeline with the version of the document it was built from: a newer
// version never gives way to an older one.
struct VersionedTimeline {
  int64_t version = 0;
  Timeline timeline;
};

}  // namespace caas::catalog
