#include "subscriptions/subscriptions.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <random>

#include "storage/memory/memory_store.h"

namespace caas::subscriptions {
namespace {

Instant At(const char* s) { return ParseRfc3339(s).value(); }

struct Harness {
  explicit Harness(const char* start) : clock(At(start)), ids(clock) {}
  storage::MemoryStore store{{SubscriptionsCollectionSpec()}};
  ManualClock clock;
  IdGenerator ids;
  std::vector<std::string> events;
  SubscriptionService svc{store, clock, ids, catalog::Catalog::Default(),
                          [this](const std::string& type, const std::string&, boost::json::object,
                                 Instant, const std::string&) { events.push_back(type); }};
  Instant created = clock.Now();

  ChangeResult Change(const std::string& plan, std::optional<std::string> at = std::nullopt,
                      bool trial = false, bool admin = true) {
    ChangeRequest r;
    r.plan = plan;
    r.at = at;
    r.trial = trial;
    auto c = svc.Change("tnt_A", created, r, "key_test", admin);
    EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
    return c.ok() ? *c : ChangeResult{};
  }
  Error ChangeError(const std::string& plan, bool trial = false, bool admin = true) {
    ChangeRequest r;
    r.plan = plan;
    r.trial = trial;
    auto c = svc.Change("tnt_A", created, r, "key_test", admin);
    EXPECT_FALSE(c.ok());
    return c.ok() ? Error::Make(ErrorCode::kInternal, "") : c.error();
  }
  void AdvanceTo(const char* t) {
    auto r = svc.RunDue(At(t), [this](Instant due) { ASSERT_TRUE(clock.Set(due).ok()); });
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(clock.Set(At(t)).ok());
  }
  TenantSubscriptions State() { return svc.Get("tnt_A", created).value(); }
};

std::vector<int64_t> Amounts(const std::vector<Line>& lines) {
  std::vector<int64_t> out;
  for (const auto& l : lines) out.push_back(l.amount.amount_minor());
  return out;
}

TEST(Subscriptions, FreeAtCreationAnchoredThen) {
  Harness h("2026-01-31T00:00:00Z");
  auto t = h.State();
  EXPECT_EQ(t.current.plan.id, "free");
  EXPECT_EQ(t.current.status, State::kActive);
  EXPECT_EQ(FormatRfc3339(t.current.period.start), "2026-01-31T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(t.current.period.end), "2026-02-28T00:00:00Z");
}

TEST(Subscriptions, UpgradeOnDayOneMidPeriodAndLastSecond) {
  {  // March has 31 days = 2,678,400 s.
    Harness h("2026-03-01T00:00:00Z");
    auto r = h.Change("pro");
    EXPECT_EQ(r.effect, "upgraded");
    EXPECT_EQ(Amounts(r.lines), (std::vector<int64_t>{9900}));
    EXPECT_EQ(h.State().current.plan.id, "pro");
  }
  {
    Harness h("2026-03-01T00:00:00Z");
    ASSERT_TRUE(h.clock.Set(At("2026-03-16T12:00:00Z")).ok());  // 15.5 days left
    EXPECT_EQ(Amounts(h.Change("pro").lines), (std::vector<int64_t>{4950}));
  }
  {
    Harness h("2026-03-01T00:00:00Z");
    ASSERT_TRUE(h.clock.Set(At("2026-03-31T23:59:59Z")).ok());  // 1 s left: 0.0037 cents
    auto r = h.Change("pro");
    ASSERT_EQ(r.lines.size(), 1u);
    EXPECT_EQ(r.lines[0].amount.amount_minor(), 0);
    EXPECT_NE(r.lines[0].description.find("1 of 2678400 s"), std::string::npos);
  }
  {  // 10 days of a 28-day period (anchor Jan 31 -> Feb 28): 9900 * 10/28 = 3535.71 -> 3536.
    Harness h("2026-01-31T00:00:00Z");
    ASSERT_TRUE(h.clock.Set(At("2026-02-18T00:00:00Z")).ok());
    EXPECT_EQ(Amounts(h.Change("pro").lines), (std::vector<int64_t>{3536}));
  }
}

TEST(Subscriptions, UpgradeThenDowngradeInOnePeriod) {
  Harness h("2026-03-01T00:00:00Z");
  ASSERT_TRUE(h.clock.Set(At("2026-03-16T12:00:00Z")).ok());
  h.Change("pro");
  auto d = h.Change("free");
  EXPECT_EQ(d.effect, "downgrade_scheduled");
  EXPECT_TRUE(d.lines.empty());
  EXPECT_EQ(h.State().current.plan.id, "pro");
  // Cancel the scheduled downgrade, schedule it again, then let it happen.
  EXPECT_EQ(h.Change("pro").effect, "downgrade_canceled");
  h.Change("free");
  h.AdvanceTo("2026-04-01T00:00:01Z");
  auto t = h.State();
  EXPECT_EQ(t.current.plan.id, "free");
  EXPECT_EQ(FormatRfc3339(t.current.period.start), "2026-04-01T00:00:00Z");
  EXPECT_EQ(Amounts(t.pending_lines), (std::vector<int64_t>{4950}));
}

TEST(Subscriptions, AnchorsOn29th30th31stAcrossFebruaryAndLeapYears) {
  struct Case {
    const char* created;
    std::vector<const char*> starts;
  };
  const std::vector<Case> cases = {
      {"2026-01-31T10:00:00Z",
       {"2026-02-28T10:00:00Z", "2026-03-31T10:00:00Z", "2026-04-30T10:00:00Z"}},
      {"2026-01-30T00:00:00Z",
       {"2026-02-28T00:00:00Z", "2026-03-30T00:00:00Z", "2026-04-30T00:00:00Z"}},
      {"2026-01-29T00:00:00Z",
       {"2026-02-28T00:00:00Z", "2026-03-29T00:00:00Z", "2026-04-29T00:00:00Z"}},
      {"2028-01-31T00:00:00Z",
       {"2028-02-29T00:00:00Z", "2028-03-31T00:00:00Z", "2028-04-30T00:00:00Z"}},
      {"2028-01-29T00:00:00Z",
       {"2028-02-29T00:00:00Z", "2028-03-29T00:00:00Z", "2028-04-29T00:00:00Z"}},
  };
  for (const auto& c : cases) {
    Harness h(c.created);
    h.Change("pro");
    for (const char* start : c.starts) {
      const Instant s = At(start);
      h.AdvanceTo(FormatRfc3339(s).c_str());
      EXPECT_EQ(FormatRfc3339(h.State().current.period.start), start) << c.created;
    }
  }
}

TEST(Subscriptions, TrialConvertsWithACardAndFallsBackWithout) {
  for (bool card : {true, false}) {
    Harness h("2026-03-01T00:00:00Z");
    auto r = h.Change("pro", std::nullopt, /*trial=*/true);
    EXPECT_EQ(r.effect, "trial_started");
    EXPECT_TRUE(r.lines.empty());
    auto t = h.State();
    EXPECT_EQ(t.current.status, State::kTrialing);
    EXPECT_EQ(FormatRfc3339(*t.current.trial_end), "2026-03-15T00:00:00Z");
    if (card) {
      ASSERT_TRUE(h.svc.SetPaymentMethod("tnt_A", h.created, true, "k").ok());
    }
    h.AdvanceTo("2026-03-12T00:00:00Z");
    EXPECT_EQ(h.events.back(), "subscription.trial_will_end");
    h.AdvanceTo("2026-03-15T00:00:00Z");
    t = h.State();
    EXPECT_EQ(t.current.plan.id, card ? "pro" : "free");
    EXPECT_EQ(t.current.status, State::kActive);
    if (card) {
      EXPECT_EQ(FormatRfc3339(t.current.period.start), "2026-03-15T00:00:00Z");
      EXPECT_EQ(FormatRfc3339(t.current.period.end), "2026-04-15T00:00:00Z");
    }
    EXPECT_TRUE(t.pending_lines.empty());
    // One trial per tenant.
    if (!card) {
      EXPECT_EQ(h.ChangeError("pro", /*trial=*/true).code, ErrorCode::kFailedPrecondition);
    }
  }
}

TEST(Subscriptions, CancelAtPeriodEndReactivateAndCancelNow) {
  Harness h("2026-03-01T00:00:00Z");
  h.Change("pro");  // +9900
  auto c = h.svc.Cancel("tnt_A", h.created, false, "k");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->effect, "cancel_scheduled");
  ASSERT_TRUE(h.svc.Reactivate("tnt_A", h.created, "k").ok());
  EXPECT_EQ(h.svc.Reactivate("tnt_A", h.created, "k").error().code, ErrorCode::kFailedPrecondition);
  ASSERT_TRUE(h.svc.Cancel("tnt_A", h.created, false, "k").ok());
  h.AdvanceTo("2026-04-01T00:00:00Z");
  EXPECT_EQ(h.State().current.plan.id, "free");
  EXPECT_EQ(h.State().previous.back().plan.id, "pro");
  // Cancel now, mid-period: credit for the unused half.
  Harness n("2026-03-01T00:00:00Z");
  n.Change("pro");
  ASSERT_TRUE(n.clock.Set(At("2026-03-16T12:00:00Z")).ok());
  auto now = n.svc.Cancel("tnt_A", n.created, true, "k");
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(Amounts(now->lines), (std::vector<int64_t>{-4950}));
  EXPECT_EQ(n.State().current.plan.id, "free");
  EXPECT_EQ(n.svc.Cancel("tnt_A", n.created, false, "k").error().code,
            ErrorCode::kFailedPrecondition);
}

TEST(Subscriptions, EnterpriseNeedsAdminAndUsesCustomTerms) {
  Harness h("2026-03-01T00:00:00Z");
  EXPECT_EQ(h.ChangeError("enterprise", false, /*admin=*/false).code, ErrorCode::kPermissionDenied);
  h.Change("pro");  // +9900
  CustomTerms terms;
  terms.base_fee = Money(500'000, Currency::Usd());
  terms.metrics[metering::Metric::kMessages] =
      catalog::MetricPricing{5'000'000, std::nullopt, Decimal::Parse("0.00005").value()};
  ASSERT_TRUE(h.svc.SetCustomTerms("tnt_A", h.created, terms, {{"sso", true}}, "k").ok());
  ASSERT_TRUE(h.clock.Set(At("2026-03-16T12:00:00Z")).ok());
  auto r = h.Change("enterprise");
  EXPECT_EQ(Amounts(r.lines), (std::vector<int64_t>{-4950, 250'000}));
  auto e = h.svc.EntitlementsFor("tnt_A", h.created).value();
  EXPECT_EQ(e.plan, "enterprise");
  EXPECT_EQ(e.terms.messages.included, 5'000'000);
  EXPECT_TRUE(e.features.at("sso"));
}

TEST(Subscriptions, PreviewChangesNothing) {
  Harness h("2026-03-01T00:00:00Z");
  ASSERT_TRUE(h.clock.Set(At("2026-03-16T12:00:00Z")).ok());
  ChangeRequest r;
  r.plan = "pro";
  auto p = h.svc.Preview("tnt_A", h.created, r, false);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(Amounts(p->lines), (std::vector<int64_t>{4950}));
  EXPECT_EQ(h.State().current.plan.id, "free");
  EXPECT_TRUE(h.State().pending_lines.empty());
  EXPECT_EQ(Amounts(h.Change("pro").lines), Amounts(p->lines));
}

TEST(Subscriptions, StateMachine) {
  EXPECT_TRUE(CanTransition(State::kTrialing, State::kActive));
  EXPECT_TRUE(CanTransition(State::kActive, State::kPastDue));
  EXPECT_TRUE(CanTransition(State::kPastDue, State::kSuspended));
  EXPECT_TRUE(CanTransition(State::kSuspended, State::kActive));
  EXPECT_FALSE(CanTransition(State::kSuspended, State::kPastDue));
  EXPECT_FALSE(CanTransition(State::kCanceled, State::kActive));
  EXPECT_FALSE(CanTransition(State::kActive, State::kTrialing));
}

// Random sequences of changes, cancellations, trials, card changes and time.
// After every step:
// - there is one current, live subscription, and its period contains now;
// - the audit trail is a continuous chain that replays to the current state;
// - in every billing period, the proration credits never exceed what was
//   charged for it: the base fee of the plan in force at the period's start
//   (what the period's invoice bills) plus the proration charges made in it.
TEST(Subscriptions, RandomSequencesKeepInvariants) {
  const char* fixed = std::getenv("CAAS_TEST_SEED");  // to replay a failure
  const uint64_t seed = fixed ? std::stoull(fixed) : std::random_device{}();
  SCOPED_TRACE("seed=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const catalog::Catalog& cat = catalog::Catalog::Default();
  for (int run = 0; run < 20; ++run) {
    Harness h("2026-01-31T00:00:00Z");
    Instant now = h.clock.Now();
    std::map<Instant, Instant> period_start_of_end;  // every period seen
    auto note_period = [&](const TenantSubscriptions& t) {
      period_start_of_end[t.current.period.end] = t.current.period.start;
    };
    note_period(h.State());
    for (int step = 0; step < 60; ++step) {
      note_period(h.State());
      const int op = static_cast<int>(rng() % 8);
      const char* plans[] = {"free", "pro", "enterprise"};
      ChangeRequest r;
      r.plan = plans[rng() % 3];
      if (rng() % 3 == 0) r.at = rng() % 2 ? "now" : "period_end";
      r.trial = op == 1;
      switch (op) {
        case 0:
        case 1:
          (void)h.svc.Change("tnt_A", h.created, r, "k", true);
          break;
        case 2:
          (void)h.svc.Cancel("tnt_A", h.created, rng() % 2 == 0, "k");
          break;
        case 3:
          (void)h.svc.Reactivate("tnt_A", h.created, "k");
          break;
        case 4:
          (void)h.svc.SetPaymentMethod("tnt_A", h.created, rng() % 2 == 0, "k");
          break;
        default: {
          now += std::chrono::seconds(static_cast<int64_t>(rng() % (20 * 86400)));
          h.AdvanceTo(FormatRfc3339(now).c_str());
        }
      }
      auto t = h.State();
      note_period(t);
      ASSERT_NE(t.current.status, State::kCanceled);
      ASSERT_TRUE(t.current.period.Contains(h.clock.Now()))
          << FormatRfc3339(t.current.period.start) << " " << FormatRfc3339(h.clock.Now());
      ASSERT_FALSE(t.audit.empty());
      for (size_t i = 1; i < t.audit.size(); ++i) {
        ASSERT_EQ(t.audit[i].from_plan, t.audit[i - 1].to_plan) << i;
        ASSERT_EQ(t.audit[i].from_status, t.audit[i - 1].to_status) << i;
        ASSERT_LE(t.audit[i - 1].at, t.audit[i].at);
      }
      ASSERT_EQ(t.audit.back().to_plan, t.current.plan);
      ASSERT_EQ(t.audit.back().to_status, t.current.status);
      // The base fee billed for a period that starts at `at`: that of the
      // plan in force then, replayed from the audit trail. When several
      // changes happen at that very instant (an early trial conversion
      // starts a period, an upgrade follows in the same second), any of
      // those plans may be the one billed: take the largest.
      auto fee_of = [&](const PlanRef& plan, State state) -> int64_t {
        if (state == State::kTrialing || state == State::kCanceled) return 0;
        const auto* pv = cat.Get(plan.id, plan.version);
        return pv ? pv->base_fee.amount_minor() : 0;
      };
      auto fee_at = [&](Instant at) -> int64_t {
        int64_t fee = fee_of(t.audit.front().to_plan, t.audit.front().to_status);
        for (const auto& a : t.audit) {
          if (a.at < at) fee = fee_of(a.to_plan, a.to_status);
        }
        for (const auto& a : t.audit) {
          if (a.at == at) fee = std::max(fee, fee_of(a.to_plan, a.to_status));
        }
        return fee;
      };
      std::map<Instant, std::pair<int64_t, int64_t>> per_period;  // end -> (credits, charges)
      for (const auto& l : t.pending_lines) {
        auto& [credits, charges] = per_period[l.period.end];
        (l.amount.amount_minor() < 0 ? credits : charges) += std::llabs(l.amount.amount_minor());
      }
      for (const auto& [end, cc] : per_period) {
        auto it = period_start_of_end.find(end);
        ASSERT_NE(it, period_start_of_end.end());
        ASSERT_LE(cc.first, fee_at(it->second) + cc.second)
            << "period ending " << FormatRfc3339(end) << ": credits " << cc.first
            << " > fee at start " << fee_at(it->second) << " + charges " << cc.second << "\n"
            << boost::json::serialize(ToJson(t, cat));
      }
    }
  }
}

}  // namespace
}  // namespace caas::subscriptions

namespace caas::subscriptions {
namespace {

TEST(Subscriptions, PriceChangeIsANewVersionAndMigrationIsExplicit) {
  std::string text = R"({"plans":[
    {"id":"free","version":1,"name":"Free","tier":0,"base_fee":"0","metrics":{"messages":{},"mau":{},"api_calls":{},"storage":{}},
     "features":{"sso":false,"custom_branding":false,"data_export":false,"priority_support":false,"webhooks":false,"audit_log":false}},
    {"id":"pro","version":1,"name":"Pro","tier":1,"base_fee":"99.00","metrics":{"messages":{},"mau":{},"api_calls":{},"storage":{}},
     "features":{"sso":false,"custom_branding":false,"data_export":false,"priority_support":false,"webhooks":false,"audit_log":false}}]})";
  auto v1 = catalog::Catalog::Parse(text, "v1.json").value();
  storage::MemoryStore store{{SubscriptionsCollectionSpec()}};
  ManualClock clock(At("2026-03-01T00:00:00Z"));
  IdGenerator ids(clock);
  SubscriptionService old_svc(store, clock, ids, v1, nullptr);
  ChangeRequest r;
  r.plan = "pro";
  ASSERT_TRUE(old_svc.Change("tnt_A", clock.Now(), r, "k", true).ok());
  // The operator raises the price: version 2. tnt_A keeps version 1; tnt_B
  // upgrading now gets version 2.
  std::string v2_text = text;
  v2_text.insert(
      v2_text.rfind("]}"),
      R"(,{"id":"pro","version":2,"name":"Pro","tier":1,"base_fee":"129.00","metrics":{"messages":{},"mau":{},"api_calls":{},"storage":{}},
     "features":{"sso":false,"custom_branding":false,"data_export":false,"priority_support":false,"webhooks":false,"audit_log":false}})");
  auto v2 = catalog::Catalog::Parse(v2_text, "v2.json").value();
  SubscriptionService svc(store, clock, ids, v2, nullptr);
  EXPECT_EQ(svc.Get("tnt_A", clock.Now())->current.plan.version, 1);
  ASSERT_TRUE(svc.Change("tnt_B", clock.Now(), r, "k", true).ok());
  EXPECT_EQ(svc.Get("tnt_B", clock.Now())->current.plan.version, 2);
  EXPECT_FALSE(svc.MigratePlan("pro", std::nullopt, 3, "k").ok());
  auto n = svc.MigratePlan("pro", 1, 2, "k");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  auto a = svc.Get("tnt_A", clock.Now()).value();
  EXPECT_EQ(a.current.plan.version, 2);
  EXPECT_NE(a.audit.back().reason.find("migrated"), std::string::npos);
  EXPECT_EQ(*svc.MigratePlan("pro", 1, 2, "k"), 0);
}

}  // namespace
}  // namespace caas::subscriptions

namespace caas::subscriptions {
namespace {

TEST(Subscriptions, CalendarAnchorOnRequest) {
  Harness h("2026-02-10T08:00:00Z");  // anniversary would be the 10th
  ASSERT_TRUE(h.clock.Set(At("2026-03-16T12:00:00Z")).ok());
  ChangeRequest r;
  r.plan = "pro";
  r.calendar_anchor = true;
  auto c = h.svc.Change("tnt_A", h.created, r, "k", true);
  ASSERT_TRUE(c.ok());
  // A first, short period to the month's end, charged pro rata of March.
  EXPECT_EQ(Amounts(c->lines), (std::vector<int64_t>{4950}));
  auto t = h.State();
  EXPECT_EQ(FormatRfc3339(t.current.period.start), "2026-03-16T12:00:00Z");
  EXPECT_EQ(FormatRfc3339(t.current.period.end), "2026-04-01T00:00:00Z");
  h.AdvanceTo("2026-04-01T00:00:00Z");
  t = h.State();
  EXPECT_EQ(FormatRfc3339(t.current.period.start), "2026-04-01T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(t.current.period.end), "2026-05-01T00:00:00Z");
}

}  // namespace
}  // namespace caas::subscriptions
