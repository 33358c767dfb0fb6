// Rating: what an invoice holds, as a pure function of its inputs (no clock,
// no store), so it can be tested exhaustively (tests/invoices/rating_test.cc).
//
// Rules (docs/invoices.md, "Billing model"; rounding: docs/money.md):
// - the subscription's lines (fees in advance, prorations) are copied as
//   they are: they were rounded when they were made;
// - usage of the period that ended is billed per slice of the period (one
//   slice per terms segment in force) and per metric: the billable units
//   metering rated (beyond the included quantities, allowance consumed in
//   time order) × the slice's unit price, rounded once per line;
// - late usage: for each earlier period already invoiced, the billable units
//   now minus the units billed so far, per slice and metric, as its own line
//   naming its period (negative after a void: a credit);
// - tax: one line per rate, round(subtotal × rate / 100) once; exempt and
//   reverse charge tax nothing and say why;
// - total = Σ lines + Σ tax exactly; amount due = max(total, 0).
#pragma once

#include <array>
#include <optional>
#include <vector>

#include "catalog/terms.h"
#include "core/status.h"
#include "invoices/model.h"
#include "subscriptions/model.h"

namespace caas::invoices {

// The rated usage of one billing period (from metering), slice by slice.
struct UsageSlice {
  Instant from, to;
  catalog::Terms terms;
  std::array<Decimal, 4> used;      // by MetricIndex
  std::array<Decimal, 4> billable;  // by MetricIndex: beyond what is included
};
struct PeriodUsage {
  Period period;
  std::vector<UsageSlice> slices;
};

struct RatingInput {
  const Currency* currency = &Currency::Usd();
  std::vector<InvoiceLine> fixed;          // fees and prorations (FixedLine), kept as they are
  std::optional<PeriodUsage> usage;        // the period that ended
  std::vector<PeriodUsage> earlier;        // earlier invoiced periods, as they read now
  std::vector<BilledUsage> billed_before;  // what was billed for them so far
  TaxMode tax_mode = TaxMode::kStandard;
  Decimal tax_rate;  // percent
};

struct Rated {
  std::vector<InvoiceLine> lines;
  std::vector<TaxLine> taxes;
  Money subtotal{0, Currency::Usd()};
  Money tax{0, Currency::Usd()};
  Money total{0, Currency::Usd()};
  Money amount_due{0, Currency::Usd()};
  std::vector<BilledUsage> billed;  // the units these lines bill
};

// A subscription line (a fee or a proration) as an invoice line: quantity 1,
// its amount as the unit price.
InvoiceLine FixedLine(const subscriptions::Line& l);

// kInvalidArgument for a line in another currency; kOutOfRange on overflow.
Result<Rated> Rate(const RatingInput& in);

// "Messages beyond 100,000 included", "Media storage" …
std::string UsageDescription(catalog::Metric m, const catalog::MetricTerms& t);

}  // namespace caas::invoices
