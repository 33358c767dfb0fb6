// A randomized test against a model, in the way leveldb checks its database
// against ModelDB: random plan changes, trials, cancellations, card changes,
// custom terms, plan migrations, usage events, voids, time and restarts. The
// model is written from docs/subscriptions.md and docs/metering.md with its
// own calendar arithmetic; after every step the service must agree with it:
// - every operation succeeds or fails as the model says;
// - the pending lines are exactly the model's, amount by amount;
// - the audit trail replays to the current state;
// - usage and overage of every period so far equal the model's, computed
//   from the whole history of events and terms;
// - figures are identical before and after a restart.
// Seed: printed on failure; CAAS_TEST_SEED replays it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <set>

#include "billing/world.h"
#include "subscriptions/state_machine.h"
#include "test_seed.h"

namespace caas::billing_test {
namespace {

using catalog::Metric;
using subscriptions::State;
namespace sc = std::chrono;

// Pro has two versions: new subscriptions take v2 ($129); migrations move
// subscriptions between them.
constexpr const char* kCatalog = R"({"currency":"USD","plans":[
 {"id":"free","version":1,"name":"Free","tier":0,"base_fee":"0.00",
  "metrics":{"messages":{"included":10000,"limit":10000},"mau":{"included":1000,"limit":1000},
             "api_calls":{"unit_price":"0"},"storage":{}},
  "features":{"sso":false,"custom_branding":false,"data_export":false,"priority_support":false,"webhooks":false,"audit_log":false}},
 {"id":"pro","version":1,"name":"Pro","tier":1,"base_fee":"99.00","trial_days":14,
  "metrics":{"messages":{"included":100000,"unit_price":"0.0001"},"mau":{"included":10000,"unit_price":"0.01"},
             "api_calls":{"unit_price":"0"},"storage":{"unit_price":"0.10"}},
  "features":{"sso":false,"custom_branding":true,"data_export":true,"priority_support":false,"webhooks":true,"audit_log":false}},
 {"id":"pro","version":2,"name":"Pro","tier":1,"base_fee":"129.00","trial_days":14,
  "metrics":{"messages":{"included":50,"unit_price":"0.0002"},"mau":{"included":3,"unit_price":"0.02"},
             "api_calls":{"unit_price":"0"},"storage":{"included":1,"unit_price":"0.20"}},
  "features":{"sso":false,"custom_branding":true,"data_export":true,"priority_support":false,"webhooks":true,"audit_log":false}},
 {"id":"enterprise","version":1,"name":"Enterprise","tier":2,"base_fee":"0.00","custom":true,
  "metrics":{"messages":{},"mau":{},"api_calls":{"unit_price":"0"},"storage":{"unit_price":"0.10"}},
  "features":{"sso":true,"custom_branding":true,"data_export":true,"priority_support":true,"webhooks":true,"audit_log":true}}]})";

const catalog::Catalog& TestCatalog() {
  static const catalog::Catalog c = catalog::Catalog::Parse(kCatalog, "model.json").value();
  return c;
}

// ---- The model's own calendar (civil dates, not core/time.cc) ----

int64_t Secs(Instant a, Instant b) { return sc::duration_cast<sc::seconds>(b - a).count(); }
int64_t RoundDiv(__int128 num, int64_t den) {  // half away from zero, den > 0
  const bool neg = num < 0;
  unsigned __int128 m = neg ? -static_cast<unsigned __int128>(num) : num;
  unsigned __int128 q = m / den, r = m % den;
  if (2 * r >= static_cast<unsigned __int128>(den)) ++q;
  return neg ? -static_cast<int64_t>(q) : static_cast<int64_t>(q);
}
Instant MonthsAfter(Instant anchor, int k) {
  const auto day = sc::floor<sc::days>(anchor);
  const sc::year_month_day ymd{day};
  int y = static_cast<int>(ymd.year());
  int m = static_cast<int>(static_cast<unsigned>(ymd.month())) - 1 + k;
  y += m >= 0 ? m / 12 : -((11 - m) / 12);
  m = ((m % 12) + 12) % 12 + 1;
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int last = kDays[m - 1] + (m == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) ? 1 : 0);
  int d = std::min(static_cast<int>(static_cast<unsigned>(ymd.day())), last);
  return sc::sys_days{sc::year{y} / m / d} + (anchor - day);
}

