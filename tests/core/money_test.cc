#include "core/money.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>

#include "core/decimal.h"
#include "test_seed.h"

namespace caas {
namespace {

const Currency& Usd() { return Currency::Usd(); }

TEST(CurrencyTest, KnowsExponents) {
  ASSERT_NE(Currency::Find("USD"), nullptr);
  EXPECT_EQ(Currency::Find("USD")->exponent, 2);
  EXPECT_EQ(Currency::Find("JPY")->exponent, 0);
  EXPECT_EQ(Currency::Find("BHD")->exponent, 3);
  EXPECT_EQ(Currency::Find("usd"), nullptr);
  EXPECT_EQ(Currency::Find("XXX"), nullptr);
  EXPECT_EQ(Currency::Find(""), nullptr);
}

TEST(MoneyTest, FormatsInMinorUnits) {
  EXPECT_EQ(Money(9900, Usd()).ToDecimalString(), "99.00");
  EXPECT_EQ(Money(5, Usd()).ToDecimalString(), "0.05");
  EXPECT_EQ(Money(-5, Usd()).ToDecimalString(), "-0.05");
  EXPECT_EQ(Money(0, Usd()).ToDecimalString(), "0.00");
  EXPECT_EQ(Money(1234, *Currency::Find("JPY")).ToDecimalString(), "1234");
  EXPECT_EQ(Money(1, *Currency::Find("BHD")).ToDecimalString(), "0.001");
  EXPECT_EQ(Money(9900, Usd()).Format(), "USD 99.00");
  EXPECT_EQ(Money(std::numeric_limits<int64_t>::min(), Usd()).ToDecimalString(),
            "-92233720368547758.08");
  EXPECT_EQ(Money(std::numeric_limits<int64_t>::max(), Usd()).ToDecimalString(),
            "92233720368547758.07");
}

TEST(MoneyTest, ParsesExactlyOrRefuses) {
  EXPECT_EQ(Money::Parse("99", Usd())->amount_minor(), 9900);
  EXPECT_EQ(Money::Parse("0.1", Usd())->amount_minor(), 10);
  EXPECT_EQ(Money::Parse("-12.34", Usd())->amount_minor(), -1234);
  EXPECT_FALSE(Money::Parse("0.001", Usd()).ok());  // would need rounding
  EXPECT_FALSE(Money::Parse("1e3", Usd()).ok());
  EXPECT_FALSE(Money::Parse("", Usd()).ok());
  EXPECT_FALSE(Money::Parse("99999999999999999999", Usd()).ok());  // overflows int64
}

TEST(MoneyTest, AddDetectsOverflowAndCurrencyMismatch) {
  const Money max(std::numeric_limits<int64_t>::max(), Usd());
  auto sum = max.Add(Money(1, Usd()));
  ASSERT_FALSE(sum.ok());
  EXPECT_EQ(sum.error().code, ErrorCode::kOutOfRange);
  auto diff = Money(std::numeric_limits<int64_t>::min(), Usd()).Subtract(Money(1, Usd()));
  EXPECT_EQ(diff.error().code, ErrorCode::kOutOfRange);
  EXPECT_EQ(Money(std::numeric_limits<int64_t>::min(), Usd()).Negate().error().code,
            ErrorCode::kOutOfRange);
  auto mixed = Money(1, Usd()).Add(Money(1, *Currency::Find("EUR")));
  EXPECT_EQ(mixed.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(Money(150, Usd()).Add(Money(-200, Usd()))->amount_minor(), -50);
}

TEST(RoundingTest, HalfAwayFromZeroAtEveryBoundary) {
  EXPECT_EQ(DivRoundHalfAwayFromZero(5, 10), 1);    // 0.5 -> 1
  EXPECT_EQ(DivRoundHalfAwayFromZero(-5, 10), -1);  // -0.5 -> -1
  EXPECT_EQ(DivRoundHalfAwayFromZero(4, 10), 0);    // 0.4 -> 0
  EXPECT_EQ(DivRoundHalfAwayFromZero(-4, 10), 0);
  EXPECT_EQ(DivRoundHalfAwayFromZero(15, 10), 2);  // 1.5 -> 2 (not banker's 2)
  EXPECT_EQ(DivRoundHalfAwayFromZero(25, 10), 3);  // 2.5 -> 3 (banker's would give 2)
  EXPECT_EQ(DivRoundHalfAwayFromZero(-25, 10), -3);
  EXPECT_EQ(DivRoundHalfAwayFromZero(49999, 100000), 0);
  EXPECT_EQ(DivRoundHalfAwayFromZero(50000, 100000), 1);
  EXPECT_EQ(DivRoundHalfAwayFromZero(1, 3), 0);
  EXPECT_EQ(DivRoundHalfAwayFromZero(2, 3), 1);
  EXPECT_EQ(DivRoundHalfAwayFromZero(0, 7), 0);
}

TEST(RoundingTest, MatchesAnIndependentModelOnRandomInputs) {
  const uint64_t seed = caas::testing::TestSeed();
  CAAS_SEED_TRACE(seed);
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 100000; ++i) {
    const int64_t num = static_cast<int64_t>(rng() % 2000001) - 1000000;
    const int64_t den = static_cast<int64_t>(rng() % 1000) + 1;
    // Model: compare 2*|remainder| with the denominator.
    const int64_t q = num / den, r = num % den;
    int64_t want = q;
    if (2 * (r < 0 ? -r : r) >= den) want += num < 0 ? -1 : 1;
    ASSERT_EQ(DivRoundHalfAwayFromZero(num, den), want) << num << "/" << den;
  }
}

TEST(RoundingTest, MulDivRoundProratesExactly) {
  // $99 for 13 of 30 days: 9900 * 13 / 30 = 4290 exactly.
  EXPECT_EQ(*MulDivRound(9900, 13, 30), 4290);
  // 9900 * 1 / 7 = 1414.2857 -> 1414
  EXPECT_EQ(*MulDivRound(9900, 1, 7), 1414);
  // 1 * 1 / 2 = 0.5 -> 1 ; negative credit is symmetric
  EXPECT_EQ(*MulDivRound(1, 1, 2), 1);
  EXPECT_EQ(*MulDivRound(-1, 1, 2), -1);
  // Intermediate product beyond int64 still exact.
  EXPECT_EQ(*MulDivRound(std::numeric_limits<int64_t>::max(), 3, 3),
            std::numeric_limits<int64_t>::max());
  EXPECT_EQ(MulDivRound(std::numeric_limits<int64_t>::max(), 2, 1).error().code,
            ErrorCode::kOutOfRange);
  EXPECT_FALSE(MulDivRound(1, 1, 0).ok());
}

}  // namespace
}  // namespace caas
