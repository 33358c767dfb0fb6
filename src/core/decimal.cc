#include "core/decimal.h"

#include <algorithm>
#include <limits>

namespace caas {
namespace {

constexpr __int128 Pow10(int n) {
  __int128 p = 1;
  for (int i = 0; i < n; ++i) p *= 10;
  return p;
}

constexpr __int128 kOne = Pow10(Decimal::kScale);
constexpr int kMaxIntegerDigits = 26;

Result<int64_t> FitInt64(__int128 v) {
  if (v > std::numeric_limits<int64_t>::max() || v < std::numeric_limits<int64_t>::min()) {
    return Error::Make(ErrorCode::kOutOfRange, "amount overflows 64 bits");
  }
  return static_cast<int64_t>(v);
}

std::string U128ToString(unsigned __int128 v) {
  if (v == 0) return "0";
  std::string s;
  while (v > 0) {
    s.push_back(static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  std::reverse(s.begin(), s.end());
  return s;
}

}  // namespace

Decimal Decimal::FromInt(int64_t value) { return Decimal(static_cast<__int128>(value) * kOne); }

Result<Decimal> Decimal::Parse(std::string_view text) {
  if (text.empty()) return Error::Invalid("", "must be a decimal number, got an empty string");
  if (text.size() > kMaxTextLength) return Error::Invalid("", "decimal text is too long");
  size_t i = 0;
  bool negative = false;
  if (text[0] == '-') {
    negative = true;
    ++i;
  }
  __int128 int_part = 0;
  int int_digits = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    if (++int_digits > kMaxIntegerDigits) {
      return Error::Invalid("", "decimal has more than 26 integer digits");
    }
    int_part = int_part * 10 + (text[i] - '0');
  }
  if (int_digits == 0) return Error::Invalid("", "must be a decimal number like 12.34");
  __int128 frac = 0;
  int frac_digits = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
      if (++frac_digits > kScale) {
        return Error::Invalid("", "decimal has more than 12 fractional digits");
      }
      frac = frac * 10 + (text[i] - '0');
    }
    if (frac_digits == 0) return Error::Invalid("", "must be a decimal number like 12.34");
  }
  if (i != text.size()) return Error::Invalid("", "must be a decimal number like 12.34");
  __int128 raw = int_part * kOne + frac * Pow10(kScale - frac_digits);
  return Decimal(negative ? -raw : raw);
}

std::string Decimal::ToString() const {
  const bool negative = raw_ < 0;
  const unsigned __int128 mag =
      negative ? -static_cast<unsigned __int128>(raw_) : static_cast<unsigned __int128>(raw_);
  const auto one = static_cast<unsigned __int128>(kOne);
  std::string out = U128ToString(mag / one);
  unsigned __int128 frac = mag % one;
  if (frac != 0) {
    std::string f = U128ToString(frac);
    f.insert(0, static_cast<size_t>(kScale) - f.size(), '0');
    while (!f.empty() && f.back() == '0') f.pop_back();
    out += "." + f;
  }
  return negative ? "-" + out : out;
}

Result<Decimal> Decimal::Add(const Decimal& other) const {
  __int128 r;
  if (__builtin_add_overflow(raw_, other.raw_, &r)) {
    return Error::Make(ErrorCode::kOutOfRange, "decimal overflow");
  }
  return Decimal(r);
}

Result<Decimal> Decimal::Subtract(const Decimal& other) const {
  __int128 r;
  if (__builtin_sub_overflow(raw_, other.raw_, &r)) {
    return Error::Make(ErrorCode::kOutOfRange, "decimal overflow");
  }
  return Decimal(r);
}

Result<int64_t> Decimal::MultiplyToMinorUnits(const Decimal& unit_price, const Decimal& quantity,
                                              int exponent) {
  if (exponent < 0 || exponent > kScale) {
    return Error::Make(ErrorCode::kInvalidArgument, "unsupported currency exponent");
  }
  // The exact product has 2*kScale fractional digits.
  __int128 product;
  if (__builtin_mul_overflow(unit_price.raw_, quantity.raw_, &product)) {
    return Error::Make(ErrorCode::kOutOfRange, "price times quantity overflows");
  }
  return FitInt64(DivRoundHalfAwayFromZero(product, Pow10(2 * kScale - exponent)));
}

Result<int64_t> Decimal::ToMinorUnitsRounded(int exponent) const {
  if (exponent < 0 || exponent > kScale) {
    return Error::Make(ErrorCode::kInvalidArgument, "unsupported currency exponent");
  }
  return FitInt64(DivRoundHalfAwayFromZero(raw_, Pow10(kScale - exponent)));
}

Result<int64_t> Decimal::ToMinorUnitsExact(int exponent) const {
  if (exponent < 0 || exponent > kScale) {
    return Error::Make(ErrorCode::kInvalidArgument, "unsupported currency exponent");
  }
  const __int128 unit = Pow10(kScale - exponent);
  if (raw_ % unit != 0) {
    return Error::Invalid("", "has more fractional digits than the currency allows (" +
                                  std::to_string(exponent) + ")");
  }
  return FitInt64(raw_ / unit);
}

}  // namespace caas