struct MSched {
  Instant start, anchor;
  bool calendar = false;
  std::optional<Instant> trial_end;
  bool operator==(const MSched&) const = default;
};
struct MPeriod {
  Instant start, end;
  int64_t full;
};
// The unclipped period of a schedule containing t.
MPeriod RawPeriod(const MSched& s, Instant t) {
  if (s.trial_end && t < *s.trial_end) return {s.start, *s.trial_end, Secs(s.start, *s.trial_end)};
  const Instant anchor = s.calendar ? ParseRfc3339("2000-01-01T00:00:00Z").value() : s.anchor;
  int k = 0;
  while (MonthsAfter(anchor, k) > t) k -= 12;
  while (MonthsAfter(anchor, k + 12) <= t) k += 12;
  while (MonthsAfter(anchor, k + 1) <= t) ++k;
  const Instant a = MonthsAfter(anchor, k), b = MonthsAfter(anchor, k + 1);
  return {a, b, Secs(a, b)};
}

// ---- The model ----

struct MTerms {  // effective terms, as the docs define them
  std::string plan;
  int version = 1;
  bool trial = false;
  int64_t fee = 0;
  std::array<catalog::MetricTerms, 4> m;
  bool operator==(const MTerms&) const = default;
};
struct MSeg {
  Instant from;
  MSched sched;
  MTerms terms;
};
struct MEvent {
  std::string id;
  metering::UsageType type;
  Instant time;
  int64_t quantity;
  std::string subject;
  bool voided = false;
};

enum Op {
  kUpgradeNow,
  kUpgradeReanchor,
  kDowngradeScheduled,
  kDowngradeNow,
  kDowngradeCanceled,
  kTrial,
  kTrialConvertEarly,
  kCancelEnd,
  kCancelNow,
  kReactivate,
  kCard,
  kTerms,
  kMigrate,
  kOpCount
};

class Model {
 public:
  explicit Model(Instant created) {
    plan_ = "free";
    sched_ = MSched{created, created, false, {}};
    Period(created);
    Segment(created);
  }

  // Everything due at or before `now`, in order.
  void CatchUp(Instant now) {
    for (;;) {
      Instant due;
      if (status_ == State::kTrialing) {
        due = reminder_sent_ ? *sched_.trial_end : *sched_.trial_end - sc::hours(72);
      } else {
        due = period_.end;
      }
      if (due > now) return;
      RunOne(due);
    }
  }

  // Each returns the error code the service must answer, or nullopt for success.
  std::optional<ErrorCode> Change(const std::string& to, std::optional<subscriptions::When> when,
                                  std::optional<subscriptions::Anchor> anchor, bool trial,
                                  Instant now, Op* kind) {
    const int cur_tier = Tier(plan_), to_tier = Tier(to);
    const int to_version = to == "pro" ? 2 : 1;
    if (status_ == State::kPastDue || status_ == State::kSuspended) return kPre;
    if (trial) {
      *kind = kTrial;
      if (when || anchor) return ErrorCode::kInvalidArgument;
      if (trial_used_ || to != "pro" || cur_tier >= to_tier) return kPre;
      trial_used_ = true;
      Credit(now);
      Restart(to, to_version, State::kTrialing, now,
              MSched{now, now, sched_.calendar, now + sc::hours(24 * 14)});
      return std::nullopt;
    }
    if (status_ == State::kTrialing) {
      *kind = kTrialConvertEarly;
      if (anchor) return ErrorCode::kInvalidArgument;
      if (to != plan_) return kPre;
      if (when == subscriptions::When::kPeriodEnd) return ErrorCode::kInvalidArgument;
      if (!card_) return kPre;
      status_ = State::kActive;
      sched_ = MSched{now, now, sched_.calendar, {}};
      Period(now);
      Segment(now);
      return std::nullopt;
    }
    if (to == plan_) {
      *kind = kDowngradeCanceled;
      if (anchor) return ErrorCode::kInvalidArgument;
      if (!scheduled_) return kPre;
      scheduled_.reset();
      return std::nullopt;
    }
    const bool up = to_tier > cur_tier;
    const auto at = when.value_or(up ? subscriptions::When::kNow : subscriptions::When::kPeriodEnd);
    if (at == subscriptions::When::kPeriodEnd) {
      *kind = kDowngradeScheduled;
      if (anchor) return ErrorCode::kInvalidArgument;
      scheduled_ = std::make_pair(to, to_version);
      cancel_at_end_ = false;
      return std::nullopt;
    }
    if (anchor) {
      *kind = kUpgradeReanchor;
      if (!up || cur_tier != 0) return ErrorCode::kInvalidArgument;
      Restart(to, to_version, State::kActive, now,
              MSched{now, now, *anchor == subscriptions::Anchor::kCalendar, {}});
      return std::nullopt;
    }
    *kind = up ? kUpgradeNow : kDowngradeNow;
    const int64_t fee = Fee(to, to_version, State::kActive);
    Credit(now);
    ChargeRest(fee, now);
    plan_ = to;
    version_ = to_version;
    scheduled_.reset();
    cancel_at_end_ = false;
    Segment(now);
    return std::nullopt;
  }

