// Decimal: an exact decimal number with 12 fractional digits, for unit
// prices (0.0001 USD per message) and fractional quantities (GB-months).
//
// Stored as a 128-bit integer count of 10^-12. Range: |x| < 1.7 * 10^26.
// Every operation is exact or fails; nothing rounds except the explicit
// conversions to minor units, which use the system's one rounding rule
// (half away from zero, see core/money.h).
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/money.h"
#include "core/status.h"

namespace caas {

class Decimal {
 public:
  static constexpr int kScale = 12;
  static constexpr size_t kMaxTextLength = 64;

  constexpr Decimal() = default;
  static Decimal FromInt(int64_t value);
  static Decimal FromRaw(__int128 raw) { return Decimal(raw); }

  // Accepts -?[0-9]+(\.[0-9]{1,12})? — no exponent, no '+', no spaces, at most
  // 26 integer digits. Anything else is kInvalidArgument with the reason.
  static Result<Decimal> Parse(std::string_view text);

  // The shortest exact text: "0.0001", "-12.5", "3". Parse(ToString()) == *this.
  std::string ToString() const;

  __int128 raw() const { return raw_; }
  bool IsZero() const { return raw_ == 0; }
  bool IsNegative() const { return raw_ < 0; }

  Result<Decimal> Add(const Decimal& other) const;
  Result<Decimal> Subtract(const Decimal& other) const;

  // unit_price * quantity computed exactly, then rounded once to whole minor
  // units of a currency with `exponent` digits (half away from zero).
  static Result<int64_t> MultiplyToMinorUnits(const Decimal& unit_price, const Decimal& quantity,
                                              int exponent);

  // This amount in minor units, rounded half away from zero.
  Result<int64_t> ToMinorUnitsRounded(int exponent) const;
  // This amount in minor units; kInvalidArgument if it has finer digits.
  Result<int64_t> ToMinorUnitsExact(int exponent) const;

  auto operator<=>(const Decimal& other) const = default;

 private:
  constexpr explicit Decimal(__int128 raw) : raw_(raw) {}
  __int128 raw_ = 0;
};

}  // namespace caas
