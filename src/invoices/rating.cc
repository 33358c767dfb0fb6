#include "invoices/rating.h"

#include <map>
#include <tuple>

namespace caas::invoices {
namespace {

using catalog::Metric;

__int128 Pow10(int n) {
  __int128 p = 1;
  for (int i = 0; i < n; ++i) p *= 10;
  return p;
}

// An amount in minor units as a Decimal in major units (exact).
Decimal MajorUnits(int64_t minor, int exponent) {
  return Decimal::FromRaw(static_cast<__int128>(minor) * Pow10(Decimal::kScale - exponent));
}

// 100000 -> "100,000"; fractions kept: "2.5".
std::string Grouped(const Decimal& d) {
  std::string s = d.ToString();
  const size_t dot = s.find('.');
  std::string whole = s.substr(0, dot == std::string::npos ? s.size() : dot);
  const std::string rest = dot == std::string::npos ? "" : s.substr(dot);
  const bool neg = !whole.empty() && whole[0] == '-';
  if (neg) whole.erase(0, 1);
  std::string out;
  for (size_t i = 0; i < whole.size(); ++i) {
    if (i > 0 && (whole.size() - i) % 3 == 0) out += ',';
    out += whole[i];
  }
  return (neg ? "-" : "") + out + rest;
}

std::string Day(Instant t) { return FormatRfc3339(t).substr(0, 10); }

LineType TypeOf(subscriptions::LineKind k) {
  switch (k) {
    case subscriptions::LineKind::kBaseFee:
      return LineType::kBaseFee;
    case subscriptions::LineKind::kProrationCredit:
      return LineType::kProrationCredit;
    case subscriptions::LineKind::kProrationCharge:
      return LineType::kProrationCharge;
    case subscriptions::LineKind::kCredit:
      return LineType::kCredit;
  }
  return LineType::kBaseFee;
}

std::string MetricLabel(Metric m) {
  switch (m) {
    case Metric::kMessages:
      return "Messages";
    case Metric::kApiCalls:
      return "API calls";
    case Metric::kMau:
      return "Monthly active users";
    case Metric::kStorage:
      return "Media storage";
  }
  return "Usage";
}

// A usage line: units × the slice's price, rounded once.
Result<InvoiceLine> UsageLine(LineType type, Metric m, const UsageSlice& s, const Period& period,
                              const Decimal& units, const Currency& cur, std::string description) {
  const catalog::MetricTerms& mt = s.terms.of(m);
  InvoiceLine l;
  l.type = type;
  l.description = std::move(description);
  l.period = Period{s.from, s.to};
  l.quantity = units;
  l.unit_price = *mt.unit_price;
  auto minor = Decimal::MultiplyToMinorUnits(*mt.unit_price, units, cur.exponent);
  if (!minor) return minor.error();
  l.amount = Money(*minor, cur);
  l.plan = s.terms.plan;
  l.plan_version = s.terms.plan_version;
  l.metric = m;
  l.usage_period = period;
  return l;
}

}  // namespace

InvoiceLine FixedLine(const subscriptions::Line& f) {
  InvoiceLine l;
  l.type = TypeOf(f.kind);
  l.description = f.description;
  l.period = f.period;
  l.quantity = Decimal::FromInt(1);
  l.unit_price = MajorUnits(f.amount.amount_minor(), f.amount.currency().exponent);
  l.amount = f.amount;
  l.plan = f.plan.id;
  l.plan_version = f.plan.version;
  l.source = f.id;
  return l;
}

std::string UsageDescription(Metric m, const catalog::MetricTerms& t) {
  if (m == Metric::kStorage) {
    if (t.included && !t.included->IsZero()) {
      return "Media storage beyond " + Grouped(*t.included) + " GB-month included (GB-month)";
    }
    return "Media storage (GB-month)";
  }
  if (t.included && !t.included->IsZero()) {
    return MetricLabel(m) + " beyond " + Grouped(*t.included) + " included";
  }
  return MetricLabel(m);
}

Result<Rated> Rate(const RatingInput& in) {
  const Currency& cur = *in.currency;
  Rated r;
  r.subtotal = r.tax = r.total = r.amount_due = Money::Zero(cur);
  for (const auto& f : in.fixed) {
    if (!(f.amount.currency() == cur)) {
      return Error::Invalid("currency", "line " + f.source + " is in " +
                                            std::string(f.amount.currency().code) +
                                            ", the invoice in " + std::string(cur.code));
    }
    r.lines.push_back(f);
  }
  const bool several = in.usage && in.usage->slices.size() > 1;
  if (in.usage) {
    for (const UsageSlice& s : in.usage->slices) {
      for (Metric m : catalog::kAllMetrics) {
        const catalog::MetricTerms& mt = s.terms.of(m);
        const Decimal& units = s.billable[catalog::MetricIndex(m)];
        if (!mt.Billable() || units.IsZero()) continue;
        std::string d = UsageDescription(m, mt);
        if (several) d += " (" + s.terms.plan + ", " + Day(s.from) + " to " + Day(s.to) + ")";
        auto l = UsageLine(LineType::kUsage, m, s, in.usage->period, units, cur, d);
        if (!l) return l.error();
        r.lines.push_back(std::move(*l));
        r.billed.push_back(BilledUsage{in.usage->period.start, s.from, m, units});
      }
    }
  }
  // Late usage: what earlier periods bill now, less what was billed for them.
  std::map<std::tuple<int64_t, int64_t, int>, Decimal> billed;
  for (const auto& b : in.billed_before) {
    auto& sum = billed[{b.period_start.time_since_epoch().count(),
                        b.slice_from.time_since_epoch().count(), catalog::MetricIndex(b.metric)}];
    auto next = sum.Add(b.units);
    if (!next) return next.error();
    sum = *next;
  }
  for (const PeriodUsage& p : in.earlier) {
    for (const UsageSlice& s : p.slices) {
      for (Metric m : catalog::kAllMetrics) {
        const catalog::MetricTerms& mt = s.terms.of(m);
        if (!mt.Billable()) continue;
        const Decimal now = s.billable[catalog::MetricIndex(m)];
        auto it = billed.find({p.period.start.time_since_epoch().count(),
                               s.from.time_since_epoch().count(), catalog::MetricIndex(m)});
        const Decimal before = it == billed.end() ? Decimal() : it->second;
        auto delta = now.Subtract(before);
        if (!delta) return delta.error();
        if (delta->IsZero()) continue;
        const std::string d = "Late usage for " + Day(p.period.start) + " to " + Day(p.period.end) +
                              ": " + UsageDescription(m, mt);
        auto l = UsageLine(LineType::kLateUsage, m, s, p.period, *delta, cur, d);
        if (!l) return l.error();
        r.lines.push_back(std::move(*l));
        r.billed.push_back(BilledUsage{p.period.start, s.from, m, *delta});
      }
    }
  }
  for (const auto& l : r.lines) {
    auto sum = r.subtotal.Add(l.amount);
    if (!sum) return sum.error();
    r.subtotal = *sum;
  }
  TaxLine t;
  t.taxable = r.subtotal;
  t.amount = Money::Zero(cur);
  switch (in.tax_mode) {
    case TaxMode::kStandard: {
      t.rate = in.tax_rate;
      t.description = "Tax " + in.tax_rate.ToString() + "%";
      // subtotal × rate / 100, rounded once: rate has at most 4 decimals, so
      // rate / 100 is exact in 12.
      const Decimal fraction = Decimal::FromRaw(in.tax_rate.raw() / 100);
      auto minor = Decimal::MultiplyToMinorUnits(
          fraction, MajorUnits(r.subtotal.amount_minor(), cur.exponent), cur.exponent);
      if (!minor) return minor.error();
      t.amount = Money(*minor, cur);
      break;
    }
    case TaxMode::kExempt:
      t.description = "Tax exempt";
      break;
    case TaxMode::kReverseCharge:
      t.description = "Reverse charge";
      break;
  }
  r.tax = t.amount;
  r.taxes.push_back(std::move(t));
  auto total = r.subtotal.Add(r.tax);
  if (!total) return total.error();
  r.total = *total;
  r.amount_due = r.total.amount_minor() > 0 ? r.total : Money::Zero(cur);
  return r;
}

}  // namespace caas::invoices
