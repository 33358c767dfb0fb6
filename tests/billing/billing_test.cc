// Subscriptions and metering wired as the service wires them (terms
// timelines pushed to metering after every change), on a manual clock:
// usage is rated with the terms in force when it happened, through plan
// changes, cancellations, re-anchoring and restarts. Amounts computed by hand.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "billing/world.h"

namespace caas::billing_test {
namespace {

using catalog::Metric;
using metering::OutcomeKind;
using subscriptions::Anchor;
using subscriptions::ChangeRequest;
using subscriptions::When;

const metering::MetricUsage& M(const metering::UsageReport& r, Metric m) {
  return r.metrics[catalog::MetricIndex(m)];
}
Decimal D(int64_t n) { return Decimal::FromInt(n); }

// Issue: a past period was reported with today's terms.
TEST(Billing, APastPeriodKeepsItsTermsAfterADowngrade) {
  World w("2026-03-01T00:00:00Z");
  const std::string t = w.NewTenant("tnt_A");
  w.Change(t, "pro");
  w.AdvanceTo("2026-03-10T00:00:00Z");
  ASSERT_EQ(w.Send(t, "m1", metering::UsageType::kMessageSent, "2026-03-10T00:00:00Z", 150'000),
            OutcomeKind::kAccepted);
  w.AdvanceTo("2026-03-25T00:00:00Z");
  auto before = w.Usage(t, "2026-03-20T00:00:00Z");
  EXPECT_EQ(before.plan, "pro");
  EXPECT_EQ(M(before, Metric::kMessages).included, D(100'000));
  EXPECT_EQ(M(before, Metric::kMessages).overage, D(50'000));
  ChangeRequest down;
  down.plan = "free";
  ASSERT_TRUE(w.subs->Change(t, w.Created(t), down, "k", true).ok());  // at Apr 1
  w.AdvanceTo("2026-04-02T00:00:00Z");
  for (int pass = 0; pass < 2; ++pass) {
    auto march = w.Usage(t, "2026-03-20T00:00:00Z");
    EXPECT_EQ(march.plan, "pro") << pass;
    EXPECT_EQ(M(march, Metric::kMessages).included, D(100'000)) << pass;
    EXPECT_EQ(M(march, Metric::kMessages).overage, D(50'000)) << pass;  // $5.00 kept
    auto april = w.Usage(t, "2026-04-02T00:00:00Z");
    EXPECT_EQ(april.plan, "free");
    EXPECT_EQ(M(april, Metric::kMessages).limit, D(10'000));
    w.Restart();
  }
}

TEST(Billing, OverageBeforeAChangeThatTakesEffectAtOnceKeepsTheOldTerms) {
  // Cancel now: the Pro period ends at the cancellation and keeps its overage.
  World w("2026-03-01T00:00:00Z");
  const std::string t = w.NewTenant("tnt_A");
  w.Change(t, "pro");
  w.AdvanceTo("2026-03-10T00:00:00Z");
  w.Send(t, "m1", metering::UsageType::kMessageSent, "2026-03-10T00:00:00Z", 150'000);
  w.AdvanceTo("2026-03-20T00:00:00Z");
  ASSERT_TRUE(w.subs->Cancel(t, w.Created(t), true, "k").ok());
  w.AdvanceTo("2026-03-21T00:00:00Z");
  w.Send(t, "m2", metering::UsageType::kMessageSent, "2026-03-21T00:00:00Z", 7);
  for (int pass = 0; pass < 2; ++pass) {
    auto pro = w.Usage(t, "2026-03-10T00:00:00Z");
    EXPECT_EQ(FormatRfc3339(pro.period.period.end), "2026-03-20T00:00:00Z");
    EXPECT_EQ(pro.plan, "pro");
    EXPECT_EQ(M(pro, Metric::kMessages).used, D(150'000));
    EXPECT_EQ(M(pro, Metric::kMessages).overage, D(50'000));
    auto free = w.Usage(t, "2026-03-21T00:00:00Z");
    EXPECT_EQ(free.plan, "free");
    EXPECT_EQ(FormatRfc3339(free.period.period.start), "2026-03-20T00:00:00Z");
    EXPECT_EQ(M(free, Metric::kMessages).used, D(7));
    w.Restart();
  }
  // Pro -> Enterprise mid-period: Pro's overage at Pro's price, up to the change.
  World e("2026-03-01T00:00:00Z");
  const std::string u = e.NewTenant("tnt_B");
  e.Change(u, "pro");
  e.AdvanceTo("2026-03-10T00:00:00Z");
  e.Send(u, "m1", metering::UsageType::kMessageSent, "2026-03-10T00:00:00Z", 150'000);
  e.AdvanceTo("2026-03-16T12:00:00Z");
  subscriptions::CustomTerms ct;
  ct.base_fee = Money(500'000, Currency::Usd());
  ct.metrics[Metric::kMessages] =
      catalog::MetricTerms{std::nullopt, std::nullopt, Decimal::Parse("0.00005").value()};
  ASSERT_TRUE(e.subs->SetCustomTerms(u, e.Created(u), ct, {}, "k").ok());
  e.Change(u, "enterprise");
  e.AdvanceTo("2026-03-20T00:00:00Z");
  e.Send(u, "m2", metering::UsageType::kMessageSent, "2026-03-20T00:00:00Z", 1'000);
  auto r = e.Usage(u, "2026-03-20T00:00:00Z");
  ASSERT_EQ(r.slices.size(), 2u);
  EXPECT_EQ(r.slices[0].terms.plan, "pro");
  EXPECT_EQ(r.slices[0].billable[0], D(50'000));
  EXPECT_EQ(r.slices[1].terms.plan, "enterprise");
  EXPECT_EQ(r.slices[1].billable[0], D(1'000));  // every unit: no included quantity
  EXPECT_EQ(M(r, Metric::kMessages).overage, D(51'000));
}

// Issue: a priced metric without an included quantity was never billable.
TEST(Billing, EveryPricedUnitIsBillable) {
  World w("2026-03-01T00:00:00Z");
  const std::string t = w.NewTenant("tnt_A");
  subscriptions::CustomTerms ct;
  ct.base_fee = Money(0, Currency::Usd());
  ct.metrics[Metric::kMessages] =
      catalog::MetricTerms{std::nullopt, std::nullopt, Decimal::Parse("0.00005").value()};
  ct.metrics[Metric::kMau] =
      catalog::MetricTerms{std::nullopt, std::nullopt, Decimal::Parse("0.02").value()};
  ASSERT_TRUE(w.subs->SetCustomTerms(t, w.Created(t), ct, {}, "k").ok());
  w.Change(t, "enterprise");
  w.AdvanceTo("2026-03-02T00:00:00Z");
  w.Send(t, "m1", metering::UsageType::kMessageSent, "2026-03-02T00:00:00Z", 150'000);
  for (const char* u : {"ann", "bob", "cy"}) {
    w.Send(t, std::string("u-") + u, metering::UsageType::kUserActive, "2026-03-02T00:00:00Z", 1,
           u);
  }
  w.AdvanceTo("2026-03-05T00:00:00Z");
  auto r = w.Usage(t, "2026-03-05T00:00:00Z");
  EXPECT_EQ(M(r, Metric::kMessages).overage, D(150'000));  // $7.50 at $0.00005
  EXPECT_EQ(M(r, Metric::kMau).overage, D(3));
  EXPECT_FALSE(M(r, Metric::kMessages).included.has_value());
}

// Issue: re-anchoring moved usage between periods, and a restart changed the counts.
TEST(Billing, ReanchoringKeepsUsageInItsPeriodThroughRestarts) {
  World w("2026-03-10T12:00:00Z");
  const std::string t = w.NewTenant("tnt_A");
  w.AdvanceTo("2026-03-15T00:00:00Z");
  w.Send(t, "m1", metering::UsageType::kMessageSent, "2026-03-15T00:00:00Z", 500);
  w.Send(t, "u1", metering::UsageType::kUserActive, "2026-03-15T00:00:00Z", 1, "ann");
  w.AdvanceTo("2026-03-20T00:00:00Z");
  ChangeRequest r;
  r.plan = "pro";
  r.billing_anchor = Anchor::kCalendar;
  ASSERT_TRUE(w.subs->Change(t, w.Created(t), r, "k", true).ok());
  w.Send(t, "m2", metering::UsageType::kMessageSent, "2026-03-20T00:00:00Z", 7);
  w.Send(t, "u2", metering::UsageType::kUserActive, "2026-03-20T00:00:00Z", 1, "bob");
  for (int pass = 0; pass < 2; ++pass) {
    auto old = w.Usage(t, "2026-03-15T00:00:00Z");
    EXPECT_EQ(FormatRfc3339(old.period.period.start), "2026-03-10T12:00:00Z") << pass;
    EXPECT_EQ(FormatRfc3339(old.period.period.end), "2026-03-20T00:00:00Z") << pass;
    EXPECT_EQ(M(old, Metric::kMessages).used, D(500)) << pass;
    EXPECT_EQ(M(old, Metric::kMau).used, D(1)) << pass;
    auto now = w.Usage(t, "2026-03-20T00:00:00Z");
    EXPECT_EQ(FormatRfc3339(now.period.period.start), "2026-03-20T00:00:00Z") << pass;
    EXPECT_EQ(M(now, Metric::kMessages).used, D(7)) << pass;  // 7 before and after a restart
    EXPECT_EQ(M(now, Metric::kMau).used, D(1)) << pass;
    auto q = w.metering->CheckCount(t, Metric::kMessages, 1).value();
    EXPECT_EQ(q.used, D(7)) << pass;
    w.Restart();
  }
}

TEST(Billing, AnUpgradeGivesTheNewAllowanceLessWhatThePeriodUsed) {
  World w("2026-03-01T00:00:00Z");
  const std::string t = w.NewTenant("tnt_A");
  w.Send(t, "m1", metering::UsageType::kMessageSent, "2026-03-01T00:00:00Z", 8'000);
  w.AdvanceTo("2026-03-16T12:00:00Z");
  w.Change(t, "pro");
  w.Send(t, "m2", metering::UsageType::kMessageSent, "2026-03-16T12:00:00Z", 150'000);
  auto r = w.Usage(t, "2026-03-20T00:00:00Z");
  ASSERT_EQ(r.slices.size(), 2u);
  // 158,000 in the period; Pro's 100,000 are not cut in half: 58,000 billable.
  EXPECT_EQ(M(r, Metric::kMessages).used, D(158'000));
  EXPECT_EQ(M(r, Metric::kMessages).overage, D(58'000));
  EXPECT_EQ(r.slices[0].billable[0], D(0));  // Free is never billed
}

TEST(Billing, ATrialBillsNothingAndItsIncludedQuantitiesAreHardLimits) {
  World w("2026-03-01T00:00:00Z");
  const std::string t = w.NewTenant("tnt_A");
  ChangeRequest trial;
  trial.plan = "pro";
  trial.trial = true;
  ASSERT_TRUE(w.subs->Change(t, w.Created(t), trial, "k", false).ok());
  w.AdvanceTo("2026-03-02T00:00:00Z");
  w.Send(t, "m1", metering::UsageType::kMessageSent, "2026-03-02T00:00:00Z", 99'999);
  auto q = w.metering->CheckCount(t, Metric::kMessages, 2).value();
  EXPECT_FALSE(q.allowed);
  EXPECT_EQ(q.limit, D(100'000));
  w.Send(t, "m2", metering::UsageType::kMessageSent, "2026-03-02T00:00:00Z", 50'000);
  w.AdvanceTo("2026-03-16T00:00:00Z");  // ended without a card: back to Free
  auto r = w.Usage(t, "2026-03-02T00:00:00Z");
  EXPECT_EQ(r.plan, "pro");
  EXPECT_TRUE(r.slices[0].terms.trial);
  EXPECT_EQ(M(r, Metric::kMessages).used, D(149'999));
  EXPECT_EQ(M(r, Metric::kMessages).overage, D(0));
  EXPECT_EQ(w.Usage(t, "2026-03-16T00:00:00Z").plan, "free");
}

TEST(Billing, EventsBeforeTheTenantExistedAreRejectedWithAReason) {
  World w("2026-03-10T12:00:00Z");
  const std::string t = w.NewTenant("tnt_A");
  auto out =
      w.SendOutcome(t, "early", metering::UsageType::kMessageSent, "2026-03-10T11:59:59Z", 1);
  EXPECT_EQ(out.kind, OutcomeKind::kRejected);
  EXPECT_EQ(out.field, "time");
  EXPECT_NE(out.reason.find("2026-03-10T12:00:00Z"), std::string::npos);
  EXPECT_EQ(w.Send(t, "ok", metering::UsageType::kMessageSent, "2026-03-10T12:00:00Z", 1),
            OutcomeKind::kAccepted);
}

TEST(Billing, StorageNeverGoesBelowZero) {
  World w("2026-03-01T00:00:00Z");
  const std::string t = w.NewTenant("tnt_A");
  w.Change(t, "pro");
  w.AdvanceTo("2026-03-25T00:00:00Z");
  // 1 GB on Mar 2, 2 GB removed on Mar 10 (empties it), 1 GB added on Mar 20.
  w.Send(t, "s1", metering::UsageType::kMediaStored, "2026-03-02T00:00:00Z", 1'000'000'000);
  w.Send(t, "s2", metering::UsageType::kMediaStored, "2026-03-10T00:00:00Z", -2'000'000'000);
  w.Send(t, "s3", metering::UsageType::kMediaStored, "2026-03-20T00:00:00Z", 1'000'000'000);
  w.AdvanceTo("2026-04-01T00:00:00Z");
  // 1 GB for 8 days + 1 GB for 12 days of 31 = 20/31 = 0.645161290323 GB-month.
  auto r = w.Usage(t, "2026-03-15T00:00:00Z");
  EXPECT_EQ(M(r, Metric::kStorage).used.ToString(), "0.645161290323");
  EXPECT_EQ(M(r, Metric::kStorage).overage.ToString(), "0.645161290323");
  const int64_t mar15 =
      ParseRfc3339("2026-03-15T00:00:00Z")->time_since_epoch() / std::chrono::hours(24);
  auto days = w.metering->Daily(t, mar15, mar15 + 10).value();
  EXPECT_EQ(days[0].storage_bytes, 0);
  EXPECT_EQ(days[10].storage_bytes, 1'000'000'000);
}

}  // namespace
}  // namespace caas::billing_test

namespace caas::billing_test {
namespace {

// The log-order rule (docs/metering.md, "Periods and terms"): an event
// stamped after a change that takes effect at once, but received before it,
// stays where it was filed; and a void takes it from there.
TEST(Billing, AnEventReceivedBeforeAChangeStaysWhereItWasFiledAndIsVoidedFromThere) {
  World w("2026-03-01T00:00:00Z");
  const std::string t = w.NewTenant("tnt_A");
  w.Change(t, "pro");
  w.AdvanceTo("2026-03-20T00:00:00Z");
  // Stamped 4 minutes ahead (a fast clock), received now: Pro's period.
  ASSERT_EQ(w.Send(t, "early", metering::UsageType::kMessageSent, "2026-03-20T00:04:00Z", 5),
            metering::OutcomeKind::kAccepted);
  ASSERT_TRUE(w.subs->Cancel(t, w.Created(t), true, "k").ok());  // a new Free period from now
  auto pro = w.Usage(t, "2026-03-10T00:00:00Z");
  auto free = w.Usage(t, "2026-03-20T00:04:00Z");
  EXPECT_EQ(FormatRfc3339(free.period.period.start), "2026-03-20T00:00:00Z");
  EXPECT_EQ(M(pro, Metric::kMessages).used, D(5));
  EXPECT_EQ(M(free, Metric::kMessages).used, D(0));
  w.Restart();  // a replay files it in the same place
  EXPECT_EQ(M(w.Usage(t, "2026-03-10T00:00:00Z"), Metric::kMessages).used, D(5));
  ASSERT_TRUE(w.metering->Void(t, "/test", "early", "k", "test").ok());
  for (int pass = 0; pass < 2; ++pass) {
    EXPECT_EQ(M(w.Usage(t, "2026-03-10T00:00:00Z"), Metric::kMessages).used, D(0)) << pass;
    EXPECT_EQ(M(w.Usage(t, "2026-03-20T00:04:00Z"), Metric::kMessages).used, D(0)) << pass;
    w.Restart();
  }
}

}  // namespace
}  // namespace caas::billing_test
