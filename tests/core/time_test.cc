#include "core/time.h"

#include <gtest/gtest.h>

#include <ctime>
#include <random>

#include "core/clock.h"
#include "test_seed.h"

namespace caas {
namespace {

Instant T(const char* s) {
  auto t = ParseRfc3339(s);
  EXPECT_TRUE(t.ok()) << s;
  return *t;
}

TEST(Rfc3339Test, ParsesAndFormats) {
  EXPECT_EQ(FormatRfc3339(T("2026-01-31T00:00:00Z")), "2026-01-31T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(T("2026-01-31T10:20:30.5Z")), "2026-01-31T10:20:30.500000Z");
  EXPECT_EQ(FormatRfc3339(T("2026-01-31T01:00:00+02:00")), "2026-01-30T23:00:00Z");
  EXPECT_EQ(FormatRfc3339(T("2026-01-31T23:00:00-01:30")), "2026-02-01T00:30:00Z");
  EXPECT_EQ(ToUnixSeconds(T("1970-01-01T00:00:00Z")), 0);
  // Nanoseconds (Go's time.RFC3339Nano) are truncated to microseconds.
  EXPECT_EQ(FormatRfc3339(T("2026-01-31T10:20:30.123456789Z")), "2026-01-31T10:20:30.123456Z");
  EXPECT_EQ(FormatRfc3339(T("2026-01-31T10:20:30.9999999Z")), "2026-01-31T10:20:30.999999Z");
  // A leap second is the last microsecond of its minute.
  EXPECT_EQ(FormatRfc3339(T("2016-12-31T23:59:60Z")), "2016-12-31T23:59:59.999999Z");
  EXPECT_EQ(FormatRfc3339(T("2016-12-31T23:59:60.5Z")), "2016-12-31T23:59:59.999999Z");
  EXPECT_EQ(ToUnixSeconds(T("2024-02-29T00:00:00Z")), 1709164800);
}

TEST(Rfc3339Test, RejectsBadText) {
  for (const char* s :
       {"", "2026-01-31", "2026-01-31T00:00:00", "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z",
        "1969-12-31T23:59:59Z", "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00.1234567891Z",
        "2026-01-01T00:00:61Z", "2026-01-01T00:00:00Zjunk", "2026-01-01 00:00:00Z",
        "2026-01-01T00:00:00+2:00"}) {
    EXPECT_FALSE(ParseRfc3339(s).ok()) << s;
  }
}

TEST(CalendarTest, DaysInMonthKnowsLeapYears) {
  EXPECT_EQ(DaysInMonth(2024, 2), 29);
  EXPECT_EQ(DaysInMonth(2025, 2), 28);
  EXPECT_EQ(DaysInMonth(2000, 2), 29);
  EXPECT_EQ(DaysInMonth(1900, 2), 28);
  EXPECT_EQ(DaysInMonth(2100, 2), 28);
  EXPECT_EQ(DaysInMonth(2026, 4), 30);
  EXPECT_EQ(DaysInMonth(2026, 12), 31);
}

TEST(PeriodTest, AnchorOn31stClampsWithoutSticking) {
  const Instant a = T("2026-01-31T00:00:00Z");
  EXPECT_EQ(AddMonthsClamped(a, 1), T("2026-02-28T00:00:00Z"));
  EXPECT_EQ(AddMonthsClamped(a, 2), T("2026-03-31T00:00:00Z"));
  EXPECT_EQ(AddMonthsClamped(a, 3), T("2026-04-30T00:00:00Z"));
  EXPECT_EQ(AddMonthsClamped(a, 11), T("2026-12-31T00:00:00Z"));
  EXPECT_EQ(AddMonthsClamped(a, 12), T("2027-01-31T00:00:00Z"));
  EXPECT_EQ(AddMonthsClamped(T("2024-01-31T00:00:00Z"), 1), T("2024-02-29T00:00:00Z"));
  EXPECT_EQ(AddMonthsClamped(a, -2), T("2025-11-30T00:00:00Z"));
}

TEST(PeriodTest, Anchors29And30AcrossFebruary) {
  EXPECT_EQ(AddMonthsClamped(T("2026-01-29T12:00:00Z"), 1), T("2026-02-28T12:00:00Z"));
  EXPECT_EQ(AddMonthsClamped(T("2024-01-29T12:00:00Z"), 1), T("2024-02-29T12:00:00Z"));
  EXPECT_EQ(AddMonthsClamped(T("2026-01-30T00:00:00Z"), 1), T("2026-02-28T00:00:00Z"));
  EXPECT_EQ(AddMonthsClamped(T("2026-01-30T00:00:00Z"), 2), T("2026-03-30T00:00:00Z"));
  // A leap-day anchor: Feb 29 -> Mar 29 ... -> Feb 28 next year -> Feb 29 in 2028.
  const Instant leap = T("2024-02-29T00:00:00Z");
  EXPECT_EQ(AddMonthsClamped(leap, 1), T("2024-03-29T00:00:00Z"));
  EXPECT_EQ(AddMonthsClamped(leap, 12), T("2025-02-28T00:00:00Z"));
  EXPECT_EQ(AddMonthsClamped(leap, 48), T("2028-02-29T00:00:00Z"));
}

TEST(PeriodTest, PeriodContainingIsHalfOpen) {
  const Instant a = T("2026-01-31T00:00:00Z");
  Period p = MonthlyPeriodContaining(a, T("2026-02-28T00:00:00Z"));
  EXPECT_EQ(p.start, T("2026-02-28T00:00:00Z"));
  EXPECT_EQ(p.end, T("2026-03-31T00:00:00Z"));
  Period before = MonthlyPeriodContaining(a, T("2026-02-27T23:59:59.999999Z"));
  EXPECT_EQ(before.start, T("2026-01-31T00:00:00Z"));
  EXPECT_EQ(before.end, T("2026-02-28T00:00:00Z"));
  EXPECT_EQ(before.Seconds(), 28 * 86400);
  EXPECT_FALSE(before.Contains(before.end));
  EXPECT_TRUE(before.Contains(before.start));
}

TEST(PeriodTest, CalendarMonthsAndYearEnd) {
  Period dec = CalendarMonthContaining(T("2026-12-31T23:59:59Z"));
  EXPECT_EQ(dec.start, T("2026-12-01T00:00:00Z"));
  EXPECT_EQ(dec.end, T("2027-01-01T00:00:00Z"));
  EXPECT_EQ(CalendarMonthContaining(T("2024-02-10T00:00:00Z")).Seconds(), 29 * 86400);
  EXPECT_EQ(CalendarMonthContaining(T("2025-02-10T00:00:00Z")).Seconds(), 28 * 86400);
}

// The start of the anchor's monthly period containing t, by libc.
int64_t LibcMonthStart(Instant anchor, Instant t) {
  const time_t a = static_cast<time_t>(ToUnixSeconds(anchor));
  tm am{};
  gmtime_r(&a, &am);
  auto start_of = [&](int k) {
    tm x{};
    const int months = am.tm_year * 12 + am.tm_mon + k;
    x.tm_year = months / 12;
    x.tm_mon = months % 12;
    x.tm_mday = 1;
    // Days in that month: the first of the next month minus one day.
    tm next = x;
    next.tm_mon += 1;
    const int days = static_cast<int>((timegm(&next) - timegm(&x)) / 86400);
    x.tm_mday = std::min(am.tm_mday, days);
    x.tm_hour = am.tm_hour;
    x.tm_min = am.tm_min;
    x.tm_sec = am.tm_sec;
    return static_cast<int64_t>(timegm(&x));
  };
  const int64_t ts = ToUnixSeconds(t);
  int k = 0;
  while (start_of(k) > ts) --k;
  while (start_of(k + 1) <= ts) ++k;
  return start_of(k);
}

TEST(PeriodTest, RandomInstantsFallInExactlyOnePeriod) {
  const uint64_t seed = caas::testing::TestSeed();
  CAAS_SEED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const int64_t lo = ToUnixSeconds(T("2020-01-01T00:00:00Z"));
  for (int i = 0; i < 3000; ++i) {
    const Instant anchor = FromUnixSeconds(lo + static_cast<int64_t>(rng() % (86400LL * 365 * 3)));
    const Instant t = anchor + std::chrono::seconds(rng() % (86400LL * 365 * 5));
    Period p = MonthlyPeriodContaining(anchor, t);
    ASSERT_TRUE(p.Contains(t));
    // Consecutive periods tile time: the next one starts where this one ends.
    Period next = MonthlyPeriodContaining(anchor, p.end);
    ASSERT_EQ(next.start, p.end);
    ASSERT_GE(p.Seconds(), 28 * 86400);
    ASSERT_LE(p.Seconds(), 31 * 86400);
    // The start is the anchor's day of month (clamped) and time of day, in
    // the month found by libc's own calendar (gmtime_r/timegm), independent
    // of the chrono arithmetic under test.
    ASSERT_EQ(p.start, FromUnixSeconds(LibcMonthStart(anchor, t))) << FormatRfc3339(anchor);
    ASSERT_EQ(p.end, FromUnixSeconds(LibcMonthStart(anchor, p.end))) << FormatRfc3339(anchor);
  }
}

TEST(ClockTest, ManualClockMovesOnlyForward) {
  ManualClock c(T("2026-01-31T00:00:00Z"));
  EXPECT_TRUE(c.IsManual());
  EXPECT_TRUE(c.Set(T("2026-03-01T00:00:00Z")).ok());
  EXPECT_EQ(c.Now(), T("2026-03-01T00:00:00Z"));
  EXPECT_FALSE(c.Set(T("2026-02-01T00:00:00Z")).ok());
  c.Advance(std::chrono::seconds(5));
  EXPECT_EQ(c.Now(), T("2026-03-01T00:00:05Z"));
}

}  // namespace
}  // namespace caas
