#include "catalog/timeline.h"

#include <algorithm>

#include "core/status.h"

namespace caas::catalog {

namespace {
int64_t Seconds(Instant a, Instant b) {
  return std::chrono::duration_cast<std::chrono::seconds>(b - a).count();
}
}  // namespace

BillingPeriod SchedulePeriodAt(const Schedule& s, Instant t) {
  if (s.trial_end && t < *s.trial_end) {
    const Period p{s.start, *s.trial_end};
    return {p, Seconds(p.start, p.end)};
  }
  const Period p = s.calendar ? CalendarMonthContaining(t) : MonthlyPeriodContaining(s.anchor, t);
  return {p, Seconds(p.start, p.end)};
}

Timeline::Timeline(std::vector<Segment> segments) : segments_(std::move(segments)) { Check(); }

void Timeline::Check() const {
  for (size_t i = 1; i < segments_.size(); ++i) {
    if (!(segments_[i - 1].from < segments_[i].from)) {
      AbortWithMessage("Timeline", "segments must ascend strictly by their start");
    }
  }
}

size_t Timeline::IndexAt(Instant t) const {
  // The last segment starting at or before t. Timelines are short (one
  // segment per change): a linear scan from the end finds today's at once.
  for (size_t i = segments_.size(); i-- > 0;) {
    if (segments_[i].from <= t) return i;
  }
  return 0;
}

Instant Timeline::SegmentEnd(size_t i) const {
  return i + 1 < segments_.size() ? segments_[i + 1].from : Instant::max();
}

Instant Timeline::ScheduleEnd(size_t i) const {
  for (size_t j = i + 1; j < segments_.size(); ++j) {
    if (!(segments_[j].schedule == segments_[i].schedule)) return segments_[j].from;
  }
  return Instant::max();
}

BillingPeriod Timeline::PeriodAt(Instant t) const {
  const size_t i = IndexAt(t);
  const Schedule& s = segments_[i].schedule;
  BillingPeriod bp = SchedulePeriodAt(s, t);
  if (t < segments_[i].from) return bp;  // before the tenant's first subscription (old data)
  bp.period.start = std::max(bp.period.start, s.start);
  bp.period.end = std::min(bp.period.end, ScheduleEnd(i));
  return bp;
}

std::vector<Timeline::Slice> Timeline::SlicesOf(const Period& period) const {
  std::vector<Slice> out;
  for (size_t i = IndexAt(period.start); i < segments_.size(); ++i) {
    const Instant from = std::max(period.start, segments_[i].from);
    const Instant to = std::min(period.end, SegmentEnd(i));
    if (from >= period.end) break;
    if (from < to) out.push_back(Slice{from, to, i});
  }
  if (out.empty()) out.push_back(Slice{period.start, period.end, IndexAt(period.start)});
  return out;
}

std::optional<Timeline::Change> Timeline::Diff(const Timeline& next) const {
  if (*this == next) return std::nullopt;
  size_t keep = 0;
  while (keep < segments_.size() && keep < next.segments_.size() &&
         segments_[keep] == next.segments_[keep]) {
    ++keep;
  }
  Change c;
  c.keep = keep;
  c.tail.assign(next.segments_.begin() + static_cast<long>(keep), next.segments_.end());
  return c;
}

void Timeline::Apply(const Change& change) {
  if (change.keep > segments_.size()) AbortWithMessage("Timeline::Apply", "keeps too many");
  segments_.erase(segments_.begin() + static_cast<long>(change.keep), segments_.end());
  segments_.insert(segments_.end(), change.tail.begin(), change.tail.end());
  Check();
}

}  // namespace caas::catalog
