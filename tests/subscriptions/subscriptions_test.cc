#include "subscriptions/subscriptions.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <random>

#include "events/billing_events.h"
#include "jobs/scheduler.h"
#include "storage/memory/memory_store.h"
#include "subscriptions/state_machine.h"
#include "subscriptions/timeline.h"

namespace caas::subscriptions {
namespace {

Instant At(const char* s) { return ParseRfc3339(s).value(); }

struct Harness {
  explicit Harness(const char* start) : clock(At(start)), ids(clock) {}
  storage::MemoryStore store{
      {SubscriptionsCollectionSpec(), events::BillingEventsCollectionSpec()}};
  ManualClock clock;
  IdGenerator ids;
  SubscriptionService svc{store, clock, ids, catalog::Catalog::Default()};
  jobs::Scheduler scheduler{clock};
  bool registered = (svc.RegisterWith(scheduler), true);
  Instant created = clock.Now();

  // The types of the billing events published so far, in order.
  std::vector<std::string> Events() {
    std::vector<std::string> out;
    for (const auto& e : events::ListBillingEvents(store, "tnt_A", "", 100).items) {
      out.push_back(e.type);
    }
    return out;
  }

  ChangeResult Change(const std::string& plan, std::optional<When> at = std::nullopt,
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
    scheduler.RunDue(At(t), [this](Instant due) {
      if (due > clock.Now()) {
        ASSERT_TRUE(clock.Set(due).ok());
      }
    });
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
    EXPECT_EQ(r.effect, Effect::kUpgraded);
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
    EXPECT_EQ(r.effect, Effect::kUpgraded);
    EXPECT_TRUE(r.lines.empty());  // a zero line is not written
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
  EXPECT_EQ(d.effect, Effect::kDowngradeScheduled);
  EXPECT_TRUE(d.lines.empty());
  EXPECT_EQ(h.State().current.plan.id, "pro");
  // Cancel the scheduled downgrade, schedule it again, then let it happen.
  EXPECT_EQ(h.Change("pro").effect, Effect::kDowngradeCanceled);
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
    EXPECT_EQ(r.effect, Effect::kTrialStarted);
    EXPECT_TRUE(r.lines.empty());
    auto t = h.State();
    EXPECT_EQ(t.current.status, State::kTrialing);
    EXPECT_EQ(FormatRfc3339(*t.current.schedule.trial_end), "2026-03-15T00:00:00Z");
    // During the trial the included quantities are hard limits; nothing is billed.
    auto trial = h.svc.ComputeEntitlements(t).terms;
    EXPECT_TRUE(trial.trial);
    EXPECT_EQ(trial.of(catalog::Metric::kMessages).limit, Decimal::FromInt(100'000));
    EXPECT_FALSE(trial.of(catalog::Metric::kMessages).Billable());
    if (card) {
      ASSERT_TRUE(h.svc.SetPaymentMethod("tnt_A", h.created, true, "k").ok());
    }
    h.AdvanceTo("2026-03-12T00:00:00Z");
    EXPECT_EQ(h.Events().back(), "subscription.trial_will_end");
    h.AdvanceTo("2026-03-15T00:00:00Z");
    t = h.State();
    EXPECT_EQ(t.current.plan.id, card ? "pro" : "free");
    EXPECT_EQ(t.current.status, State::kActive);
    if (card) {
      EXPECT_EQ(FormatRfc3339(t.current.period.start), "2026-03-15T00:00:00Z");
      EXPECT_EQ(FormatRfc3339(t.current.period.end), "2026-04-15T00:00:00Z");
      // The first paid period's fee, in advance.
      ASSERT_EQ(Amounts(t.pending_lines), (std::vector<int64_t>{9900}));
      EXPECT_EQ(t.pending_lines[0].kind, LineKind::kBaseFee);
      EXPECT_EQ(t.pending_lines[0].period, t.current.period);
    } else {
      EXPECT_TRUE(t.pending_lines.empty());
    }
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
  EXPECT_EQ(c->effect, Effect::kCancelScheduled);
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
  terms.metrics[catalog::Metric::kMessages] = catalog::MetricTerms{
      Decimal::FromInt(5'000'000), std::nullopt, Decimal::Parse("0.00005").value()};
  ASSERT_TRUE(h.svc.SetCustomTerms("tnt_A", h.created, terms, {{"sso", true}}, "k").ok());
  ASSERT_TRUE(h.clock.Set(At("2026-03-16T12:00:00Z")).ok());
  auto r = h.Change("enterprise");
  EXPECT_EQ(Amounts(r.lines), (std::vector<int64_t>{-4950, 250'000}));
  auto e = h.svc.EntitlementsFor("tnt_A", h.created).value();
  EXPECT_EQ(e.plan, "enterprise");
  EXPECT_EQ(e.terms.of(catalog::Metric::kMessages).included, Decimal::FromInt(5'000'000));
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
  storage::MemoryStore store{
      {SubscriptionsCollectionSpec(), events::BillingEventsCollectionSpec()}};
  ManualClock clock(At("2026-03-01T00:00:00Z"));
  IdGenerator ids(clock);
  SubscriptionService old_svc(store, clock, ids, v1);
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
  SubscriptionService svc(store, clock, ids, v2);
  EXPECT_EQ(svc.Get("tnt_A", clock.Now())->current.plan.version, 1);
  ASSERT_TRUE(svc.Change("tnt_B", clock.Now(), r, "k", true).ok());
  EXPECT_EQ(svc.Get("tnt_B", clock.Now())->current.plan.version, 2);
  EXPECT_FALSE(svc.MigratePlan("pro", std::nullopt, 3, "k").ok());
  auto n = svc.MigratePlan("pro", 1, 2, "k");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  auto a = svc.Get("tnt_A", clock.Now()).value();
  EXPECT_EQ(a.current.plan.version, 2);
  // At once and prorated: what was charged for v1 is credited from its line,
  // v2 charged for the (whole) rest of the period.
  EXPECT_EQ(Amounts(a.pending_lines), (std::vector<int64_t>{9900, -9900, 12900}));
  EXPECT_EQ(a.pending_lines[1].proration->of_line, a.pending_lines[0].id);
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
  r.billing_anchor = Anchor::kCalendar;
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

namespace caas::subscriptions {
namespace {

CustomTerms EnterpriseFee(int64_t minor) {
  CustomTerms t;
  t.base_fee = Money(minor, Currency::Usd());
  return t;
}

// Issue: a credit was priced at today's fee, not at what was charged.
TEST(Subscriptions, CreditsComeFromWhatWasChargedNeverMore) {
  // Enterprise at $100.00, charged 10000 for March on Mar 1.
  Harness h("2026-03-01T00:00:00Z");
  ASSERT_TRUE(h.svc.SetCustomTerms("tnt_A", h.created, EnterpriseFee(10'000), {}, "k").ok());
  EXPECT_EQ(Amounts(h.Change("enterprise").lines), (std::vector<int64_t>{10'000}));
  // Mar 2: the fee goes up to $5,000.00. It takes effect at once: the unused
  // 30 of 31 days of the 10000 are credited from that charge, the new fee is
  // charged for the rest.
  ASSERT_TRUE(h.clock.Set(At("2026-03-02T00:00:00Z")).ok());
  auto raise = h.svc.SetCustomTerms("tnt_A", h.created, EnterpriseFee(500'000), {}, "k");
  ASSERT_TRUE(raise.ok());
  EXPECT_EQ(Amounts(raise->lines), (std::vector<int64_t>{-9'677, 483'871}));
  EXPECT_EQ(raise->lines[0].proration->of_amount_minor, 10'000);
  // Cancelled at once: the credit is what was charged for the rest, no more.
  auto cancel = h.svc.Cancel("tnt_A", h.created, true, "k");
  ASSERT_TRUE(cancel.ok());
  EXPECT_EQ(Amounts(cancel->lines), (std::vector<int64_t>{-483'871}));
  EXPECT_EQ(cancel->lines[0].proration->of_line, raise->lines[1].id);
  // Without the raise, cancelling on Mar 2 credits round(10000 × 30/31) = 9677.
  Harness g("2026-03-01T00:00:00Z");
  ASSERT_TRUE(g.svc.SetCustomTerms("tnt_A", g.created, EnterpriseFee(10'000), {}, "k").ok());
  g.Change("enterprise");
  ASSERT_TRUE(g.clock.Set(At("2026-03-02T00:00:00Z")).ok());
  EXPECT_EQ(Amounts(g.svc.Cancel("tnt_A", g.created, true, "k")->lines),
            (std::vector<int64_t>{-9'677}));
}

TEST(Subscriptions, MigrationMidPeriodCreditsTheOldChargeAndChargesTheNewFee) {
  std::string text = R"({"plans":[
    {"id":"free","version":1,"name":"Free","tier":0,"base_fee":"0","metrics":{"messages":{},"mau":{},"api_calls":{},"storage":{}},
     "features":{"sso":false,"custom_branding":false,"data_export":false,"priority_support":false,"webhooks":false,"audit_log":false}},
    {"id":"pro","version":1,"name":"Pro","tier":1,"base_fee":"99.00","metrics":{"messages":{},"mau":{},"api_calls":{},"storage":{}},
     "features":{"sso":false,"custom_branding":false,"data_export":false,"priority_support":false,"webhooks":false,"audit_log":false}}]})";
  const std::string v2_plan =
      R"(,{"id":"pro","version":2,"name":"Pro","tier":1,"base_fee":"199.00","metrics":{"messages":{},"mau":{},"api_calls":{},"storage":{}},
     "features":{"sso":false,"custom_branding":false,"data_export":false,"priority_support":false,"webhooks":false,"audit_log":false}})";
  std::string both = text;
  both.insert(both.rfind("]}"), v2_plan);
  auto cat = catalog::Catalog::Parse(both, "two-versions.json").value();
  storage::MemoryStore store{
      {SubscriptionsCollectionSpec(), events::BillingEventsCollectionSpec()}};
  ManualClock clock(At("2026-03-01T00:00:00Z"));
  IdGenerator ids(clock);
  SubscriptionService svc(store, clock, ids, cat);
  const Instant created = clock.Now();
  // Pro v1 is the latest nobody upgrades to here; put the tenant on v1 first.
  auto v1 = catalog::Catalog::Parse(text, "v1.json").value();
  SubscriptionService old_svc(store, clock, ids, v1);
  ChangeRequest r;
  r.plan = "pro";
  ASSERT_EQ(Amounts(old_svc.Change("tnt_A", created, r, "k", true)->lines),
            (std::vector<int64_t>{9'900}));
  // Migrated halfway (15.5 of 31 days left): −9900 × 1/2, +19900 × 1/2.
  ASSERT_TRUE(clock.Set(At("2026-03-16T12:00:00Z")).ok());
  ASSERT_EQ(*svc.MigratePlan("pro", 1, 2, "k"), 1);
  auto t = svc.Get("tnt_A", created).value();
  EXPECT_EQ(Amounts(t.pending_lines), (std::vector<int64_t>{9'900, -4'950, 9'950}));
  // Cancelled a quarter period later (7.75 of the 15.5 days charged at v2
  // left): the credit is half the 9950 charged, never more.
  ASSERT_TRUE(clock.Set(At("2026-03-24T06:00:00Z")).ok());
  EXPECT_EQ(Amounts(svc.Cancel("tnt_A", created, true, "k")->lines),
            (std::vector<int64_t>{-4'975}));
}

TEST(Subscriptions, SettingsThatWouldNotApplyAreRefusedNamingThem) {
  Harness h("2026-03-01T00:00:00Z");
  ChangeRequest r;
  r.plan = "pro";
  r.billing_anchor = Anchor::kCalendar;
  r.at = When::kPeriodEnd;
  auto e = h.svc.Change("tnt_A", h.created, r, "k", true);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().field, "billing_anchor");
  r.at.reset();
  r.trial = true;
  EXPECT_EQ(h.svc.Change("tnt_A", h.created, r, "k", true).error().field, "billing_anchor");
  r.trial = false;
  r.billing_anchor.reset();
  h.Change("pro");
  r.plan = "enterprise";
  r.billing_anchor = Anchor::kAnniversary;  // from a paid plan: nothing to re-anchor
  EXPECT_EQ(h.svc.Change("tnt_A", h.created, r, "k", true).error().field, "billing_anchor");
  // Custom terms are checked like the catalog: a limit or a price, not both.
  CustomTerms bad;
  bad.metrics[catalog::Metric::kMessages] =
      catalog::MetricTerms{std::nullopt, Decimal::FromInt(10), Decimal::Parse("0.01").value()};
  auto t = h.svc.SetCustomTerms("tnt_A", h.created, bad, {}, "k");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().field, "metrics.messages");
  // Nothing changed by the refusals.
  EXPECT_EQ(h.State().current.plan.id, "pro");
  EXPECT_FALSE(h.State().custom_terms.has_value());
}

// Issue: re-anchoring moved usage between periods. It now ends the free
// subscription at the change and starts a new one.
TEST(Subscriptions, ReanchoringEndsTheOldPeriodAndStartsANewSchedule) {
  Harness h("2026-03-10T12:00:00Z");
  ASSERT_TRUE(h.clock.Set(At("2026-03-20T00:00:00Z")).ok());
  ChangeRequest r;
  r.plan = "pro";
  r.billing_anchor = Anchor::kCalendar;
  auto c = h.svc.Change("tnt_A", h.created, r, "k", true);
  ASSERT_TRUE(c.ok());
  // The first, short calendar period is charged against the whole of March:
  // 9900 × 12/31 = 3832.26 -> 3832.
  EXPECT_EQ(Amounts(c->lines), (std::vector<int64_t>{3'832}));
  EXPECT_EQ(c->lines[0].kind, LineKind::kBaseFee);
  auto t = h.State();
  ASSERT_EQ(t.previous.size(), 1u);
  EXPECT_EQ(FormatRfc3339(t.previous[0].period.end), "2026-03-20T00:00:00Z");
  auto tl = h.svc.TimelineOf(t);
  EXPECT_EQ(FormatRfc3339(tl.PeriodAt(At("2026-03-15T00:00:00Z")).period.start),
            "2026-03-10T12:00:00Z");
  EXPECT_EQ(FormatRfc3339(tl.PeriodAt(At("2026-03-15T00:00:00Z")).period.end),
            "2026-03-20T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(tl.PeriodAt(At("2026-03-25T00:00:00Z")).period.start),
            "2026-03-20T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(tl.PeriodAt(At("2026-03-25T00:00:00Z")).period.end),
            "2026-04-01T00:00:00Z");
}

TEST(Subscriptions, TheTimelineProjectsTheNextScheduledTransition) {
  Harness h("2026-03-01T00:00:00Z");
  h.Change("pro");
  h.Change("free");  // downgrade at Apr 1
  auto tl = h.svc.TimelineOf(h.State());
  ASSERT_EQ(tl.segments().size(), 2u);
  EXPECT_EQ(FormatRfc3339(tl.segments()[1].from), "2026-04-01T00:00:00Z");
  EXPECT_EQ(tl.segments()[1].terms.plan, "free");
  // What the scheduler then does is what was projected.
  h.AdvanceTo("2026-04-01T00:00:00Z");
  auto realized = h.svc.TimelineOf(h.State());
  EXPECT_EQ(realized, tl);
  EXPECT_EQ(h.State().segments.size(), 2u);
}

}  // namespace
}  // namespace caas::subscriptions

#include "subscriptions/codec.h"

namespace caas::subscriptions {
namespace {

// A document as versions before 0.2 stored it (the API JSON, no schema):
// Free from Mar 1, upgraded to Pro on Mar 16 12:00 with a 4950 proration line.
constexpr const char* kSchema1 = R"({"tenant":"tnt_A",
 "subscription":{"id":"sub_A","plan":"pro","plan_version":1,"status":"active",
  "started_at":"2026-03-01T00:00:00Z","billing_anchor":"anniversary","anchor":"2026-03-01T00:00:00Z",
  "current_period":{"start":"2026-03-01T00:00:00Z","end":"2026-04-01T00:00:00Z"},"trial_end":null,
  "trial_reminder_sent":false,"cancel_at_period_end":false,"ended_at":null,"scheduled_change":null,
  "plan_name":"Pro"},
 "previous":[],
 "audit":[{"at":"2026-03-01T00:00:00Z","actor":"system","subscription":"sub_A",
   "from":{"plan":"free","plan_version":1,"status":"active"},"to":{"plan":"free","plan_version":1,"status":"active"},
   "reason":"tenant created: Free plan"},
  {"at":"2026-03-16T12:00:00Z","actor":"key_1","subscription":"sub_A",
   "from":{"plan":"free","plan_version":1,"status":"active"},"to":{"plan":"pro","plan_version":1,"status":"active"},
   "reason":"upgrade to Pro"}],
 "pending_lines":[{"id":"ii_1","kind":"proration_charge","description":"Remaining time on Pro",
   "amount":{"amount_minor":4950,"currency":"USD"},
   "period":{"start":"2026-03-16T12:00:00Z","end":"2026-04-01T00:00:00Z"},"created_at":"2026-03-16T12:00:00Z"}],
 "trial_used":false,"payment_method_on_file":false,"custom_terms":null,"feature_overrides":{}})";

TEST(SubscriptionCodec, ReadsSchema1DocumentsAndRoundTripsSchema2) {
  const auto& cat = catalog::Catalog::Default();
  auto t = DecodeDocument(kSchema1, cat);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->current.plan.id, "pro");
  ASSERT_EQ(t->segments.size(), 2u);
  EXPECT_EQ(t->segments[0].terms.plan, "free");
  EXPECT_EQ(FormatRfc3339(t->segments[1].from), "2026-03-16T12:00:00Z");
  EXPECT_EQ(t->segments[1].terms.plan, "pro");
  // The charge in force is the proration line, so a credit comes from it.
  ASSERT_EQ(t->current.charges.size(), 1u);
  EXPECT_EQ(t->current.charges[0].amount_minor, 4950);
  EXPECT_EQ(t->current.charges[0].line, "ii_1");
  // Schema 2 round trip.
  auto again = DecodeDocument(EncodeDocument(*t), cat);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(EncodeDocument(*again), EncodeDocument(*t));
  // Damage is reported with the field, never a crash.
  auto bad = DecodeDocument(R"({"schema":2,"tenant":"tnt_A"})", cat);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("current"), std::string::npos);
  EXPECT_FALSE(DecodeDocument(R"({"schema":9})", cat).ok());
  EXPECT_FALSE(DecodeDocument("not json", cat).ok());
}

}  // namespace
}  // namespace caas::subscriptions
