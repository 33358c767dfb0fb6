#include "catalog/allowance.h"

namespace caas::catalog {

std::vector<Decimal> BillableBySlice(const std::vector<SliceUse>& slices) {
  std::vector<Decimal> out;
  out.reserve(slices.size());
  Decimal before;  // the period's usage before this slice
  for (const SliceUse& s : slices) {
    // Sums of usage stay far below the Decimal range (|x| < 1.7e26).
    const Decimal after = before.Add(s.used).value();
    Decimal billable;
    if (s.terms->Billable()) {
      const Decimal included = s.terms->included.value_or(Decimal());
      const Decimal floor = std::max(before, included);
      if (after > floor) billable = after.Subtract(floor).value();
    }
    out.push_back(billable);
    before = after;
  }
  return out;
}

}  // namespace caas::catalog
