// The plan catalog: plans, their versions, prices, included quantities,
// limits and feature flags, read from a JSON file (catalog/plans.json ships
// the defaults of the pricing model; operators point --catalog at their own).
//
// A plan id has one or more versions. A price change is a new version: new
// subscriptions take the latest, existing ones keep theirs until migrated.
// Loading validates everything and reports errors as
// "FILE: plans[1] (pro): metrics.mau.unit_price: must be a decimal string".
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "catalog/terms.h"
#include "core/decimal.h"
#include "core/money.h"
#include "core/status.h"

namespace caas::catalog {

// A plan's prices in a currency other than the catalog's: the monthly fee
// and the unit prices of the metrics it bills (no FX conversion anywhere).
struct Price {
  Money base_fee{0, Currency::Usd()};
  std::map<Metric, Decimal> unit_prices;
};

struct PlanVersion {
  std::string id;  // "pro"
  int version = 1;
  std::string name;
  int tier = 0;                        // upgrades go to a higher tier, downgrades to a lower one
  Money base_fee{0, Currency::Usd()};  // per month
  int trial_days = 0;                  // 0: no trial
  bool custom = false;                 // terms set per tenant (Enterprise)
  std::map<Metric, MetricTerms> metrics;
  std::map<std::string, bool> features;
  std::map<std::string, Price> prices;  // by ISO 4217 code, besides the catalog's currency

  // The terms of this plan version (custom plans: before per-tenant terms).
  catalog::Terms Terms() const;
  // The same in `currency`: the catalog's, a currency of `prices`, or any
  // currency for a plan that charges nothing (Free). kFailedPrecondition
  // naming the plan and the currency otherwise.
  Result<catalog::Terms> TermsIn(const Currency& currency) const;
  // True when nothing is ever charged on it (no fee, no unit price > 0).
  bool ChargesNothing() const;
};

inline const std::vector<std::string>& KnownFeatures() {
  static const std::vector<std::string> k = {
      "sso", "custom_branding", "data_export", "priority_support", "webhooks", "audit_log"};
  return k;
}

class Catalog {
 public:
  // `source` names the text in errors (the file path).
  static Result<Catalog> Parse(std::string_view text, const std::string& source);
  static Result<Catalog> Load(const std::string& path);
  // The catalog shipped in catalog/plans.json, compiled in.
  static const Catalog& Default();

  const Currency& currency() const { return *currency_; }
  // The latest version of a plan, or nullptr.
  const PlanVersion* Latest(std::string_view id) const;
  const PlanVersion* Get(std::string_view id, int version) const;
  // Every version, by id then version.
  const std::vector<PlanVersion>& All() const { return plans_; }

 private:
  const Currency* currency_ = &Currency::Usd();
  std::vector<PlanVersion> plans_;
};

}  // namespace caas::catalog
