#include "core/money.h"

#include <array>
#include <limits>

#include "core/decimal.h"

namespace caas {
namespace {

// The currencies we bill in. Exponents from ISO 4217.
constexpr std::array<Currency, 34> kCurrencies = {{
    {"AUD", 2}, {"BHD", 3}, {"BRL", 2}, {"CAD", 2}, {"CHF", 2}, {"CLP", 0}, {"CNY", 2},
    {"CZK", 2}, {"DKK", 2}, {"EUR", 2}, {"GBP", 2}, {"HKD", 2}, {"HUF", 2}, {"IDR", 2},
    {"ILS", 2}, {"INR", 2}, {"ISK", 0}, {"JOD", 3}, {"JPY", 0}, {"KRW", 0}, {"KWD", 3},
    {"MXN", 2}, {"NOK", 2}, {"NZD", 2}, {"OMR", 3}, {"PLN", 2}, {"SEK", 2}, {"SGD", 2},
    {"THB", 2}, {"TND", 3}, {"TRY", 2}, {"USD", 2}, {"VND", 0}, {"ZAR", 2},
}};

}  // namespace

const Currency* Currency::Find(std::string_view code) {
  for (const auto& c : kCurrencies) {
    if (c.code == code) return &c;
  }
  return nullptr;
}

const Currency& Currency::Usd() { return *Find("USD"); }

__int128 DivRoundHalfAwayFromZero(__int128 numerator, __int128 denominator) {
  if (denominator <= 0) AbortWithMessage("DivRoundHalfAwayFromZero", "denominator <= 0");
  const bool negative = numerator < 0;
  // Work on the magnitude so that the rule is symmetric around zero. The
  // magnitude of the smallest __int128 cannot occur: callers bound inputs.
  unsigned __int128 mag = negative ? -static_cast<unsigned __int128>(numerator)
                                   : static_cast<unsigned __int128>(numerator);
  const auto den = static_cast<unsigned __int128>(denominator);
  unsigned __int128 q = mag / den;
  const unsigned __int128 r = mag % den;
  if (r >= den - r) ++q;  // r/den >= 1/2
  const auto result = static_cast<__int128>(q);
  return negative ? -result : result;
}

Result<int64_t> MulDivRound(int64_t value, int64_t num, int64_t den) {
  if (den <= 0) return Error::Make(ErrorCode::kInvalidArgument, "denominator must be positive");
  // |value * num| < 2^126: fits __int128 without overflow.
  const __int128 product = static_cast<__int128>(value) * num;
  const __int128 q = DivRoundHalfAwayFromZero(product, den);
  if (q > std::numeric_limits<int64_t>::max() || q < std::numeric_limits<int64_t>::min()) {
    return Error::Make(ErrorCode::kOutOfRange, "amount overflows 64 bits");
  }
  return static_cast<int64_t>(q);
}

Result<Money> Money::Parse(std::string_view text, const Currency& currency) {
  auto d = Decimal::Parse(text);
  if (!d) return d.error();
  auto minor = d->ToMinorUnitsExact(currency.exponent);
  if (!minor) return minor.error();
  return Money(*minor, currency);
}

Result<Money> Money::Add(const Money& other) const {
  if (!(*currency_ == *other.currency_)) {
    return Error::Make(ErrorCode::kInvalidArgument, "currency mismatch");
  }
  int64_t sum;
  if (__builtin_add_overflow(amount_minor_, other.amount_minor_, &sum)) {
    return Error::Make(ErrorCode::kOutOfRange, "amount overflows 64 bits");
  }
  return Money(sum, *currency_);
}

Result<Money> Money::Subtract(const Money& other) const {
  if (!(*currency_ == *other.currency_)) {
    return Error::Make(ErrorCode::kInvalidArgument, "currency mismatch");
  }
  int64_t diff;
  if (__builtin_sub_overflow(amount_minor_, other.amount_minor_, &diff)) {
    return Error::Make(ErrorCode::kOutOfRange, "amount overflows 64 bits");
  }
  return Money(diff, *currency_);
}

Result<Money> Money::Negate() const {
  if (amount_minor_ == std::numeric_limits<int64_t>::min()) {
    return Error::Make(ErrorCode::kOutOfRange, "amount overflows 64 bits");
  }
  return Money(-amount_minor_, *currency_);
}

std::string Money::ToDecimalString() const {
  // Digits are written right to left into a fixed buffer (no float, no
  // string splicing): the magnitude as unsigned so that INT64_MIN prints.
  const bool negative = amount_minor_ < 0;
  uint64_t mag =
      negative ? 0 - static_cast<uint64_t>(amount_minor_) : static_cast<uint64_t>(amount_minor_);
  const int exp = currency_->exponent;
  char buf[48];
  char* p = buf + sizeof buf;
  int written = 0;
  do {
    if (exp > 0 && written == exp) *--p = '.';
    *--p = static_cast<char>('0' + mag % 10);
    mag /= 10;
    ++written;
  } while (mag > 0 || written <= exp);
  if (negative) *--p = '-';
  return std::string(p, static_cast<size_t>(buf + sizeof buf - p));
}

std::string Money::Format() const { return std::string(currency_->code) + " " + ToDecimalString(); }

}  // namespace caas
