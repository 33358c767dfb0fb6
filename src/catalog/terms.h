// Pricing vocabulary shared by catalog, metering, subscriptions and invoices:
// the metrics, and the terms a tenant is limited and billed by.
//
// Rules (docs/subscriptions.md, "Terms"):
// - A metric with a hard `limit` is never billed beyond it: quota checks
//   refuse usage past the limit, and what is counted past it anyway is free.
// - Otherwise, usage beyond `included` (0 when absent) is billed at
//   `unit_price`. A metric without a unit price, or priced at 0, is metered
//   but never billed.
// - During a trial the plan's included quantities are hard limits and nothing
//   is billed (a trial has no card to bill): see TrialTerms.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/decimal.h"
#include "core/money.h"

namespace caas::catalog {

enum class Metric : uint8_t { kMessages = 0, kApiCalls = 1, kMau = 2, kStorage = 3 };
inline constexpr std::array<Metric, 4> kAllMetrics = {Metric::kMessages, Metric::kApiCalls,
                                                      Metric::kMau, Metric::kStorage};
inline int MetricIndex(Metric m) { return static_cast<int>(m); }
std::string_view MetricName(Metric m);
std::optional<Metric> ParseMetric(std::string_view name);
// The unit of one metric in words: "message", "call", "user", "GB-month".
std::string_view MetricUnit(Metric m);
// Counted metrics hold whole numbers; storage is GB-month with 12 decimals.
inline bool IsCounted(Metric m) { return m != Metric::kStorage; }

struct MetricTerms {
  std::optional<Decimal> included;    // units covered by the base fee; absent: none
  std::optional<Decimal> limit;       // hard cap; absent: none
  std::optional<Decimal> unit_price;  // per unit beyond `included`, in major units

  // True when usage beyond the included quantity is billed.
  bool Billable() const { return !limit && unit_price && !unit_price->IsZero(); }
  bool operator==(const MetricTerms&) const = default;
};

// Everything that is in force for a tenant while one terms segment lasts.
struct Terms {
  std::string plan = "free";
  int plan_version = 1;
  bool trial = false;
  Money base_fee{0, Currency::Usd()};  // for one whole period, billed in advance
  std::array<MetricTerms, 4> metrics;  // by MetricIndex

  const MetricTerms& of(Metric m) const { return metrics[MetricIndex(m)]; }
  MetricTerms& of(Metric m) { return metrics[MetricIndex(m)]; }
  bool operator==(const Terms&) const = default;
};

// The terms of a trial of `plan`: included quantities become hard limits,
// unit prices and the base fee go.
Terms TrialTerms(const Terms& plan);

// Checks one metric's terms the way the catalog does; returns the reason, or
// empty when they are consistent. `counted`: included/limit must be whole.
std::string CheckMetricTerms(const MetricTerms& t, bool counted);

}  // namespace caas::catalog
