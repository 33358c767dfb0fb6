// Instants, RFC 3339 text, billing periods and calendar math. All UTC.
//
// Periods are half-open [start, end). Monthly periods follow an anchor: the
// anchor's day of month and time of day repeat every month, clamped to the
// month's last day when the month is shorter (anchor Jan 31 -> Feb 28/29 ->
// Mar 31: the clamp never "sticks").
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace caas {

using Micros = std::chrono::microseconds;
using Instant = std::chrono::sys_time<Micros>;

// Parses RFC 3339 date-times: "2026-01-31T00:00:00Z", with optional fractional
// seconds (up to 9 digits; microseconds are kept, finer digits truncated) and
// a "Z" or "+hh:mm"/"-hh:mm" offset. Years 1970..9999. A leap second (:60) is
// the last microsecond of its minute.
Result<Instant> ParseRfc3339(std::string_view text);

// "2026-01-31T00:00:00Z", with ".ffffff" only when sub-second digits exist.
std::string FormatRfc3339(Instant t);

int64_t ToUnixSeconds(Instant t);
Instant FromUnixSeconds(int64_t seconds);

struct Period {
  Instant start;
  Instant end;  // exclusive

  bool Contains(Instant t) const { return start <= t && t < end; }
  int64_t Seconds() const;
  bool operator==(const Period&) const = default;
};

// The instant `months` months after `anchor` (negative goes back), on the
// anchor's day of month clamped to the target month's length, at the
// anchor's time of day.
Instant AddMonthsClamped(Instant anchor, int months);

// The monthly period of the anchor schedule that contains `t`.
Period MonthlyPeriodContaining(Instant anchor, Instant t);

// The UTC calendar month containing `t`.
Period CalendarMonthContaining(Instant t);

int DaysInMonth(int year, unsigned month);

}  // namespace caas
