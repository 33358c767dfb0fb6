#include "catalog/terms.h"

namespace caas::catalog {

std::string_view MetricName(Metric m) {
  switch (m) {
    case Metric::kMessages:
      return "messages";
    case Metric::kApiCalls:
      return "api_calls";
    case Metric::kMau:
      return "mau";
    case Metric::kStorage:
      return "storage";
  }
  return "unknown";
}

std::optional<Metric> ParseMetric(std::string_view name) {
  for (Metric m : kAllMetrics) {
    if (MetricName(m) == name) return m;
  }
  return std::nullopt;
}

std::string_view MetricUnit(Metric m) {
  switch (m) {
    case Metric::kMessages:
      return "message";
    case Metric::kApiCalls:
      return "call";
    case Metric::kMau:
      return "user";
    case Metric::kStorage:
      return "GB-month";
  }
  return "";
}

Terms TrialTerms(const Terms& plan) {
  Terms t = plan;
  t.trial = true;
  t.base_fee = Money::Zero(plan.base_fee.currency());
  for (MetricTerms& m : t.metrics) {
    if (m.included && !m.limit) m.limit = m.included;
    m.unit_price.reset();
  }
  return t;
}

std::string CheckMetricTerms(const MetricTerms& t, bool counted) {
  auto whole = [](const Decimal& d) { return d.ToMinorUnitsExact(0).ok(); };
  if (t.included && (t.included->IsNegative() || (counted && !whole(*t.included)))) {
    return counted ? "included must be a non-negative integer"
                   : "included must be a non-negative decimal";
  }
  if (t.limit && (t.limit->IsNegative() || (counted && !whole(*t.limit)))) {
    return counted ? "limit must be a non-negative integer"
                   : "limit must be a non-negative decimal";
  }
  if (t.unit_price && t.unit_price->IsNegative()) return "unit_price must not be negative";
  if (t.limit && t.included && *t.limit < *t.included) return "limit must not be below included";
  if (t.limit && t.unit_price && !t.unit_price->IsZero()) {
    return "a metric with a hard limit is never billed beyond it: give a limit or a unit_price, "
           "not both";
  }
  return {};
}

}  // namespace caas::catalog
