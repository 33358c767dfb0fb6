// Terms timelines, billing periods and the one-allowance-per-period rule,
// against values computed by hand.
#include "catalog/timeline.h"

#include <gtest/gtest.h>

#include "catalog/allowance.h"
#include "catalog/catalog.h"

namespace caas::catalog {
namespace {

Instant At(const char* s) { return ParseRfc3339(s).value(); }
std::string Ts(Instant t) { return FormatRfc3339(t); }
Terms Plan(const char* id) { return Catalog::Default().Latest(id)->Terms(); }
Schedule Anniversary(const char* start) { return Schedule{At(start), At(start), false, {}}; }

TEST(Timeline, PeriodsFollowTheScheduleAndEndWhereAnotherBegins) {
  // Free anchored Mar 10 12:00; on Mar 20 a new, calendar schedule (a
  // re-anchoring upgrade) starts.
  Timeline t(
      {Segment{At("2026-03-10T12:00:00Z"), Anniversary("2026-03-10T12:00:00Z"), Plan("free")},
       Segment{At("2026-03-20T00:00:00Z"),
               Schedule{At("2026-03-20T00:00:00Z"), At("2026-03-20T00:00:00Z"), true, {}},
               Plan("pro")}});
  BillingPeriod before = t.PeriodAt(At("2026-03-15T00:00:00Z"));
  EXPECT_EQ(Ts(before.period.start), "2026-03-10T12:00:00Z");
  EXPECT_EQ(Ts(before.period.end), "2026-03-20T00:00:00Z");  // cut where the new schedule starts
  EXPECT_EQ(before.full_seconds, 31 * 86400);                // Mar 10 12:00 -> Apr 10 12:00
  BillingPeriod after = t.PeriodAt(At("2026-03-25T00:00:00Z"));
  EXPECT_EQ(Ts(after.period.start), "2026-03-20T00:00:00Z");
  EXPECT_EQ(Ts(after.period.end), "2026-04-01T00:00:00Z");
  EXPECT_EQ(after.full_seconds, 31 * 86400);  // the whole of March
  EXPECT_EQ(Ts(t.PeriodAt(At("2026-04-15T00:00:00Z")).period.start), "2026-04-01T00:00:00Z");
  // Before the first segment (data older than timelines): the first schedule, backwards.
  EXPECT_EQ(Ts(t.PeriodAt(At("2026-03-01T00:00:00Z")).period.start), "2026-02-10T12:00:00Z");
}

TEST(Timeline, APlanChangeKeepsThePeriodAndSlicesIt) {
  Timeline t(
      {Segment{At("2026-03-01T00:00:00Z"), Anniversary("2026-03-01T00:00:00Z"), Plan("free")},
       Segment{At("2026-03-16T12:00:00Z"), Anniversary("2026-03-01T00:00:00Z"), Plan("pro")}});
  const BillingPeriod p = t.PeriodAt(At("2026-03-20T00:00:00Z"));
  EXPECT_EQ(Ts(p.period.start), "2026-03-01T00:00:00Z");
  EXPECT_EQ(Ts(p.period.end), "2026-04-01T00:00:00Z");
  auto slices = t.SlicesOf(p.period);
  ASSERT_EQ(slices.size(), 2u);
  EXPECT_EQ(Ts(slices[0].to), "2026-03-16T12:00:00Z");
  EXPECT_EQ(slices[0].segment, 0u);
  EXPECT_EQ(Ts(slices[1].from), "2026-03-16T12:00:00Z");
  EXPECT_EQ(slices[1].segment, 1u);
  EXPECT_EQ(t.At(At("2026-03-16T11:59:59Z")).terms.plan, "free");
  EXPECT_EQ(t.At(At("2026-03-16T12:00:00Z")).terms.plan, "pro");
  EXPECT_EQ(t.SlicesOf(t.PeriodAt(At("2026-04-02T00:00:00Z")).period).size(), 1u);
}

TEST(Timeline, TrialIsOnePeriodAndAnchorsClampWithoutSticking) {
  Timeline trial({Segment{At("2026-03-01T00:00:00Z"),
                          Schedule{At("2026-03-01T00:00:00Z"), At("2026-03-01T00:00:00Z"), false,
                                   At("2026-03-15T00:00:00Z")},
                          TrialTerms(Plan("pro"))}});
  const BillingPeriod p = trial.PeriodAt(At("2026-03-05T00:00:00Z"));
  EXPECT_EQ(Ts(p.period.end), "2026-03-15T00:00:00Z");
  EXPECT_EQ(p.full_seconds, 14 * 86400);
  Timeline jan31(
      {Segment{At("2026-01-31T10:00:00Z"), Anniversary("2026-01-31T10:00:00Z"), Plan("pro")}});
  EXPECT_EQ(Ts(jan31.PeriodAt(At("2026-03-01T00:00:00Z")).period.start), "2026-02-28T10:00:00Z");
  EXPECT_EQ(Ts(jan31.PeriodAt(At("2026-03-01T00:00:00Z")).period.end), "2026-03-31T10:00:00Z");
}

TEST(Timeline, DiffAndApplyRoundTrip) {
  const Segment a{At("2026-03-01T00:00:00Z"), Anniversary("2026-03-01T00:00:00Z"), Plan("free")};
  const Segment b{At("2026-03-10T00:00:00Z"), Anniversary("2026-03-01T00:00:00Z"), Plan("pro")};
  const Segment b2{At("2026-03-12T00:00:00Z"), Anniversary("2026-03-01T00:00:00Z"), Plan("pro")};
  const Segment c{At("2026-04-01T00:00:00Z"), Anniversary("2026-03-01T00:00:00Z"), Plan("free")};
  const std::vector<std::vector<Segment>> shapes = {{a}, {a, b}, {a, b2}, {a, b, c}, {a, c}};
  for (const auto& from : shapes) {
    for (const auto& to : shapes) {
      Timeline x(from), y(to);
      auto d = x.Diff(y);
      if (from == to) {
        EXPECT_FALSE(d.has_value());
        continue;
      }
      ASSERT_TRUE(d.has_value());
      x.Apply(*d);
      EXPECT_EQ(x, y);
    }
  }
}

// One allowance per period, consumed in time order (docs/subscriptions.md).
TEST(Allowance, GoldenCases) {
  auto pro = Plan("pro").of(Metric::kMessages);
  auto free = Plan("free").of(Metric::kMessages);
  MetricTerms enterprise;  // a unit price and no included quantity
  enterprise.unit_price = Decimal::Parse("0.00005").value();
  auto q = [](int64_t n) { return Decimal::FromInt(n); };
  // Pro alone: 150,000 used, 100,000 included -> 50,000 billable ($5.00).
  EXPECT_EQ(BillableBySlice({{&pro, q(150'000)}}), (std::vector<Decimal>{q(50'000)}));
  // A price and nothing included: every unit ($7.50 at $0.00005).
  EXPECT_EQ(BillableBySlice({{&enterprise, q(150'000)}}), (std::vector<Decimal>{q(150'000)}));
  // Free has hard limits: never billed, even past them.
  EXPECT_EQ(BillableBySlice({{&free, q(15'000)}}), (std::vector<Decimal>{q(0)}));
  // Free then Pro in one period: 10,000 on Free count against Pro's 100,000.
  EXPECT_EQ(BillableBySlice({{&free, q(10'000)}, {&pro, q(150'000)}}),
            (std::vector<Decimal>{q(0), q(60'000)}));
  // Pro then Enterprise: Pro's overage at Pro's price, Enterprise's at its own.
  EXPECT_EQ(BillableBySlice({{&pro, q(150'000)}, {&enterprise, q(150'000)}}),
            (std::vector<Decimal>{q(50'000), q(150'000)}));
  // A version migration with 8,000 steady users: not billed (the allowance is
  // not cut in two).
  auto mau = Plan("pro").of(Metric::kMau);
  EXPECT_EQ(BillableBySlice({{&mau, q(8'000)}, {&mau, q(0)}}), (std::vector<Decimal>{q(0), q(0)}));
  // Priced at 0: metered, not billed.
  auto api = Plan("pro").of(Metric::kApiCalls);
  EXPECT_EQ(BillableBySlice({{&api, q(5)}}), (std::vector<Decimal>{q(0)}));
}

TEST(Terms, TrialAndChecks) {
  Terms trial = TrialTerms(Plan("pro"));
  EXPECT_TRUE(trial.trial);
  EXPECT_EQ(trial.base_fee.amount_minor(), 0);
  EXPECT_EQ(trial.of(Metric::kMau).limit, Decimal::FromInt(10'000));
  EXPECT_FALSE(trial.of(Metric::kStorage).unit_price);
  MetricTerms both{std::nullopt, Decimal::FromInt(5), Decimal::Parse("0.1").value()};
  EXPECT_NE(CheckMetricTerms(both, true).find("not both"), std::string::npos);
  MetricTerms below{Decimal::FromInt(10), Decimal::FromInt(5), std::nullopt};
  EXPECT_NE(CheckMetricTerms(below, true).find("below"), std::string::npos);
  MetricTerms fraction{Decimal::Parse("1.5").value(), std::nullopt, std::nullopt};
  EXPECT_FALSE(CheckMetricTerms(fraction, true).empty());
  EXPECT_TRUE(CheckMetricTerms(fraction, false).empty());  // storage may be fractional
}

}  // namespace
}  // namespace caas::catalog
