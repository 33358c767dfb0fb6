#include "http/subscription_json.h"

#include <boost/json.hpp>

namespace caas::http {
namespace json = boost::json;
namespace subs = subscriptions;

namespace {

std::string Ts(Instant t) { return FormatRfc3339(t); }
json::value OptTs(const std::optional<Instant>& t) {
  return t ? json::value(Ts(*t)) : json::value(nullptr);
}
json::object PeriodJson(const Period& p) { return {{"start", Ts(p.start)}, {"end", Ts(p.end)}}; }

json::object SubJson(const subs::Subscription& s, const catalog::Catalog& catalog) {
  json::object o{{"id", s.id},
                 {"plan", s.plan.id},
                 {"plan_version", s.plan.version},
                 {"status", subs::StateName(s.status)},
                 {"started_at", Ts(s.started_at)},
                 {"billing_anchor", s.schedule.calendar ? "calendar" : "anniversary"},
                 {"anchor", Ts(s.schedule.anchor)},
                 {"current_period", PeriodJson(s.period)},
                 {"trial_end", OptTs(s.schedule.trial_end)},
                 {"trial_reminder_sent", s.trial_reminder_sent},
                 {"cancel_at_period_end", s.cancel_at_period_end},
                 {"ended_at", OptTs(s.ended_at)}};
  if (const auto* p = catalog.Get(s.plan.id, s.plan.version)) o["plan_name"] = p->name;
  if (s.scheduled_plan) {
    o["scheduled_change"] = json::object{{"plan", s.scheduled_plan->id},
                                         {"plan_version", s.scheduled_plan->version},
                                         {"at", Ts(s.period.end)}};
  } else {
    o["scheduled_change"] = nullptr;
  }
  return o;
}

}  // namespace

json::object MoneyJson(const Money& m) {
  return {{"amount_minor", m.amount_minor()}, {"currency", m.currency().code}};
}

json::object LineJson(const subs::Line& l) {
  json::object o{{"id", l.id},
                 {"kind", subs::LineKindName(l.kind)},
                 {"description", l.description},
                 {"amount", MoneyJson(l.amount)},
                 {"period", PeriodJson(l.period)},
                 {"plan", l.plan.id},
                 {"plan_version", l.plan.version},
                 {"created_at", Ts(l.created_at)}};
  if (l.proration) {
    json::object p{{"seconds", l.proration->seconds},
                   {"of_seconds", l.proration->of_seconds},
                   {"of_amount_minor", l.proration->of_amount_minor}};
    if (!l.proration->of_line.empty()) p["of_line"] = l.proration->of_line;
    o["proration"] = p;
  } else {
    o["proration"] = nullptr;
  }
  return o;
}

json::object MetricTermsJson(catalog::Metric m, const catalog::MetricTerms& t) {
  // Counted metrics as JSON integers; storage (GB-month) as exact strings.
  auto amount = [m](const std::optional<Decimal>& d) -> json::value {
    if (!d) return nullptr;
    if (catalog::IsCounted(m)) {
      if (auto whole = d->ToMinorUnitsExact(0)) return *whole;
    }
    return json::value(d->ToString());
  };
  return {
      {"included", amount(t.included)},
      {"limit", amount(t.limit)},
      {"unit_price", t.unit_price ? json::value(t.unit_price->ToString()) : json::value(nullptr)}};
}

json::object TermsJson(const catalog::Terms& t) {
  json::object metrics;
  for (catalog::Metric m : catalog::kAllMetrics) {
    metrics[catalog::MetricName(m)] = MetricTermsJson(m, t.of(m));
  }
  return {{"plan", t.plan},
          {"plan_version", t.plan_version},
          {"trial", t.trial},
          {"base_fee", MoneyJson(t.base_fee)},
          {"metrics", metrics}};
}

json::array TimelineJson(const catalog::Timeline& t) {
  json::array out;
  for (size_t i = 0; i < t.segments().size(); ++i) {
    const catalog::Segment& s = t.segments()[i];
    const Instant end = t.SegmentEnd(i);
    out.push_back(json::object{
        {"from", Ts(s.from)},
        {"to", end == Instant::max() ? json::value(nullptr) : json::value(Ts(end))},
        {"schedule",
         json::object{{"start", Ts(s.schedule.start)},
                      {"anchor", Ts(s.schedule.anchor)},
                      {"billing_anchor", s.schedule.calendar ? "calendar" : "anniversary"},
                      {"trial_end", OptTs(s.schedule.trial_end)}}},
        {"terms", TermsJson(s.terms)}});
  }
  return out;
}

json::object SubscriptionsJson(const subs::TenantSubscriptions& t, const catalog::Catalog& catalog,
                               const catalog::Timeline& timeline) {
  json::array previous, audit, lines;
  for (const auto& s : t.previous) previous.push_back(SubJson(s, catalog));
  for (const auto& a : t.audit) {
    audit.push_back(json::object{{"at", Ts(a.at)},
                                 {"actor", a.actor},
                                 {"subscription", a.subscription_id},
                                 {"from", json::object{{"plan", a.from_plan.id},
                                                       {"plan_version", a.from_plan.version},
                                                       {"status", subs::StateName(a.from_status)}}},
                                 {"to", json::object{{"plan", a.to_plan.id},
                                                     {"plan_version", a.to_plan.version},
                                                     {"status", subs::StateName(a.to_status)}}},
                                 {"reason", a.reason}});
  }
  for (const auto& l : t.pending_lines) lines.push_back(LineJson(l));
  json::object o{{"tenant", t.tenant},         {"subscription", SubJson(t.current, catalog)},
                 {"previous", previous},       {"audit", audit},
                 {"pending_lines", lines},     {"timeline", TimelineJson(timeline)},
                 {"trial_used", t.trial_used}, {"payment_method_on_file", t.has_payment_method}};
  if (t.custom_terms) {
    json::object ct, metrics;
    ct["base_fee"] = t.custom_terms->base_fee ? json::value(MoneyJson(*t.custom_terms->base_fee))
                                              : json::value(nullptr);
    for (const auto& [m, mt] : t.custom_terms->metrics) {
      metrics[catalog::MetricName(m)] = MetricTermsJson(m, mt);
    }
    ct["metrics"] = metrics;
    o["custom_terms"] = ct;
  } else {
    o["custom_terms"] = nullptr;
  }
  json::object fo;
  for (const auto& [k, v] : t.feature_overrides) fo[k] = v;
  o["feature_overrides"] = fo;
  return o;
}

}  // namespace caas::http
