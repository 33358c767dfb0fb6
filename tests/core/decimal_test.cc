#include "core/decimal.h"

#include <gtest/gtest.h>

#include <random>

#include "test_seed.h"

namespace caas {
namespace {

Decimal D(const char* s) {
  auto d = Decimal::Parse(s);
  EXPECT_TRUE(d.ok()) << s;
  return *d;
}

TEST(DecimalTest, ParsesAndPrintsExactly) {
  for (const char* s : {"0", "1", "-1", "0.0001", "0.01", "0.1", "123456.789012345678",
                        "-0.000000000001", "99999999999999999999999999.999999999999"}) {
    auto d = Decimal::Parse(s);
    ASSERT_TRUE(d.ok()) << s;
    EXPECT_EQ(d->ToString(), s);
  }
  EXPECT_EQ(D("1.50").ToString(), "1.5");
  EXPECT_EQ(D("-0").ToString(), "0");
  EXPECT_EQ(D("007").ToString(), "7");
}

TEST(DecimalTest, RejectsWhatItCannotHoldExactly) {
  for (const char* s : {"", "-", ".", "1.", ".5", "1e5", "+1", " 1", "1 ", "1,5", "0x10", "NaN",
                        "1.0000000000001", "123456789012345678901234567", "1..2", "--1"}) {
    auto d = Decimal::Parse(s);
    EXPECT_FALSE(d.ok()) << s;
    if (!d.ok()) {
      EXPECT_EQ(d.error().code, ErrorCode::kInvalidArgument);
    }
  }
}

TEST(DecimalTest, PricingModelLines) {
  // 90,001 extra messages at $0.0001 = $9.0001 -> $9.00
  EXPECT_EQ(*Decimal::MultiplyToMinorUnits(D("0.0001"), D("90001"), 2), 900);
  // 5 extra messages = $0.0005 -> rounds half away from zero to $0.00? 0.0005 USD = 0.05 cents -> 0
  EXPECT_EQ(*Decimal::MultiplyToMinorUnits(D("0.0001"), D("5"), 2), 0);
  // 50 extra messages = $0.005 = 0.5 cent -> 1 cent (half away from zero)
  EXPECT_EQ(*Decimal::MultiplyToMinorUnits(D("0.0001"), D("50"), 2), 1);
  // 49 extra messages = $0.0049 -> 0
  EXPECT_EQ(*Decimal::MultiplyToMinorUnits(D("0.0001"), D("49"), 2), 0);
  // 1,234 extra MAU at $0.01 = $12.34
  EXPECT_EQ(*Decimal::MultiplyToMinorUnits(D("0.01"), D("1234"), 2), 1234);
  // 2.5 GB-month at $0.10 = $0.25
  EXPECT_EQ(*Decimal::MultiplyToMinorUnits(D("0.10"), D("2.5"), 2), 25);
  // 0.125 GB-month at $0.10 = $0.0125 -> $0.01
  EXPECT_EQ(*Decimal::MultiplyToMinorUnits(D("0.10"), D("0.125"), 2), 1);
  // negative (a credit) rounds symmetrically
  EXPECT_EQ(*Decimal::MultiplyToMinorUnits(D("0.0001"), D("-50"), 2), -1);
  // JPY has no minor unit; BHD has three.
  EXPECT_EQ(*Decimal::MultiplyToMinorUnits(D("1.5"), D("3"), 0), 5);     // 4.5 -> 5
  EXPECT_EQ(*Decimal::MultiplyToMinorUnits(D("0.0005"), D("3"), 3), 2);  // 0.0015 -> 0.002
}

TEST(DecimalTest, OverflowIsAnErrorNotAWrap) {
  auto big = D("99999999999999999999999999");
  auto r = Decimal::MultiplyToMinorUnits(big, big, 2);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kOutOfRange);
  // Fits __int128 but not int64 minor units.
  auto r2 = Decimal::MultiplyToMinorUnits(D("1000000000000"), D("1000000000"), 2);
  EXPECT_EQ(r2.error().code, ErrorCode::kOutOfRange);
  const auto max = Decimal::FromRaw(~(static_cast<unsigned __int128>(1) << 127));
  EXPECT_EQ(max.Add(Decimal::FromRaw(1)).error().code, ErrorCode::kOutOfRange);
  EXPECT_EQ(Decimal::FromRaw(-max.raw() - 1).Subtract(Decimal::FromRaw(1)).error().code,
            ErrorCode::kOutOfRange);
}

TEST(DecimalTest, MinorUnitConversions) {
  EXPECT_EQ(*D("12.345").ToMinorUnitsRounded(2), 1235);
  EXPECT_EQ(*D("-12.345").ToMinorUnitsRounded(2), -1235);
  EXPECT_EQ(*D("12.344999999999").ToMinorUnitsRounded(2), 1234);
  EXPECT_EQ(*D("12.34").ToMinorUnitsExact(2), 1234);
  EXPECT_FALSE(D("12.345").ToMinorUnitsExact(2).ok());
}

TEST(DecimalTest, RandomRoundTripAndAddition) {
  const uint64_t seed = caas::testing::TestSeed();
  CAAS_SEED_TRACE(seed);
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 20000; ++i) {
    const int64_t a = static_cast<int64_t>(rng() >> 2) - (int64_t{1} << 60);
    const int64_t b = static_cast<int64_t>(rng() >> 2) - (int64_t{1} << 60);
    const Decimal da = Decimal::FromRaw(a), db = Decimal::FromRaw(b);
    auto back = Decimal::Parse(da.ToString());
    ASSERT_TRUE(back.ok());
    ASSERT_EQ(*back, da);
    ASSERT_EQ(da.Add(db)->raw(), static_cast<__int128>(a) + b);
    ASSERT_EQ(da.Subtract(db)->raw(), static_cast<__int128>(a) - b);
  }
}

}  // namespace
}  // namespace caas
