// Rating: every figure computed by hand (docs/invoices.md).
#include "invoices/rating.h"

#include <gtest/gtest.h>

#include "catalog/catalog.h"

namespace caas::invoices {
namespace {

using catalog::Metric;

Instant At(const char* s) { return ParseRfc3339(s).value(); }
Decimal D(const char* s) { return Decimal::Parse(s).value(); }

catalog::Terms Pro() { return catalog::Catalog::Default().Latest("pro")->Terms(); }

InvoiceLine Fee(int64_t minor, const Currency& c = Currency::Usd()) {
  subscriptions::Line l;
  l.id = "ii_fee";
  l.kind = subscriptions::LineKind::kBaseFee;
  l.description = "Pro monthly fee";
  l.amount = Money(minor, c);
  l.period = Period{At("2026-04-01T00:00:00Z"), At("2026-05-01T00:00:00Z")};
  l.plan = {"pro", 1};
  return FixedLine(l);
}

UsageSlice Slice(const catalog::Terms& t, const char* from, const char* to, const char* messages,
                 const char* mau, const char* storage) {
  UsageSlice s{At(from), At(to), t, {}, {}};
  s.billable[catalog::MetricIndex(Metric::kMessages)] = D(messages);
  s.billable[catalog::MetricIndex(Metric::kMau)] = D(mau);
  s.billable[catalog::MetricIndex(Metric::kStorage)] = D(storage);
  return s;
}

PeriodUsage March(std::vector<UsageSlice> slices) {
  return {Period{At("2026-03-01T00:00:00Z"), At("2026-04-01T00:00:00Z")}, std::move(slices)};
}

int64_t Amount(const Rated& r, size_t i) { return r.lines.at(i).amount.amount_minor(); }

TEST(Rating, TheWorkedExampleIs12777) {
  // Pro, March: 12,345 MAU, 150,000 messages, 3.2 GB all month. Billable:
  // 2,345 users, 50,000 messages, 3.2 GB-month.
  RatingInput in;
  in.fixed = {Fee(9900)};
  in.usage =
      March({Slice(Pro(), "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z", "50000", "2345", "3.2")});
  auto r = Rate(in);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->lines.size(), 4u);
  EXPECT_EQ(Amount(*r, 0), 9900);
  EXPECT_EQ(r->lines[1].description, "Messages beyond 100,000 included");
  EXPECT_EQ(Amount(*r, 1), 500);  // 50,000 × $0.0001
  EXPECT_EQ(r->lines[2].description, "Monthly active users beyond 10,000 included");
  EXPECT_EQ(Amount(*r, 2), 2345);  // 2,345 × $0.01
  EXPECT_EQ(Amount(*r, 3), 32);    // 3.2 × $0.10
  EXPECT_EQ(r->lines[3].quantity, D("3.2"));
  EXPECT_EQ(r->lines[3].unit_price, D("0.1"));
  EXPECT_EQ(r->subtotal.amount_minor(), 12777);
  EXPECT_EQ(r->total.amount_minor(), 12777);
  EXPECT_EQ(r->amount_due.amount_minor(), 12777);
  ASSERT_EQ(r->billed.size(), 3u);  // what later invoices compare late usage with
}

TEST(Rating, EachLineIsRoundedOnceHalfAwayFromZero) {
  RatingInput in;
  in.usage =
      March({Slice(Pro(), "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z", "50", "0", "0.125")});
  auto r = Rate(in);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Amount(*r, 0), 1);  // 50 × 0.0001 = 0.005 → 0.01
  EXPECT_EQ(Amount(*r, 1), 1);  // 0.125 × 0.10 = 0.0125 → 0.01
  in.usage = March({Slice(Pro(), "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z", "49", "0", "0")});
  r = Rate(in);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->lines.size(), 1u);  // shown, though it rounds to $0.00
  EXPECT_EQ(Amount(*r, 0), 0);
}

TEST(Rating, OneLinePerSliceWhenTheTermsChangedInsideThePeriod) {
  catalog::Terms ent = catalog::Catalog::Default().Latest("enterprise")->Terms();
  ent.of(Metric::kMessages).unit_price = D("0.00005");
  RatingInput in;
  in.usage = March({Slice(Pro(), "2026-03-01T00:00:00Z", "2026-03-16T12:00:00Z", "50000", "0", "0"),
                    Slice(ent, "2026-03-16T12:00:00Z", "2026-04-01T00:00:00Z", "1000", "0", "0")});
  auto r = Rate(in);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->lines.size(), 2u);
  EXPECT_EQ(Amount(*r, 0), 500);  // 50,000 × $0.0001
  EXPECT_EQ(Amount(*r, 1), 5);    // 1,000 × $0.00005
  EXPECT_NE(r->lines[0].description.find("2026-03-01 to 2026-03-16"), std::string::npos);
}

