#include "catalog/catalog.h"

#include <boost/json.hpp>
#include <fstream>
#include <set>
#include <sstream>

namespace caas::catalog {
namespace json = boost::json;

extern const char* const kDefaultCatalogJson;  // generated from catalog/plans.json

namespace {

class Reader {
 public:
  Reader(const std::string& where) : where_(where) {}
  Error Fail(const std::string& field, const std::string& reason) const {
    return Error::Invalid(where_ + field, reason);
  }

 private:
  std::string where_;
};

std::optional<int64_t> NonNegativeInt(const json::value& v) {
  if (v.is_int64() && v.as_int64() >= 0) return v.as_int64();
  if (v.is_uint64() && v.as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v.as_uint64());
  }
  return std::nullopt;
}

Result<PlanVersion> ReadPlan(const json::value& pv, const std::string& where_prefix,
                             const Currency& currency) {
  if (!pv.is_object()) return Error::Invalid(where_prefix, "must be an object");
  const json::object& p = pv.as_object();
  PlanVersion plan;
  std::string where = where_prefix;
  if (const auto* id = p.if_contains("id"); id && id->is_string()) {
    plan.id = std::string(id->as_string());
    where += " (" + plan.id + ")";
  }
  Reader r(where + ": ");
  if (plan.id.empty() || plan.id.size() > 32 ||
      plan.id.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos) {
    return r.Fail("id", "must be 1-32 characters of a-z, 0-9, '_' and '-'");
  }
  static const std::set<std::string> kKeys = {"id",       "version",    "name",   "tier",
                                              "base_fee", "trial_days", "custom", "metrics",
                                              "features", "prices"};
  for (const auto& [k, v] : p) {
    if (!kKeys.count(std::string(k))) return r.Fail(std::string(k), "is not a known plan field");
  }
  const auto* version = p.if_contains("version");
  auto ver = version ? NonNegativeInt(*version) : std::nullopt;
  if (!ver || *ver < 1 || *ver > 10'000) return r.Fail("version", "must be an integer from 1");
  plan.version = static_cast<int>(*ver);
  const auto* name = p.if_contains("name");
  if (!name || !name->is_string() || name->as_string().empty() || name->as_string().size() > 100) {
    return r.Fail("name", "must be a string of 1-100 characters");
  }
  plan.name = std::string(name->as_string());
  const auto* tier = p.if_contains("tier");
  auto t = tier ? NonNegativeInt(*tier) : std::nullopt;
  if (!t || *t > 100) return r.Fail("tier", "must be an integer from 0 to 100");
  plan.tier = static_cast<int>(*t);
  const auto* fee = p.if_contains("base_fee");
  if (!fee || !fee->is_string()) {
    return r.Fail("base_fee", "must be a decimal string in major units, e.g. \"99.00\"");
  }
  auto money = Money::Parse(std::string_view(fee->as_string()), currency);
  if (!money || money->amount_minor() < 0) {
    return r.Fail("base_fee", "must be a non-negative amount with at most " +
                                  std::to_string(currency.exponent) + " decimals");
  }
  plan.base_fee = *money;
  if (const auto* trial = p.if_contains("trial_days")) {
    auto d = NonNegativeInt(*trial);
    if (!d || *d > 365) return r.Fail("trial_days", "must be an integer from 0 to 365");
    plan.trial_days = static_cast<int>(*d);
  }
  if (const auto* custom = p.if_contains("custom")) {
    if (!custom->is_bool()) return r.Fail("custom", "must be true or false");
    plan.custom = custom->as_bool();
  }
  const auto* metrics = p.if_contains("metrics");
  if (!metrics || !metrics->is_object()) return r.Fail("metrics", "must be an object");
  for (const auto& [k, v] : metrics->as_object()) {
    const std::string field = "metrics." + std::string(k);
    auto m = ParseMetric(std::string_view(k));
    if (!m) return r.Fail(field, "is not a metric (messages, api_calls, mau, storage)");
    if (!v.is_object()) return r.Fail(field, "must be an object");
    MetricTerms mp;
    for (const auto& [mk, mv] : v.as_object()) {
      const std::string f = field + "." + std::string(mk);
      if (mk == "included" || mk == "limit") {
        auto n = NonNegativeInt(mv);
        if (!n) return r.Fail(f, "must be a non-negative integer");
        (mk == "included" ? mp.included : mp.limit) = Decimal::FromInt(*n);
      } else if (mk == "unit_price") {
        auto d = mv.is_string() ? Decimal::Parse(std::string_view(mv.as_string()))
                                : Result<Decimal>(Error::Invalid(f, "not a string"));
        if (!d || d->IsNegative()) {
          return r.Fail(f, "must be a non-negative decimal string, e.g. \"0.0001\"");
        }
        mp.unit_price = *d;
      } else {
        return r.Fail(f, "is not a known field (included, limit, unit_price)");
      }
    }
    if (mp.limit && mp.included && *mp.limit < *mp.included) {
      return r.Fail(field + ".limit", "must not be below included");
    }
    if (mp.limit && mp.unit_price && !mp.unit_price->IsZero()) {
      return r.Fail(field + ".unit_price",
                    "a metric with a hard limit is never billed beyond it; remove one of them");
    }
    plan.metrics[*m] = mp;
  }
  for (Metric m : kAllMetrics) {
    if (!plan.metrics.count(m))
      return r.Fail("metrics." + std::string(MetricName(m)), "is required");
  }
  const auto* features = p.if_contains("features");
  if (!features || !features->is_object()) return r.Fail("features", "must be an object");
  for (const auto& [k, v] : features->as_object()) {
    const std::string f = "features." + std::string(k);
    const auto& known = KnownFeatures();
    if (std::find(known.begin(), known.end(), std::string(k)) == known.end()) {
      return r.Fail(f, "is not a known feature flag");
    }
    if (!v.is_bool()) return r.Fail(f, "must be true or false");
    plan.features[std::string(k)] = v.as_bool();
  }
  for (const auto& f : KnownFeatures()) {
    if (!plan.features.count(f)) return r.Fail("features." + f, "is required");
  }
  if (const auto* prices = p.if_contains("prices")) {
    if (!prices->is_object()) return r.Fail("prices", "must be an object by currency code");
    for (const auto& [code, pv2] : prices->as_object()) {
      const std::string f = "prices." + std::string(code);
      const Currency* cur = Currency::Find(std::string_view(code));
      if (!cur) return r.Fail(f, "is not an ISO 4217 code we know");
      if (*cur == currency) return r.Fail(f, "is the catalog's currency: give it at the top");
      if (!pv2.is_object()) return r.Fail(f, "must be an object {base_fee, unit_prices}");
      Price price;
      price.base_fee = Money(0, *cur);
      const auto* pfee = pv2.as_object().if_contains("base_fee");
      if (!pfee || !pfee->is_string()) return r.Fail(f + ".base_fee", "must be a decimal string");
      auto m = Money::Parse(std::string_view(pfee->as_string()), *cur);
      if (!m || m->amount_minor() < 0) {
        return r.Fail(f + ".base_fee", "must be a non-negative amount with at most " +
                                           std::to_string(cur->exponent) + " decimals");
      }
      price.base_fee = *m;
      for (const auto& [k, v] : pv2.as_object()) {
        if (k != "base_fee" && k != "unit_prices")
          return r.Fail(f + "." + std::string(k), "is not a known field (base_fee, unit_prices)");
      }
      if (const auto* ups = pv2.as_object().if_contains("unit_prices")) {
        if (!ups->is_object()) return r.Fail(f + ".unit_prices", "must be an object by metric");
        for (const auto& [mk, mv] : ups->as_object()) {
          const std::string uf = f + ".unit_prices." + std::string(mk);
          auto metric = ParseMetric(std::string_view(mk));
          if (!metric) return r.Fail(uf, "is not a metric");
          auto d = mv.is_string() ? Decimal::Parse(std::string_view(mv.as_string()))
                                  : Result<Decimal>(Error::Invalid(uf, "not a string"));
          if (!d || d->IsNegative()) return r.Fail(uf, "must be a non-negative decimal string");
          if (!plan.metrics[*metric].unit_price) {
            return r.Fail(uf, "the plan has no unit price for this metric");
          }
          price.unit_prices[*metric] = *d;
        }
      }
      // Every metric the plan bills needs its price in this currency.
      for (const auto& [metric, mt] : plan.metrics) {
        if (mt.unit_price && !mt.unit_price->IsZero() && !price.unit_prices.count(metric)) {
          return r.Fail(f + ".unit_prices." + std::string(MetricName(metric)),
                        "is required: the plan bills it");
        }
      }
      plan.prices[std::string(code)] = price;
    }
  }
  return plan;
}

}  // namespace

catalog::Terms PlanVersion::Terms() const {
  catalog::Terms t;
  t.plan = id;
  t.plan_version = version;
  t.base_fee = base_fee;
  for (const auto& [m, terms] : metrics) t.of(m) = terms;
  return t;
}

bool PlanVersion::ChargesNothing() const {
  if (base_fee.amount_minor() != 0 || custom) return false;
  for (const auto& [m, mt] : metrics) {
    if (mt.unit_price && !mt.unit_price->IsZero()) return false;
  }
  return true;
}

Result<catalog::Terms> PlanVersion::TermsIn(const Currency& currency) const {
  catalog::Terms t = Terms();
  if (currency == base_fee.currency()) return t;
  auto it = prices.find(std::string(currency.code));
  if (it == prices.end()) {
    if (ChargesNothing()) {
      t.base_fee = Money(0, currency);
      return t;
    }
    std::string priced = std::string(base_fee.currency().code);
    for (const auto& [code, p] : prices) priced += ", " + code;
    return Error::Make(ErrorCode::kFailedPrecondition,
                       name + " has no price in " + std::string(currency.code) +
                           " (the tenant's currency); it is priced in " + priced);
  }
  t.base_fee = it->second.base_fee;
  for (Metric m : kAllMetrics) {
    MetricTerms& mt = t.of(m);
    if (!mt.unit_price) continue;
    auto up = it->second.unit_prices.find(m);
    mt.unit_price = up != it->second.unit_prices.end() ? up->second : Decimal();
  }
  return t;
}

Result<Catalog> Catalog::Parse(std::string_view text, const std::string& source) {
  json::error_code ec;
  json::value root = json::parse(text, ec);
  if (ec) return Error::Invalid(source, "is not valid JSON: " + ec.message());
  if (!root.is_object()) return Error::Invalid(source, "must be a JSON object");
  Catalog c;
  const json::object& o = root.as_object();
  for (const auto& [k, v] : o) {
    if (k != "currency" && k != "plans") {
      return Error::Invalid(source + ": " + std::string(k), "is not a known field");
    }
  }
  if (const auto* cur = o.if_contains("currency")) {
    const Currency* found =
        cur->is_string() ? Currency::Find(std::string_view(cur->as_string())) : nullptr;
    if (!found) return Error::Invalid(source + ": currency", "must be an ISO 4217 code we know");
    c.currency_ = found;
  }
  const auto* plans = o.if_contains("plans");
  if (!plans || !plans->is_array() || plans->as_array().empty()) {
    return Error::Invalid(source + ": plans", "must be a non-empty array");
  }
  std::set<std::pair<std::string, int>> seen;
  const auto& arr = plans->as_array();
  for (size_t i = 0; i < arr.size(); ++i) {
    auto p = ReadPlan(arr[i], source + ": plans[" + std::to_string(i) + "]", *c.currency_);
    if (!p) return p.error();
    if (!seen.insert({p->id, p->version}).second) {
      return Error::Invalid(source + ": plans[" + std::to_string(i) + "] (" + p->id + "): version",
                            "version " + std::to_string(p->version) + " appears twice");
    }
    c.plans_.push_back(std::move(*p));
  }
  std::sort(c.plans_.begin(), c.plans_.end(), [](const PlanVersion& a, const PlanVersion& b) {
    return a.id != b.id ? a.id < b.id : a.version < b.version;
  });
  // Every version of a plan keeps its tier (upgrade/downgrade is by plan).
  for (size_t i = 1; i < c.plans_.size(); ++i) {
    if (c.plans_[i].id == c.plans_[i - 1].id && c.plans_[i].tier != c.plans_[i - 1].tier) {
      return Error::Invalid(source + ": " + c.plans_[i].id + " version " +
                                std::to_string(c.plans_[i].version) + ": tier",
                            "must equal the tier of the plan's other versions");
    }
  }
  if (!c.Latest("free")) return Error::Invalid(source + ": plans", "must define the plan \"free\"");
  return c;
}

Result<Catalog> Catalog::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error::Invalid(path, "cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str(), path);
}

const Catalog& Catalog::Default() {
  static const Catalog c = Parse(kDefaultCatalogJson, "catalog/plans.json (built in)").value();
  return c;
}

const PlanVersion* Catalog::Latest(std::string_view id) const {
  const PlanVersion* best = nullptr;
  for (const auto& p : plans_) {
    if (p.id == id && (!best || p.version > best->version)) best = &p;
  }
  return best;
}

const PlanVersion* Catalog::Get(std::string_view id, int version) const {
  for (const auto& p : plans_) {
    if (p.id == id && p.version == version) return &p;
  }
  return nullptr;
}

}  // namespace caas::catalog