  std::optional<ErrorCode> Cancel(bool now_flag, Instant now) {
    if (plan_ == "free") return kPre;
    if (status_ == State::kTrialing) {
      Restart("free", 1, State::kActive, now, MSched{now, now, sched_.calendar, {}});
      return std::nullopt;
    }
    if (!now_flag) {
      if (cancel_at_end_) return kPre;
      cancel_at_end_ = true;
      scheduled_.reset();
      return std::nullopt;
    }
    Credit(now);
    Restart("free", 1, State::kActive, now, MSched{now, now, sched_.calendar, {}});
    return std::nullopt;
  }

  std::optional<ErrorCode> Reactivate() {
    if (!cancel_at_end_) return kPre;
    cancel_at_end_ = false;
    return std::nullopt;
  }

  void Card(bool on) { card_ = on; }

  void Terms(int64_t fee, const Decimal& price, Instant now) {
    const int64_t before = Fee(plan_, version_, status_);
    custom_fee_ = fee;
    custom_price_ = price;
    if (Fee(plan_, version_, status_) != before) {
      Credit(now);
      ChargeRest(Fee(plan_, version_, status_), now);
    }
    Segment(now);
  }

  int Migrate(std::optional<int> from, int to, Instant now) {
    bool touched = false;
    if (plan_ == "pro" && version_ != to && (!from || *from == version_)) {
      const int64_t before = Fee(plan_, version_, status_), after = Fee(plan_, to, status_);
      if (before != after) {
        Credit(now);
        ChargeRest(after, now);
      }
      version_ = to;
      Segment(now);
      touched = true;
    }
    if (scheduled_ && scheduled_->first == "pro" && scheduled_->second != to) {
      scheduled_->second = to;
      touched = true;
    }
    return touched ? 1 : 0;
  }

  const std::vector<int64_t>& lines() const { return lines_; }
  const std::vector<MSeg>& segments() const { return segs_; }
  const std::string& plan() const { return plan_; }
  int version() const { return version_; }
  State status() const { return status_; }
  Instant period_start() const { return period_.start; }
  Instant period_end() const { return period_.end; }

  // The billing period of the realized timeline containing t (t >= start).
  MPeriod PeriodAt(Instant t) const {
    size_t i = SegAt(t);
    MPeriod p = RawPeriod(segs_[i].sched, t);
    p.start = std::max(p.start, segs_[i].sched.start);
    for (size_t j = i + 1; j < segs_.size(); ++j) {
      if (!(segs_[j].sched == segs_[i].sched)) {
        p.end = std::min(p.end, segs_[j].from);
        break;
      }
    }
    return p;
  }
  size_t SegAt(Instant t) const {
    size_t i = 0;
    while (i + 1 < segs_.size() && segs_[i + 1].from <= t) ++i;
    return i;
  }

 private:
  static constexpr ErrorCode kPre = ErrorCode::kFailedPrecondition;

