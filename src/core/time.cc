#include "core/time.h"

#include <charconv>

namespace caas {
namespace {

using std::chrono::days;
using std::chrono::sys_days;
using std::chrono::year_month_day;

bool ReadDigits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

Error Bad(std::string reason) { return Error::Invalid("", std::move(reason)); }

}  // namespace

int DaysInMonth(int year, unsigned month) {
  const auto ymdl = std::chrono::year_month_day_last(
      std::chrono::year(year), std::chrono::month_day_last(std::chrono::month(month)));
  return static_cast<int>(static_cast<unsigned>(ymdl.day()));
}

Result<Instant> ParseRfc3339(std::string_view s) {
  constexpr std::string_view kHint = "must be an RFC 3339 date-time like 2026-01-31T00:00:00Z";
  if (s.size() < 20 || s.size() > 35) return Bad(std::string(kHint));
  int y, mo, d, h, mi, sec;
  if (!ReadDigits(s, 0, 4, &y) || s[4] != '-' || !ReadDigits(s, 5, 2, &mo) || s[7] != '-' ||
      !ReadDigits(s, 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !ReadDigits(s, 11, 2, &h) ||
      s[13] != ':' || !ReadDigits(s, 14, 2, &mi) || s[16] != ':' || !ReadDigits(s, 17, 2, &sec)) {
    return Bad(std::string(kHint));
  }
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > DaysInMonth(y, static_cast<unsigned>(mo)) ||
      h > 23 || mi > 59 || sec > 60) {
    return Bad("date-time is out of range");
  }
  size_t pos = 19;
  int64_t micros = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (++digits > 9) return Bad("date-time has more than 9 fractional second digits");
      if (digits <= 6) micros = micros * 10 + (s[pos] - '0');  // beyond µs: truncated
      ++pos;
    }
    if (digits == 0) return Bad(std::string(kHint));
    for (int i = digits; i < 6; ++i) micros *= 10;
  }
  if (sec == 60) {  // a leap second: the last microsecond of that minute
    sec = 59;
    micros = 999'999;
  }
  int offset_minutes = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!ReadDigits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !ReadDigits(s, pos + 4, 2, &om) || oh > 23 || om > 59) {
      return Bad(std::string(kHint));
    }
    offset_minutes = (oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return Bad("date-time needs a time zone offset (Z or +hh:mm)");
  }
  if (pos != s.size()) return Bad(std::string(kHint));
  const sys_days date{std::chrono::year(y) / mo / d};
  const Instant t = date + std::chrono::hours(h) + std::chrono::minutes(mi - offset_minutes) +
                    std::chrono::seconds(sec) + Micros(micros);
  if (t < Instant{}) return Bad("date-time is before 1970");
  return t;
}

std::string FormatRfc3339(Instant t) {
  const auto day = std::chrono::floor<days>(t);
  const year_month_day ymd{day};
  const auto tod = t - day;
  const auto h = std::chrono::duration_cast<std::chrono::hours>(tod);
  const auto m = std::chrono::duration_cast<std::chrono::minutes>(tod - h);
  const auto sec = std::chrono::duration_cast<std::chrono::seconds>(tod - h - m);
  const auto us = (tod - h - m - sec).count();
  char buf[40];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02lld",
                        static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                        static_cast<unsigned>(ymd.day()), static_cast<int>(h.count()),
                        static_cast<int>(m.count()), static_cast<long long>(sec.count()));
  std::string out(buf, static_cast<size_t>(n));
  if (us != 0) {
    std::snprintf(buf, sizeof buf, ".%06lld", static_cast<long long>(us));
    out += buf;
  }
  out += 'Z';
  return out;
}

int64_t ToUnixSeconds(Instant t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

Instant FromUnixSeconds(int64_t seconds) { return Instant(std::chrono::seconds(seconds)); }

int64_t Period::Seconds() const {
  return std::chrono::duration_cast<std::chrono::seconds>(end - start).count();
}

Instant AddMonthsClamped(Instant anchor, int months) {
  const auto day = std::chrono::floor<days>(anchor);
  const auto time_of_day = anchor - day;
  const year_month_day ymd{day};
  const auto ym = std::chrono::year_month(ymd.year(), ymd.month()) + std::chrono::months(months);
  const unsigned last = static_cast<unsigned>(
      DaysInMonth(static_cast<int>(ym.year()), static_cast<unsigned>(ym.month())));
  const unsigned d = std::min(static_cast<unsigned>(ymd.day()), last);
  return sys_days{ym / std::chrono::day(d)} + time_of_day;
}

Period MonthlyPeriodContaining(Instant anchor, Instant t) {
  const year_month_day a{std::chrono::floor<days>(anchor)};
  const year_month_day b{std::chrono::floor<days>(t)};
  int k = (static_cast<int>(b.year()) - static_cast<int>(a.year())) * 12 +
          (static_cast<int>(static_cast<unsigned>(b.month())) -
           static_cast<int>(static_cast<unsigned>(a.month())));
  // The estimate is off by at most one in either direction.
  while (AddMonthsClamped(anchor, k) > t) --k;
  while (AddMonthsClamped(anchor, k + 1) <= t) ++k;
  return Period{AddMonthsClamped(anchor, k), AddMonthsClamped(anchor, k + 1)};
}

Period CalendarMonthContaining(Instant t) { return MonthlyPeriodContaining(Instant{}, t); }

}  // namespace caas
