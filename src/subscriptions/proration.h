// Proration, as pure functions (docs/subscriptions.md, "Proration").
//
// Everything counts whole seconds and rounds once per line, half away from
// zero (docs/money.md).
// - A change at instant c inside a period credits the unused part of the fee
//   charge in force, taken from that charge: −round(charge × (span end − c) /
//   span length). It never exceeds what was charged.
// - It charges the new fee for the rest of the period against the whole
//   monthly period: round(fee × (period end − c) / whole period).
// - A period's base fee is the whole fee, or the prorated fee of a first
//   calendar period that starts mid-month.
#pragma once

#include <cstdint>

#include "core/money.h"
#include "subscriptions/model.h"

namespace caas::subscriptions {

struct Prorated {
  int64_t amount_minor = 0;  // negative for credits
  Proration how;
};

// The charge for [at, period_end) of a fee for `full_seconds`.
Prorated ChargeForRest(const Money& fee, Instant at, Instant period_end, int64_t full_seconds);
// The credit for the part of `charge` after `at` (at inside the charge's span).
Prorated CreditForUnused(const FeeCharge& charge, Instant at);
// The fee for a billing period that is `period` long out of `full_seconds`.
int64_t FeeForPeriod(const Money& fee, const Period& period, int64_t full_seconds);

}  // namespace caas::subscriptions
