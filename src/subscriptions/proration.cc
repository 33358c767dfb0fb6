#include "subscriptions/proration.h"

namespace caas::subscriptions {
namespace {
int64_t Seconds(Instant a, Instant b) {
  return std::chrono::duration_cast<std::chrono::seconds>(b - a).count();
}
}  // namespace

Prorated ChargeForRest(const Money& fee, Instant at, Instant period_end, int64_t full_seconds) {
  Prorated p;
  const int64_t left = Seconds(at, period_end);
  if (left <= 0 || full_seconds <= 0 || fee.amount_minor() == 0) return p;
  p.how = Proration{left, full_seconds, fee.amount_minor(), ""};
  // |fee| < 2^63 and left <= full: the product fits 128 bits, the result 64.
  p.amount_minor = MulDivRound(fee.amount_minor(), left, full_seconds).value();
  return p;
}

Prorated CreditForUnused(const FeeCharge& charge, Instant at) {
  Prorated p;
  const int64_t whole = Seconds(charge.span.start, charge.span.end);
  const int64_t left = std::min(Seconds(at, charge.span.end), whole);
  if (charge.credited || left <= 0 || whole <= 0 || charge.amount_minor == 0) return p;
  p.how = Proration{left, whole, charge.amount_minor, charge.line};
  p.amount_minor = -MulDivRound(charge.amount_minor, left, whole).value();
  return p;
}

int64_t FeeForPeriod(const Money& fee, const Period& period, int64_t full_seconds) {
  const int64_t len = Seconds(period.start, period.end);
  if (full_seconds <= 0 || len >= full_seconds) return fee.amount_minor();
  return MulDivRound(fee.amount_minor(), len, full_seconds).value();
}

}  // namespace caas::subscriptions
