// Money: an integer number of a currency's minor units. Never a float.
//
// Rounding rule (the only one in the system, see docs/money.md): when an exact
// value must become a whole number of minor units it is rounded half away
// from zero ("commercial rounding"): 0.005 -> 0.01, -0.005 -> -0.01,
// 0.0049999 -> 0.00. Rounding happens once, at the end of an exact
// computation, never on intermediate values.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace caas {

// An ISO 4217 currency the system knows, with its number of minor-unit digits.
struct Currency {
  std::string_view code;  // "USD"
  int exponent;           // 2 for USD, 0 for JPY, 3 for BHD

  // nullptr when the code is not a supported ISO 4217 code (case-sensitive).
  static const Currency* Find(std::string_view code);
  static const Currency& Usd();
  bool operator==(const Currency& other) const { return code == other.code; }
};

// Divides `numerator` by `denominator` (> 0), rounding half away from zero.
__int128 DivRoundHalfAwayFromZero(__int128 numerator, __int128 denominator);

// value * num / den rounded once, half away from zero; den > 0. Fails with
// kOutOfRange when the result does not fit int64. Used for proration.
Result<int64_t> MulDivRound(int64_t value, int64_t num, int64_t den);

class Money {
 public:
  Money(int64_t amount_minor, const Currency& currency)
      : amount_minor_(amount_minor), currency_(&currency) {}

  static Money Zero(const Currency& currency) { return Money(0, currency); }

  // Parses "12.34", "-0.5", "100" in the given currency. Exact: more fractional
  // digits than the currency has is an error, never a silent rounding.
  static Result<Money> Parse(std::string_view text, const Currency& currency);

  int64_t amount_minor() const { return amount_minor_; }
  const Currency& currency() const { return *currency_; }

  // Fail with kInvalidArgument on a currency mismatch and kOutOfRange on overflow.
  Result<Money> Add(const Money& other) const;
  Result<Money> Subtract(const Money& other) const;
  Result<Money> Negate() const;

  // "1234.50" (exactly `exponent` fractional digits, '-' for negatives).
  std::string ToDecimalString() const;
  // "USD 1234.50"
  std::string Format() const;

  bool operator==(const Money& other) const {
    return amount_minor_ == other.amount_minor_ && *currency_ == *other.currency_;
  }

 private:
  int64_t amount_minor_;
  const Currency* currency_;
};

}  // namespace caas