  static int Tier(const std::string& p) { return p == "free" ? 0 : p == "pro" ? 1 : 2; }
  int64_t Fee(const std::string& plan, int version, State st) const {
    if (st == State::kTrialing) return 0;
    if (plan == "enterprise") return custom_fee_.value_or(0);
    return TestCatalog().Get(plan, version)->base_fee.amount_minor();
  }
  MTerms TermsOf(const std::string& plan, int version, State st) const {
    MTerms t;
    t.plan = plan;
    t.version = version;
    t.fee = Fee(plan, version, State::kActive);
    for (const auto& [m, mt] : TestCatalog().Get(plan, version)->metrics) {
      t.m[catalog::MetricIndex(m)] = mt;
    }
    if (plan == "enterprise" && custom_price_) {
      t.m[0] = catalog::MetricTerms{std::nullopt, std::nullopt, *custom_price_};
    }
    if (st == State::kTrialing) {
      t.trial = true;
      t.fee = 0;
      for (auto& m : t.m) {
        if (m.included && !m.limit) m.limit = m.included;
        m.unit_price.reset();
      }
    }
    return t;
  }
  void Segment(Instant at) {
    MSeg s{at, sched_, TermsOf(plan_, version_, status_)};
    if (!segs_.empty()) {
      MSeg& last = segs_.back();
      if (last.sched == s.sched && last.terms == s.terms) return;
      if (last.from >= at) {
        last.sched = s.sched;
        last.terms = s.terms;
        if (segs_.size() >= 2) {
          const MSeg& prev = segs_[segs_.size() - 2];
          if (prev.sched == last.sched && prev.terms == last.terms) segs_.pop_back();
        }
        return;
      }
    }
    segs_.push_back(s);
  }
  void Period(Instant at) {
    MPeriod p = RawPeriod(sched_, at);
    p.start = std::max(p.start, sched_.start);
    period_ = p;
    charges_.clear();
    if (status_ != State::kActive) return;
    const int64_t fee = Fee(plan_, version_, status_);
    const int64_t len = Secs(p.start, p.end);
    const int64_t amount = len >= p.full ? fee : RoundDiv(static_cast<__int128>(fee) * len, p.full);
    if (amount != 0) lines_.push_back(amount);
    charges_.push_back({p.start, p.end, amount, false});
  }
  void Credit(Instant at) {
    for (auto it = charges_.rbegin(); it != charges_.rend(); ++it) {
      if (it->credited || at < it->from || at >= it->to) continue;
      it->credited = true;
      const int64_t left = Secs(at, it->to), whole = Secs(it->from, it->to);
      const int64_t c = -RoundDiv(static_cast<__int128>(it->amount) * left, whole);
      if (c != 0) lines_.push_back(c);
      return;
    }
  }
  void ChargeRest(int64_t fee, Instant at) {
    if (status_ != State::kActive) return;
    const int64_t full = RawPeriod(sched_, at).full;
    const int64_t amount = RoundDiv(static_cast<__int128>(fee) * Secs(at, period_.end), full);
    if (amount != 0) lines_.push_back(amount);
    charges_.push_back({at, period_.end, amount, false});
  }
  void Restart(const std::string& plan, int version, State st, Instant at, MSched sched) {
    plan_ = plan;
    version_ = version;
    status_ = st;
    sched_ = sched;
    reminder_sent_ = false;
    cancel_at_end_ = false;
    scheduled_.reset();
    Period(at);
    Segment(at);
  }
  void RunOne(Instant at) {
    if (status_ == State::kTrialing) {
      if (!reminder_sent_ && at < *sched_.trial_end) {
        reminder_sent_ = true;
        return;
      }
      const Instant end = *sched_.trial_end;
      if (card_) {
        status_ = State::kActive;
        sched_ = MSched{end, end, sched_.calendar, {}};
        Period(end);
        Segment(end);
      } else {
        Restart("free", 1, State::kActive, end, MSched{end, end, sched_.calendar, {}});
      }
      return;
    }
    const Instant end = period_.end;
    if (cancel_at_end_) {
      Restart("free", 1, State::kActive, end, MSched{end, end, sched_.calendar, {}});
      return;
    }
    if (scheduled_) {
      plan_ = scheduled_->first;
      version_ = scheduled_->second;
      scheduled_.reset();
    }
    Period(end);
    Segment(end);
  }