TEST(Rating, FreeAndTrialsNeverBill) {
  RatingInput in;
  catalog::Terms free = catalog::Catalog::Default().Latest("free")->Terms();
  in.usage = March({Slice(free, "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z", "500", "7", "0"),
                    Slice(catalog::TrialTerms(Pro()), "2026-03-01T00:00:00Z",
                          "2026-04-01T00:00:00Z", "500", "7", "0")});
  auto r = Rate(in);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->lines.empty());
  EXPECT_EQ(r->total.amount_minor(), 0);
}

TEST(Rating, TaxIsOneLineRoundedOnce) {
  RatingInput in;
  in.fixed = {Fee(9900)};
  in.usage =
      March({Slice(Pro(), "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z", "50000", "0", "0")});
  in.tax_rate = D("19");
  auto r = Rate(in);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->taxes.size(), 1u);
  EXPECT_EQ(r->taxes[0].description, "Tax 19%");
  EXPECT_EQ(r->taxes[0].taxable.amount_minor(), 10400);
  EXPECT_EQ(r->tax.amount_minor(), 1976);  // 104.00 × 0.19 = 19.76
  EXPECT_EQ(r->total.amount_minor(), 12376);
  in.fixed = {Fee(1)};
  in.usage.reset();
  in.tax_rate = D("50");
  r = Rate(in);
  EXPECT_EQ(r->tax.amount_minor(), 1);  // 0.005 → 0.01, half away from zero
  in.tax_rate = D("7.25");
  in.fixed = {Fee(9900)};
  r = Rate(in);
  EXPECT_EQ(r->tax.amount_minor(), 718);  // 99 × 0.0725 = 7.1775 → 7.18
  in.tax_mode = TaxMode::kReverseCharge;
  r = Rate(in);
  EXPECT_EQ(r->tax.amount_minor(), 0);
  EXPECT_EQ(r->taxes[0].description, "Reverse charge");
  in.tax_mode = TaxMode::kExempt;
  r = Rate(in);
  EXPECT_EQ(r->tax.amount_minor(), 0);
  EXPECT_EQ(r->taxes[0].description, "Tax exempt");
}

TEST(Rating, NegativeSubtotalsTaxNegativeAndOweNothing) {
  RatingInput in;
  in.fixed = {Fee(-4950)};
  in.tax_rate = D("10");
  auto r = Rate(in);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->tax.amount_minor(), -495);
  EXPECT_EQ(r->total.amount_minor(), -5445);
  EXPECT_EQ(r->amount_due.amount_minor(), 0);
}

TEST(Rating, LateUsageBillsTheDifferenceWithWhatWasBilled) {
  const UsageSlice now =
      Slice(Pro(), "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z", "60000", "2345", "3.2");
  RatingInput in;
  in.earlier = {March({now})};
  // March's invoice billed 50,000 messages and 2,345 users; a void since
  // took 0.2 GB-month back.
  in.billed_before = {
      {At("2026-03-01T00:00:00Z"), At("2026-03-01T00:00:00Z"), Metric::kMessages, D("50000")},
      {At("2026-03-01T00:00:00Z"), At("2026-03-01T00:00:00Z"), Metric::kMau, D("2345")},
      {At("2026-03-01T00:00:00Z"), At("2026-03-01T00:00:00Z"), Metric::kStorage, D("3.4")}};
  auto r = Rate(in);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->lines.size(), 2u);
  EXPECT_EQ(r->lines[0].type, LineType::kLateUsage);
  EXPECT_EQ(r->lines[0].quantity, D("10000"));
  EXPECT_EQ(Amount(*r, 0), 100);
  EXPECT_EQ(r->lines[0].description,
            "Late usage for 2026-03-01 to 2026-04-01: Messages beyond 100,000 included");
  EXPECT_EQ(r->lines[1].quantity, D("-0.2"));
  EXPECT_EQ(Amount(*r, 1), -2);  // a credit
  // Billed again by a later invoice: nothing is left.
  in.billed_before.insert(in.billed_before.end(), r->billed.begin(), r->billed.end());
  r = Rate(in);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->lines.empty());
}

TEST(Rating, ALineInAnotherCurrencyIsRefused) {
  RatingInput in;
  in.currency = Currency::Find("EUR");
  in.fixed = {Fee(9900)};
  auto r = Rate(in);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().field, "currency");
}

TEST(Rating, AmountsInAThreeDigitCurrency) {
  const Currency& bhd = *Currency::Find("BHD");
  RatingInput in;
  in.currency = &bhd;
  in.usage = March({Slice(Pro(), "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z", "5", "0", "0")});
  auto r = Rate(in);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Amount(*r, 0), 1);  // 5 × 0.0001 = 0.0005 BHD → 0.001 (3 digits)
  EXPECT_EQ(r->lines[0].amount.currency().code, "BHD");
}

}  // namespace
}  // namespace caas::invoices
