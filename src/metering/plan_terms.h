// What the metering engine needs to know about a tenant's plan: the billing
// period an instant falls in, and the included quantities and limits of each
// metric. In the service, app wires a PlanDirectory backed by subscriptions
// (terms from the catalog). DefaultPlanDirectory, with the pricing model's
// defaults below, is the stand-alone directory of metering's own tests and
// benchmarks.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/decimal.h"
#include "core/time.h"

namespace caas::metering {

enum class Metric : uint8_t { kMessages, kApiCalls, kMau, kStorage };
std::string_view MetricName(Metric m);
std::optional<Metric> ParseMetric(std::string_view name);

struct CountTerms {
  std::optional<int64_t> included;  // units in the base fee; nullopt: none
  std::optional<int64_t> limit;     // hard cap; nullopt: unlimited (overage billed)
};

struct PlanTerms {
  std::string plan = "free";
  CountTerms messages;
  CountTerms api_calls;
  CountTerms mau;
  std::optional<Decimal> storage_included;  // GB-month
  std::optional<Decimal> storage_limit;     // GB-month

  const CountTerms& count(Metric m) const {
    return m == Metric::kMessages ? messages : m == Metric::kApiCalls ? api_calls : mau;
  }
};

// The defaults of the pricing model, for tests and benchmarks; the service
// reads them from catalog/plans.json.
PlanTerms FreeTerms();        // 10,000 messages, 1,000 MAU, hard limits
PlanTerms ProTerms();         // 100,000 messages, 10,000 MAU included, overage billed
PlanTerms EnterpriseTerms();  // unlimited unless configured

class PlanDirectory {
 public:
  virtual ~PlanDirectory() = default;
  virtual PlanTerms TermsFor(std::string_view tenant) const = 0;
  virtual Period PeriodFor(std::string_view tenant, Instant t) const = 0;
};

// Free and calendar months for everyone, unless SetTerms() says otherwise.
class DefaultPlanDirectory : public PlanDirectory {
 public:
  PlanTerms TermsFor(std::string_view tenant) const override;
  Period PeriodFor(std::string_view tenant, Instant t) const override;
  void SetTerms(std::string tenant, PlanTerms terms);

 private:
  mutable std::mutex mu_;
  std::map<std::string, PlanTerms, std::less<>> overrides_;
};

}  // namespace caas::metering