  struct Charge {
    Instant from, to;
    int64_t amount;
    bool credited;
  };
  std::string plan_;
  int version_ = 1;
  State status_ = State::kActive;
  MSched sched_;
  MPeriod period_{};
  bool reminder_sent_ = false, cancel_at_end_ = false, trial_used_ = false, card_ = false;
  std::optional<std::pair<std::string, int>> scheduled_;
  std::optional<int64_t> custom_fee_;
  std::optional<Decimal> custom_price_;
  std::vector<Charge> charges_;
  std::vector<int64_t> lines_;
  std::vector<MSeg> segs_;
};

// ---- Usage, rated from the events and the model's terms ----

struct MUsage {
  std::array<Decimal, 4> used, overage;
};

MUsage RateModel(const Model& model, const std::vector<MEvent>& events, MPeriod p, Instant now) {
  const Instant as_of = std::clamp(now, p.start, p.end);
  // Slices of the period: one per segment in force.
  struct Slice {
    Instant from, to;
    size_t seg;
  };
  std::vector<Slice> slices;
  const auto& segs = model.segments();
  for (size_t i = model.SegAt(p.start); i < segs.size(); ++i) {
    const Instant from = std::max(p.start, segs[i].from);
    const Instant to = i + 1 < segs.size() ? std::min(p.end, segs[i + 1].from) : p.end;
    if (from >= p.end) break;
    if (from < to) slices.push_back({from, to, i});
  }
  std::vector<std::array<__int128, 4>> used(slices.size(), {0, 0, 0, 0});
  std::set<std::string> seen;
  // Storage: the level in time order, never below zero.
  std::map<Instant, int64_t> deltas;
  for (const MEvent& e : events) {
    if (!e.voided && e.type == metering::UsageType::kMediaStored) deltas[e.time] += e.quantity;
  }
  std::vector<std::pair<Instant, const MEvent*>> counted;
  for (const MEvent& e : events) {
    if (!e.voided && e.time >= p.start && e.time < p.end) counted.emplace_back(e.time, &e);
  }
  std::sort(counted.begin(), counted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t k = 0; k < slices.size(); ++k) {
    for (const auto& [t, e] : counted) {
      if (t < slices[k].from || t >= slices[k].to) continue;
      switch (e->type) {
        case metering::UsageType::kMessageSent:
          used[k][0] += e->quantity;
          break;
        case metering::UsageType::kApiCall:
          used[k][1] += e->quantity;
          break;
        case metering::UsageType::kUserActive:
          if (seen.insert(e->subject).second) used[k][2] += 1;
          break;
        case metering::UsageType::kMediaStored:
          break;
      }
    }
    // GB-month of the slice: ∫ bytes dt over [from, min(to, as_of)) / (10^9 × full).
    const Instant a = slices[k].from, b = std::min(slices[k].to, as_of);
    if (b > a) {
      __int128 level = 0, byte_us = 0;
      Instant cursor = a;
      for (const auto& [t, d] : deltas) {
        if (t >= b) break;
        if (t > a) {
          byte_us += level * (t - cursor).count();
          cursor = t;
        }
        level = std::max<__int128>(0, level + d);
      }
      byte_us += level * (b - cursor).count();
      const __int128 num = byte_us * 1000, den = static_cast<__int128>(p.full) * 1'000'000;
      __int128 q = num / den;
      if ((num % den) * 2 >= den) ++q;
      used[k][3] = q;  // in 10^-12 GB-month
    }
  }
  MUsage out;
  for (int m = 0; m < 4; ++m) {
    Decimal before;
    for (size_t k = 0; k < slices.size(); ++k) {
      const Decimal u = m == 3 ? Decimal::FromRaw(used[k][m])
                               : Decimal::FromInt(static_cast<int64_t>(used[k][m]));
      const Decimal after = before.Add(u).value();
      const catalog::MetricTerms& t = segs[slices[k].seg].terms.m[m];
      const bool billable = !t.limit && t.unit_price && !t.unit_price->IsZero();
      if (billable) {
        const Decimal floor = std::max(before, t.included.value_or(Decimal()));
        if (after > floor)
          out.overage[m] = out.overage[m].Add(after.Subtract(floor).value()).value();
      }
      out.used[m] = after;
      before = after;
    }
  }
  return out;
}

