// How a billing period's usage is split into included and billable units
// when the terms change inside the period (docs/subscriptions.md,
// "Usage when terms change").
//
// One allowance per billing period, consumed in time order. Usage counts
// cumulatively from the period's start; a unit used while a slice's terms are
// in force is included while the period's cumulative usage is within that
// slice's included quantity, and billable (at that slice's unit price)
// beyond it. Included quantities are not prorated: an upgrade mid-period
// gives the new plan's whole allowance for the rest of the period, less what
// the period has already used.
#pragma once

#include <vector>

#include "catalog/terms.h"

namespace caas::catalog {

struct SliceUse {
  const MetricTerms* terms;  // the terms of the slice's segment
  Decimal used;              // what the slice added (MAU: users first active in it)
};

// The billable quantity of each slice, in the same order.
std::vector<Decimal> BillableBySlice(const std::vector<SliceUse>& slices);

}  // namespace caas::catalog
