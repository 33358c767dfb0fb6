#include "metering/aggregates.h"

#include <algorithm>
#include <set>
#include <sstream>

#include "catalog/allowance.h"

namespace caas::metering {
namespace {

constexpr int64_t kMicrosPerDay = 86'400'000'000;

int64_t Us(Instant t) { return t.time_since_epoch().count(); }
Instant FromUs(int64_t us) { return Instant(Micros(us)); }
int64_t DayOf(int64_t us) {
  return us >= 0 ? us / kMicrosPerDay : -((-us + kMicrosPerDay - 1) / kMicrosPerDay);
}

void AddUser(UserCounts& users, const std::string& subject, int sign) {
  if (sign > 0) {
    ++users[subject];
    return;
  }
  auto it = users.find(subject);
  if (it != users.end() && --it->second <= 0) users.erase(it);
}

}  // namespace

void TenantUsage::ApplyTimeline(uint64_t lsn, int64_t version,
                                const catalog::Timeline::Change& change) {
  timeline_.Apply(change);
  timeline_version_ = version;
  cache_from_ = cache_to_ = 0;
  if (!history_.empty() && history_.back().first == lsn) history_.pop_back();
  history_.emplace_back(lsn, timeline_);
}

TenantUsage::Place TenantUsage::PlaceIn(const catalog::Timeline& timeline, Instant t) {
  const catalog::BillingPeriod bp = timeline.PeriodAt(t);
  const size_t seg = timeline.IndexAt(t);
  return Place{Us(bp.period.start), Us(timeline.segments()[seg].from), seg};
}

TenantUsage::Place TenantUsage::PlaceOf(Instant t) {
  const int64_t us = Us(t);
  if (us >= cache_from_ && us < cache_to_) return cache_;
  cache_ = PlaceIn(timeline_, t);
  // The cache covers the slice: the period and the segment, intersected.
  const catalog::BillingPeriod bp = timeline_.PeriodAt(t);
  const Instant seg_end = timeline_.SegmentEnd(cache_.segment);
  cache_from_ = std::max(cache_.period_start, cache_.segment_from);
  cache_to_ = std::min(Us(bp.period.end), seg_end == Instant::max() ? INT64_MAX : Us(seg_end));
  if (!(us >= cache_from_ && us < cache_to_)) cache_from_ = cache_to_ = 0;  // before the start
  return cache_;
}

TenantUsage::SliceAgg& TenantUsage::SliceOf(PeriodAgg& p, int64_t segment_from) {
  auto it = std::lower_bound(p.slices.begin(), p.slices.end(), segment_from,
                             [](const SliceAgg& s, int64_t from) { return s.segment_from < from; });
  if (it != p.slices.end() && it->segment_from == segment_from) return *it;
  if (p.slices.size() == 1) p.slices.front().users = p.users;  // no longer implied
  return *p.slices.insert(it, SliceAgg{segment_from, 0, 0, {}});
}

int64_t TenantUsage::Remove(const UsageEvent& ev, uint64_t lsn) {
  // The timeline in force when the event was recorded: the last one that
  // came into force before it.
  const catalog::Timeline* at = &timeline_;
  for (auto it = history_.rbegin(); it != history_.rend(); ++it) {
    at = &it->second;
    if (it->first < lsn) break;
  }
  const Place place = PlaceIn(*at, ev.time);
  Count(ev, place, -1);
  return place.period_start;
}

int64_t TenantUsage::Add(const UsageEvent& ev, std::vector<ThresholdEvent>* crossed) {
  const Place place = PlaceOf(ev.time);
  PeriodAgg& p = Count(ev, place, +1);
  if (crossed != nullptr) {
    const catalog::Terms& terms = timeline_.segments()[place.segment].terms;
    struct Check {
      Metric metric;
      int64_t used;
      uint8_t bit80, bit100;
    };
    for (const Check& c : {Check{Metric::kMessages, p.messages, 1, 2},
                           Check{Metric::kMau, static_cast<int64_t>(p.users.size()), 4, 8}}) {
      const auto& included = terms.of(c.metric).included;
      if (!included || included->IsZero()) continue;
      const int64_t inc = included->ToMinorUnitsExact(0).value();
      const __int128 used = c.used;
      for (auto [percent, bit] : {std::pair{80, c.bit80}, std::pair{100, c.bit100}}) {
        if (!(p.thresholds & bit) && used * 100 >= static_cast<__int128>(inc) * percent) {
          p.thresholds |= bit;
          crossed->push_back(ThresholdEvent{tenant_, c.metric, timeline_.PeriodAt(ev.time).period,
                                            percent, c.used, inc, ev.time});
        }
      }
    }
  }
  return place.period_start;
}

TenantUsage::PeriodAgg& TenantUsage::Count(const UsageEvent& ev, const Place& place, int sign) {
  PeriodAgg& p = periods_[place.period_start];
  SliceAgg& s = SliceOf(p, place.segment_from);
  const bool slice_users = p.slices.size() > 1;
  const int64_t day = DayOf(Us(ev.time));
  switch (ev.type) {
    case UsageType::kMessageSent:
      p.messages += sign * ev.quantity;
      s.messages += sign * ev.quantity;
      days_[day].messages += sign * ev.quantity;
      break;
    case UsageType::kApiCall:
      p.api_calls += sign * ev.quantity;
      s.api_calls += sign * ev.quantity;
      days_[day].api_calls += sign * ev.quantity;
      break;
    case UsageType::kUserActive:
      AddUser(p.users, ev.subject, sign);
      if (slice_users) AddUser(s.users, ev.subject, sign);
      AddUser(days_[day].users, ev.subject, sign);
      break;
    case UsageType::kMediaStored: {
      auto& slot = storage_[Us(ev.time)];
      slot += sign * ev.quantity;
      if (slot == 0) storage_.erase(Us(ev.time));
      break;
    }
  }
  return p;
}

std::array<int64_t, 3> TenantUsage::Counts(int64_t period_start) const {
  auto it = periods_.find(period_start);
  if (it == periods_.end()) return {0, 0, 0};
  return {it->second.messages, it->second.api_calls, static_cast<int64_t>(it->second.users.size())};
}

bool TenantUsage::IsActive(int64_t period_start, const std::string& subject) const {
  auto it = periods_.find(period_start);
  return it != periods_.end() && it->second.users.count(subject) > 0;
}

Decimal TenantUsage::StorageGbMonths(Instant from, Instant to, int64_t full_seconds) const {
  if (to <= from || full_seconds <= 0) return Decimal();
  const int64_t from_us = Us(from), to_us = Us(to);
  __int128 level = 0, byte_us = 0;
  int64_t cursor = from_us;
  for (const auto& [time, delta] : storage_) {
    if (time >= to_us) break;
    if (time > from_us) {
      byte_us += level * (time - cursor);
      cursor = time;
    }
    // A removal larger than what is stored empties it; it never goes below 0.
    level = std::max<__int128>(0, level + delta);
  }
  byte_us += level * (to_us - cursor);
  // GB-month with 12 decimals: byte_us / (10^9 × full_us), scaled by 10^12.
  const __int128 num = byte_us * 1000;
  const __int128 den = static_cast<__int128>(full_seconds) * 1'000'000;
  __int128 q = num / den;
  if ((num % den) * 2 >= den) ++q;  // half away from zero (num >= 0)
  return Decimal::FromRaw(q);
}

UsageReport TenantUsage::Report(Instant at, Instant now) const {
  UsageReport r;
  r.tenant = tenant_;
  r.period = timeline_.PeriodAt(at);
  const Period& period = r.period.period;
  r.as_of = std::clamp(now, period.start, period.end);
  const std::vector<catalog::Timeline::Slice> slices = timeline_.SlicesOf(period);
  // What was filed under this period, mapped onto today's slices.
  std::vector<int64_t> messages(slices.size(), 0), api_calls(slices.size(), 0);
  std::vector<UserCounts> users(slices.size());
  auto slice_index = [&](int64_t segment_from) {
    const size_t seg = timeline_.IndexAt(std::max(FromUs(segment_from), period.start));
    size_t best = 0;
    for (size_t k = 0; k < slices.size(); ++k) {
      if (slices[k].segment <= seg) best = k;
    }
    return best;
  };
  auto it = periods_.find(Us(period.start));
  if (it != periods_.end()) {
    const PeriodAgg& p = it->second;
    for (const SliceAgg& s : p.slices) {
      const size_t k = slice_index(s.segment_from);
      messages[k] += s.messages;
      api_calls[k] += s.api_calls;
      const UserCounts& u = p.slices.size() == 1 ? p.users : s.users;
      for (const auto& [subject, n] : u) users[k][subject] += n;
    }
  }
  std::set<std::string> seen;
  for (size_t k = 0; k < slices.size(); ++k) {
    SliceUsage su;
    su.from = slices[k].from;
    su.to = slices[k].to;
    su.terms = timeline_.segments()[slices[k].segment].terms;
    su.used[catalog::MetricIndex(Metric::kMessages)] = Decimal::FromInt(messages[k]);
    su.used[catalog::MetricIndex(Metric::kApiCalls)] = Decimal::FromInt(api_calls[k]);
    int64_t fresh = 0;
    for (const auto& [subject, n] : users[k]) {
      if (n > 0 && seen.insert(subject).second) ++fresh;
    }
    su.used[catalog::MetricIndex(Metric::kMau)] = Decimal::FromInt(fresh);
    su.used[catalog::MetricIndex(Metric::kStorage)] =
        StorageGbMonths(su.from, std::min(su.to, r.as_of), r.period.full_seconds);
    r.slices.push_back(std::move(su));
  }
  // Which slice's terms are "in force" for the answer: the one at as_of.
  size_t current = 0;
  for (size_t k = 0; k < r.slices.size(); ++k) {
    if (r.slices[k].from < r.as_of || k == 0) current = k;
  }
  r.plan = r.slices[current].terms.plan;
  for (Metric m : catalog::kAllMetrics) {
    const int i = catalog::MetricIndex(m);
    std::vector<catalog::SliceUse> uses;
    for (const SliceUsage& s : r.slices) uses.push_back({&s.terms.of(m), s.used[i]});
    const std::vector<Decimal> billable = catalog::BillableBySlice(uses);
    MetricUsage mu;
    mu.metric = m;
    for (size_t k = 0; k < r.slices.size(); ++k) {
      r.slices[k].billable[i] = billable[k];
      mu.used = mu.used.Add(r.slices[k].used[i]).value();
      mu.overage = mu.overage.Add(billable[k]).value();
    }
    mu.included = r.slices[current].terms.of(m).included;
    mu.limit = r.slices[current].terms.of(m).limit;
    r.metrics.push_back(mu);
  }
  return r;
}

std::vector<DayUsage> TenantUsage::Daily(int64_t from_day, int64_t to_day) const {
  std::vector<DayUsage> out;
  auto storage_it = storage_.begin();
  __int128 level = 0;
  for (int64_t day = from_day; day <= to_day; ++day) {
    DayUsage d;
    d.day = day;
    if (auto it = days_.find(day); it != days_.end()) {
      d.messages = it->second.messages;
      d.api_calls = it->second.api_calls;
      d.active_users = static_cast<int64_t>(it->second.users.size());
    }
    const int64_t day_end = (day + 1) * kMicrosPerDay;
    while (storage_it != storage_.end() && storage_it->first < day_end) {
      level = std::max<__int128>(0, level + storage_it->second);
      ++storage_it;
    }
    d.storage_bytes = static_cast<int64_t>(level);
    out.push_back(d);
  }
  return out;
}

std::string TenantUsage::Snapshot() const {
  std::ostringstream os;
  for (const auto& [start, p] : periods_) {
    if (p.messages == 0 && p.api_calls == 0 && p.users.empty()) continue;
    std::vector<std::string> users;
    for (const auto& [u, c] : p.users) users.push_back(u);
    std::sort(users.begin(), users.end());
    os << tenant_ << " period " << start << " messages=" << p.messages
       << " api_calls=" << p.api_calls << " mau=" << users.size() << " users=";
    for (const auto& u : users) os << u << ',';
    os << '\n';
    if (p.slices.size() > 1) {
      for (const SliceAgg& s : p.slices) {
        std::vector<std::string> su;
        for (const auto& [u, c] : s.users) su.push_back(u);
        std::sort(su.begin(), su.end());
        os << tenant_ << "  slice " << s.segment_from << " messages=" << s.messages
           << " api_calls=" << s.api_calls << " users=";
        for (const auto& u : su) os << u << ',';
        os << '\n';
      }
    }
  }
  for (const auto& [day, d] : days_) {
    if (d.messages == 0 && d.api_calls == 0 && d.users.empty()) continue;
    os << tenant_ << " day " << day << " messages=" << d.messages << " api_calls=" << d.api_calls
       << " active=" << d.users.size() << '\n';
  }
  for (const auto& [time, delta] : storage_) {
    os << tenant_ << " storage " << time << ' ' << delta << '\n';
  }
  return os.str();
}

}  // namespace caas::metering
