#include "metering/plan_terms.h"

namespace caas::metering {

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
  for (auto m : {Metric::kMessages, Metric::kApiCalls, Metric::kMau, Metric::kStorage}) {
    if (MetricName(m) == name) return m;
  }
  return std::nullopt;
}

PlanTerms FreeTerms() {
  PlanTerms t;
  t.plan = "free";
  t.messages = {10'000, 10'000};
  t.mau = {1'000, 1'000};
  return t;
}

PlanTerms ProTerms() {
  PlanTerms t;
  t.plan = "pro";
  t.messages = {100'000, std::nullopt};
  t.mau = {10'000, std::nullopt};
  return t;
}

PlanTerms EnterpriseTerms() {
  PlanTerms t;
  t.plan = "enterprise";
  return t;
}

PlanTerms DefaultPlanDirectory::TermsFor(std::string_view tenant) const {
  std::lock_guard lock(mu_);
  auto it = overrides_.find(tenant);
  return it == overrides_.end() ? FreeTerms() : it->second;
}

Period DefaultPlanDirectory::PeriodFor(std::string_view, Instant t) const {
  return CalendarMonthContaining(t);
}

void DefaultPlanDirectory::SetTerms(std::string tenant, PlanTerms terms) {
  std::lock_guard lock(mu_);
  overrides_[std::move(tenant)] = std::move(terms);
}

}  // namespace caas::metering