std::vector<int64_t> Amounts(const std::vector<subscriptions::Line>& lines) {
  std::vector<int64_t> out;
  for (const auto& l : lines) out.push_back(l.amount.amount_minor());
  return out;
}

TEST(BillingModel, RandomHistoriesMatchTheModel) {
  const uint64_t seed = caas::testing::TestSeed();
  CAAS_SEED_TRACE(seed);
  std::mt19937_64 rng(seed);
  std::array<int, kOpCount> succeeded{};
  int usage_checks = 0, restarts = 0, voids = 0, events_sent = 0;
  for (int run = 0; run < 16; ++run) {
    World w("2026-01-31T00:00:00Z", TestCatalog());
    const std::string t = w.NewTenant("tnt_M");
    Model model(w.clock().Now());
    std::vector<MEvent> events;
    int next_id = 0;
    for (int step = 0; step < 90; ++step) {
      const Instant now = w.clock().Now();
      model.CatchUp(now);
      SCOPED_TRACE("run " + std::to_string(run) + " step " + std::to_string(step) + " at " +
                   FormatRfc3339(now));
      int dice = static_cast<int>(rng() % 100);
      // Every third run starts with a trial, a card, and an early conversion,
      // so those paths are exercised whatever the seed.
      if (run % 3 == 0 && step < 3) dice = step == 0 ? 21 : step == 1 ? 36 : 0;
      // ...and every other third with an upgrade, a cancellation at period end
      // and a reactivation.
      if (run % 3 == 1 && step < 3) dice = step == 0 ? 10 : step == 1 ? 23 : 31;
      // ...and the last third with a re-anchoring upgrade from Free, which a
      // random walk reaches rarely (one seed in CI gave it once in 16 runs).
      if (run % 3 == 2 && step == 0) dice = 10;
      std::optional<ErrorCode> want;
      Result<subscriptions::ChangeResult> got = Error::Make(ErrorCode::kInternal, "no op");
      Op kind = kOpCount;
      bool op = true;
      if (dice < 22) {
        const char* plans[] = {"free", "pro", "enterprise"};
        subscriptions::ChangeRequest r;
        r.plan = plans[rng() % 3];
        if (dice < 3) r.plan = model.plan();  // a trial conversion, or a withdrawn downgrade
        if (run % 3 == 0 && step == 0) r.plan = "pro";
        if (rng() % 3 == 0) {
          r.at = rng() % 2 ? subscriptions::When::kNow : subscriptions::When::kPeriodEnd;
        }
        if (rng() % 6 == 0) {
          r.billing_anchor =
              rng() % 2 ? subscriptions::Anchor::kCalendar : subscriptions::Anchor::kAnniversary;
        }
        r.trial = rng() % 7 == 0 || dice == 21;
        if (run % 3 < 2 && step < 3) {
          r.at.reset();
          r.billing_anchor.reset();
          r.trial = run % 3 == 0 && step == 0;
          if (run % 3 == 1) r.plan = "pro";
        }
        if (run % 3 == 2 && step == 0) {
          r.plan = run % 2 ? "pro" : "enterprise";
          r.at.reset();
          r.billing_anchor =
              run % 4 == 2 ? subscriptions::Anchor::kCalendar : subscriptions::Anchor::kAnniversary;
          r.trial = false;
        }
        if (r.trial && rng() % 2) {
          r.plan = "pro";
          r.at.reset();
          r.billing_anchor.reset();
        }
        if (model.status() == State::kTrialing && rng() % 3 == 0) {  // convert early
          r = subscriptions::ChangeRequest{};
          r.plan = model.plan();
        }
        want = model.Change(r.plan, r.at, r.billing_anchor, r.trial, now, &kind);
        got = w.subs->Change(t, w.Created(t), r, "key_model", true);
      } else if (dice < 31) {
        const bool now_flag = rng() % 3 == 0 && !(run % 3 == 1 && step < 3);
        kind = now_flag ? kCancelNow : kCancelEnd;
        want = model.Cancel(now_flag, now);
        got = w.subs->Cancel(t, w.Created(t), now_flag, "key_model");
      } else if (dice < 35) {
        kind = kReactivate;
        want = model.Reactivate();
        got = w.subs->Reactivate(t, w.Created(t), "key_model");
      } else if (dice < 40) {
        kind = kCard;
        const bool on = model.status() == State::kTrialing || rng() % 3 != 0;
        model.Card(on);
        got = w.subs->SetPaymentMethod(t, w.Created(t), on, "key_model");
      } else if (dice < 45) {
        kind = kTerms;
        const int64_t fee = static_cast<int64_t>(rng() % 4) * 25'000;
        const Decimal price = Decimal::Parse(rng() % 2 ? "0.00005" : "0.001").value();
        subscriptions::CustomTerms ct;
        ct.base_fee = Money(fee, Currency::Usd());
        ct.metrics[Metric::kMessages] = catalog::MetricTerms{std::nullopt, std::nullopt, price};
        model.Terms(fee, price, now);
        got = w.subs->SetCustomTerms(t, w.Created(t), ct, {}, "key_model");
      } else if (dice < 49) {
        kind = kMigrate;
        const int to = 1 + static_cast<int>(rng() % 2);
        const std::optional<int> from =
            rng() % 2 ? std::optional<int>(3 - to) : std::optional<int>();
        const int expect = model.Migrate(from, to, now);
        auto n = w.subs->MigratePlan("pro", from, to, "key_model");
        ASSERT_TRUE(n.ok()) << n.error().message;
        ASSERT_EQ(*n, expect);
        if (expect) ++succeeded[kMigrate];
        op = false;
      } else if (dice < 70) {
        // A batch of usage, dated before now (within the late window and
        // after the tenant's start).
        op = false;
        std::vector<metering::ParsedEvent> batch;
        const int64_t span = std::min<int64_t>(Secs(w.Created(t), now), 34 * 86400) * 1'000'000;
        for (int i = 0, n = 1 + static_cast<int>(rng() % 12); i < n && span > 1'000'000; ++i) {
          MEvent e;
          e.id = "e" + std::to_string(next_id++);
          e.type = static_cast<metering::UsageType>(1 + rng() % 4);
          e.time = now - Micros(1'000'000 + static_cast<int64_t>(rng() % (span - 1'000'000)));
          e.quantity = e.type == metering::UsageType::kMediaStored
                           ? (static_cast<int64_t>(rng() % 4) - 1) * 500'000'000
                           : 1 + static_cast<int64_t>(rng() % 40'000);
          if (e.quantity == 0) e.quantity = 250'000'000;
          if (e.type == metering::UsageType::kUserActive) {
            e.quantity = 1;
            e.subject = "user-" + std::to_string(rng() % 8);
          }
          metering::ParsedEvent pe;
          pe.event = metering::UsageEvent{t, "/model", e.id, e.subject, e.type, e.time, e.quantity};
          batch.push_back(std::move(pe));
          events.push_back(e);
        }
        const size_t first = events.size() - batch.size();
        auto outcomes = w.metering->Ingest(batch).value();
        for (size_t i = 0; i < outcomes.size(); ++i) {
          ASSERT_EQ(outcomes[i].kind, metering::OutcomeKind::kAccepted)
              << outcomes[i].field << " " << outcomes[i].reason << " "
              << FormatRfc3339(events[first + i].time);
        }
        events_sent += static_cast<int>(outcomes.size());
      } else if (dice < 74 && !events.empty()) {
        op = false;
        MEvent& e = events[rng() % events.size()];
        auto v = w.metering->Void(t, "/model", e.id, "key_model", "model");
        ASSERT_EQ(v.ok(), !e.voided);
        if (!e.voided) ++voids;
        e.voided = true;
      } else if (dice < 78) {
        op = false;
        const std::string before = w.metering->DebugSnapshot();
        w.Restart();
        ASSERT_EQ(w.metering->DebugSnapshot(), before) << "a replay filed usage elsewhere";
        ++restarts;
      } else {
        op = false;
        const Instant to = now + sc::seconds(static_cast<int64_t>(rng() % (16 * 86400)));
        w.AdvanceToInstant(to);
        model.CatchUp(to);
      }
      if (op) {
        if (kind == kCard) {
          ASSERT_TRUE(got.ok());
          ++succeeded[kCard];
        } else if (want) {
          ASSERT_FALSE(got.ok()) << "the model refuses op " << kind;
          ASSERT_EQ(got.error().code, *want) << got.error().message;
        } else {
          ASSERT_TRUE(got.ok()) << "op " << kind << ": " << got.error().message;
          ++succeeded[kind];
        }
      }
      // The service's state against the model.
      auto state = w.subs->Get(t, w.Created(t));
      ASSERT_TRUE(state.ok());
      ASSERT_EQ(Amounts(state->pending_lines), model.lines());
      ASSERT_EQ(state->current.plan.id, model.plan());
      ASSERT_EQ(state->current.plan.version, model.version());
      ASSERT_EQ(state->current.status, model.status());
      ASSERT_EQ(state->current.period.start, model.period_start());
      ASSERT_EQ(state->current.period.end, model.period_end());
      ASSERT_EQ(state->segments.size(), model.segments().size());
      // Every credit is taken from the line that charged it, and is no larger.
      for (const auto& l : state->pending_lines) {
        if (l.kind != subscriptions::LineKind::kProrationCredit) continue;
        ASSERT_TRUE(l.proration.has_value());
        int64_t charged = l.proration->of_amount_minor;
        for (const auto& c : state->pending_lines) {
          if (c.id == l.proration->of_line) charged = c.amount.amount_minor();
        }
        ASSERT_LE(-l.amount.amount_minor(), charged) << l.description;
      }
      // The audit trail replays to the current state through allowed steps.
      std::string plan = state->audit.front().to_plan.id;
      State status = state->audit.front().to_status;
      for (size_t i = 1; i < state->audit.size(); ++i) {
        const auto& a = state->audit[i];
        ASSERT_EQ(a.from_plan.id, plan) << i;
        ASSERT_EQ(a.from_status, status) << i;
        ASSERT_TRUE(subscriptions::CanTransition(a.from_status, a.to_status) ||
                    a.from_status == State::kCanceled)
            << i;
        ASSERT_LE(state->audit[i - 1].at, a.at);
        plan = a.to_plan.id;
        status = a.to_status;
      }
      ASSERT_EQ(plan, state->current.plan.id);
      ASSERT_EQ(status, state->current.status);
      // Usage of every period so far.
      const Instant now2 = w.clock().Now();
      for (Instant at = w.Created(t); at < now2;) {
        const MPeriod p = model.PeriodAt(at);
        const MUsage want_usage = RateModel(model, events, p, now2);
        auto r = w.UsageAt(t, at);
        ASSERT_EQ(r.period.period.start, p.start) << FormatRfc3339(at);
        ASSERT_EQ(r.period.period.end, p.end) << FormatRfc3339(at);
        for (int m = 0; m < 4; ++m) {
          ASSERT_EQ(r.metrics[m].used.ToString(), want_usage.used[m].ToString())
              << "period " << FormatRfc3339(p.start) << " metric " << m;
          ASSERT_EQ(r.metrics[m].overage.ToString(), want_usage.overage[m].ToString())
              << "period " << FormatRfc3339(p.start) << " metric " << m;
        }
        ++usage_checks;
        at = p.end;
      }
    }
  }
  // The histories did exercise every kind of operation.
  for (int k = 0; k < kOpCount; ++k) EXPECT_GE(succeeded[k], 3) << "operation kind " << k;
  EXPECT_GE(usage_checks, 1000);
  EXPECT_GE(restarts, 20);
  EXPECT_GE(voids, 20);
  EXPECT_GE(events_sent, 1000);
}

}  // namespace
}  // namespace caas::billing_test
