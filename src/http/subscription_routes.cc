// /v1/tenants/{id}/subscription…, /v1/tenants/{id}/entitlements, /v1/clock.
#include <boost/json.hpp>

#include "core/log.h"
#include "core/text.h"
#include "http/api.h"
#include "http/json_input.h"
#include "http/problem.h"
#include "http/subscription_json.h"
#include "invoices/invoices.h"
#include "subscriptions/subscriptions.h"
#include "subscriptions/timeline.h"

namespace caas::http {
namespace json = boost::json;
namespace subs = subscriptions;

namespace {

constexpr auto kMaxAdvance = std::chrono::hours(24) * 400;

Response NoSuchTenant(std::string_view id) {
  return Problem(404, "not-found", "Not found", "no tenant " + std::string(id));
}

Response SubscriptionProblem(const Error& e) {
  if (e.code == ErrorCode::kFailedPrecondition) {
    return Problem(409, "invalid-transition", "Change not allowed", e.message);
  }
  if (e.code == ErrorCode::kPermissionDenied) {
    return Problem(403, "forbidden", "Forbidden", e.message);
  }
  return ProblemFromError(e);
}

// Reads {plan, at?, trial?, billing_anchor?}.
std::variant<subs::ChangeRequest, Response> ReadChange(const Request& req) {
  auto body = ReadJsonBody(req);
  if (auto* problem = std::get_if<Response>(&body)) return std::move(*problem);
  const json::object& o = std::get<json::object>(body);
  std::vector<Error> errors;
  subs::ChangeRequest r;
  for (const auto& [k, v] : o) {
    if (k == "plan") {
      if (v.is_string() && !v.as_string().empty() && v.as_string().size() <= 32) {
        r.plan = std::string(v.as_string());
      } else {
        errors.push_back(Error::Invalid("plan", "must be a plan id (free, pro, enterprise)"));
      }
    } else if (k == "at") {
      if (v.is_string() && (v.as_string() == "now" || v.as_string() == "period_end")) {
        r.at = v.as_string() == "now" ? subs::When::kNow : subs::When::kPeriodEnd;
      } else {
        errors.push_back(Error::Invalid("at", "must be \"now\" or \"period_end\""));
      }
    } else if (k == "trial") {
      if (v.is_bool()) {
        r.trial = v.as_bool();
      } else {
        errors.push_back(Error::Invalid("trial", "must be true or false"));
      }
    } else if (k == "billing_anchor") {
      if (v.is_string() && (v.as_string() == "calendar" || v.as_string() == "anniversary")) {
        r.billing_anchor =
            v.as_string() == "calendar" ? subs::Anchor::kCalendar : subs::Anchor::kAnniversary;
      } else {
        errors.push_back(
            Error::Invalid("billing_anchor", "must be \"calendar\" or \"anniversary\""));
      }
    } else {
      errors.push_back(Error::Invalid(std::string(TruncateUtf8(k, 64)), "is not a known field"));
    }
  }
  if (r.plan.empty() && errors.empty()) errors.push_back(Error::Invalid("plan", "is required"));
  if (!errors.empty()) return ProblemFromError(errors.front(), errors);
  return r;
}

json::object ChangeJson(const subs::ChangeResult& r, const subs::SubscriptionService& svc) {
  json::array lines;
  int64_t total = 0;
  for (const auto& l : r.lines) {
    lines.push_back(LineJson(l));
    total += l.amount.amount_minor();
  }
  return {{"effect", subs::EffectName(r.effect)},
          {"lines", lines},
          {"total_minor", total},
          {"currency", subs::CurrencyOf(svc.catalog(), r.state).code},
          {"subscription", SubscriptionsJson(r.state, svc.catalog(), svc.TimelineOf(r.state))}};
}

json::object EntitlementsJson(const std::string& tenant, const subs::Entitlements& e) {
  json::object features, limits;
  for (const auto& [k, v] : e.features) features[k] = v;
  for (catalog::Metric m : catalog::kAllMetrics) {
    json::object t = MetricTermsJson(m, e.terms.of(m));
    t.erase("unit_price");
    limits[catalog::MetricName(m)] = t;
  }
  return {{"tenant", tenant},
          {"plan", e.plan},
          {"plan_version", e.plan_version},
          {"status", subs::StateName(e.status)},
          {"trial", e.terms.trial},
          {"period", json::object{{"start", FormatRfc3339(e.period.start)},
                                  {"end", FormatRfc3339(e.period.end)}}},
          {"features", features},
          {"limits", limits}};
}

// Reads one metric's terms: included/limit are integers (storage: also a
// decimal string of GB-month), unit_price a decimal string.
void ReadMetricTerms(catalog::Metric m, const json::object& o, const std::string& field,
                     catalog::MetricTerms* out, std::vector<Error>& errors) {
  for (const auto& [k, v] : o) {
    const std::string f = field + "." + std::string(k);
    if (k == "included" || k == "limit") {
      std::optional<Decimal> d;
      if (v.is_int64() && v.as_int64() >= 0) d = Decimal::FromInt(v.as_int64());
      if (!catalog::IsCounted(m) && v.is_string()) {
        auto p = Decimal::Parse(std::string_view(v.as_string()));
        if (p && !p->IsNegative()) d = *p;
      }
      if (!d) {
        errors.push_back(Error::Invalid(
            f, catalog::IsCounted(m) ? "must be a non-negative integer"
                                     : "must be a non-negative integer or decimal string"));
        continue;
      }
      (k == "included" ? out->included : out->limit) = *d;
    } else if (k == "unit_price") {
      auto p = v.is_string() ? Decimal::Parse(std::string_view(v.as_string()))
                             : Result<Decimal>(Error::Invalid(f, ""));
      if (!p || p->IsNegative()) {
        errors.push_back(
            Error::Invalid(f, "must be a non-negative decimal string, e.g. \"0.0001\""));
        continue;
      }
      out->unit_price = *p;
    } else {
      errors.push_back(Error::Invalid(std::string(TruncateUtf8(f, 96)),
                                      "is not a known field (included, limit, unit_price)"));
    }
  }
  if (errors.empty()) {
    const std::string why = catalog::CheckMetricTerms(*out, catalog::IsCounted(m));
    if (!why.empty()) errors.push_back(Error::Invalid(field, why));
  }
}

// A change that closed a period or charges more than it credits is invoiced
// at once (docs/invoices.md); a failure here is retried by the scheduler.
void InvoiceNow(const Services& s, std::string_view tenant) {
  if (!s.invoices) return;
  try {
    auto r = s.invoices->Close(tenant, s.clock.Now());
    if (!r) {
      Log(LogLevel::kWarn, "invoice_deferred", {{"tenant", tenant}, {"error", r.error().message}});
    }
  } catch (const storage::StorageError& e) {
    Log(LogLevel::kWarn, "invoice_deferred",
        {{"tenant", tenant}, {"error", std::string_view(e.what())}});
  }
}

}  // namespace

void AddSubscriptionRoutes(Api& api, Services s) {
  // The tenant's creation time anchors its first (Free) subscription.
  auto created = [s](std::string_view id) -> std::optional<Instant> {
    auto t = s.tenants.Get(id);
    if (!t) return std::nullopt;
    return t->created_at;
  };
  // The same, for a tenant the caller may see (nullopt answers 404 either way).
  auto visible = [created](const Context& ctx) -> std::optional<Instant> {
    const auto id = ctx.Param("id");
    return ctx.principal.MaySee(id) ? created(id) : std::nullopt;
  };

  api.Add("GET", "/v1/tenants/{id}/subscription", Access::kAnyKey,
          [s, visible](Context& ctx) -> Response {
            const auto id = ctx.Param("id");
            auto c = visible(ctx);
            if (!c) return NoSuchTenant(id);
            auto t = s.subscriptions->Get(id, *c);
            if (!t) return SubscriptionProblem(t.error());
            return JsonResponse(200, SubscriptionsJson(*t, s.subscriptions->catalog(),
                                                       s.subscriptions->TimelineOf(*t)));
          });

  for (const bool preview : {false, true}) {
    api.Add("POST",
            preview ? "/v1/tenants/{id}/subscription/preview" : "/v1/tenants/{id}/subscription",
            Access::kAnyKey, [s, visible, preview](Context& ctx) -> Response {
              const auto id = ctx.Param("id");
              auto c = visible(ctx);
              if (!c) return NoSuchTenant(id);
              auto req = ReadChange(ctx.request);
              if (auto* problem = std::get_if<Response>(&req)) return std::move(*problem);
              const auto& change = std::get<subs::ChangeRequest>(req);
              auto r = preview ? s.subscriptions->Preview(id, *c, change, ctx.principal.IsAdmin())
                               : s.subscriptions->Change(id, *c, change, ctx.principal.key_id,
                                                         ctx.principal.IsAdmin());
              if (!r) return SubscriptionProblem(r.error());
              if (!preview && !r->state.closings.empty()) InvoiceNow(s, id);
              return JsonResponse(200, ChangeJson(*r, *s.subscriptions));
            });
  }

  api.Add("POST", "/v1/tenants/{id}/subscription/cancel", Access::kAnyKey,
          [s, visible](Context& ctx) -> Response {
            const auto id = ctx.Param("id");
            auto c = visible(ctx);
            if (!c) return NoSuchTenant(id);
            bool now = false;
            if (!ctx.request.body.empty()) {
              auto body = ReadJsonBody(ctx.request);
              if (auto* problem = std::get_if<Response>(&body)) return std::move(*problem);
              std::vector<Error> errors;
              ObjectReader r(std::get<json::object>(body), errors);
              auto at = r.String("at", false);
              r.RejectUnknown();
              if (at && *at != "now" && *at != "period_end") {
                errors.push_back(Error::Invalid("at", "must be \"now\" or \"period_end\""));
              }
              if (!errors.empty()) return ProblemFromError(errors.front(), errors);
              now = at && *at == "now";
            }
            auto r = s.subscriptions->Cancel(id, *c, now, ctx.principal.key_id);
            if (!r) return SubscriptionProblem(r.error());
            if (!r->state.closings.empty()) InvoiceNow(s, id);
            return JsonResponse(200, ChangeJson(*r, *s.subscriptions));
          });

  api.Add("POST", "/v1/tenants/{id}/subscription/reactivate", Access::kAnyKey,
          [s, visible](Context& ctx) -> Response {
            const auto id = ctx.Param("id");
            auto c = visible(ctx);
            if (!c) return NoSuchTenant(id);
            auto r = s.subscriptions->Reactivate(id, *c, ctx.principal.key_id);
            if (!r) return SubscriptionProblem(r.error());
            return JsonResponse(200, ChangeJson(*r, *s.subscriptions));
          });

  // Enterprise terms and feature overrides (admin).
  api.Add(
      "POST", "/v1/tenants/{id}/subscription/terms", Access::kAdmin,
      [s, created](Context& ctx) -> Response {
        const auto id = ctx.Param("id");
        auto c = created(id);
        if (!c) return NoSuchTenant(id);
        auto body = ReadJsonBody(ctx.request);
        if (auto* problem = std::get_if<Response>(&body)) return std::move(*problem);
        const json::object& o = std::get<json::object>(body);
        std::vector<Error> errors;
        subs::CustomTerms terms;
        std::map<std::string, bool> features;
        // In the tenant's currency (its subscription is priced in it).
        auto tenant = s.tenants.Get(id);
        const Currency* tc = tenant ? Currency::Find(tenant->currency) : nullptr;
        const Currency& cur = tc ? *tc : s.subscriptions->catalog().currency();
        for (const auto& [k, v] : o) {
          if (k == "base_fee") {
            auto m = v.is_string() ? Money::Parse(std::string_view(v.as_string()), cur)
                                   : Result<Money>(Error::Invalid("base_fee", ""));
            if (!m || m->amount_minor() < 0) {
              errors.push_back(Error::Invalid(
                  "base_fee", "must be a non-negative amount string, e.g. \"5000.00\""));
            } else {
              terms.base_fee = *m;
            }
          } else if (k == "metrics" && v.is_object()) {
            for (const auto& [mk, mv] : v.as_object()) {
              auto m = catalog::ParseMetric(std::string_view(mk));
              const std::string f = "metrics." + std::string(TruncateUtf8(mk, 64));
              if (!m || !mv.is_object()) {
                errors.push_back(Error::Invalid(
                    f, "must be one of messages, api_calls, mau, storage, with an object"));
                continue;
              }
              catalog::MetricTerms mt;
              ReadMetricTerms(*m, mv.as_object(), f, &mt, errors);
              terms.metrics[*m] = mt;
            }
          } else if (k == "features" && v.is_object()) {
            for (const auto& [fk, fv] : v.as_object()) {
              const auto& known = catalog::KnownFeatures();
              if (std::find(known.begin(), known.end(), std::string(fk)) == known.end() ||
                  !fv.is_bool()) {
                errors.push_back(
                    Error::Invalid("features." + std::string(fk),
                                   "must be a known feature flag set to true or false"));
              } else {
                features[std::string(fk)] = fv.as_bool();
              }
            }
          } else {
            errors.push_back(Error::Invalid(std::string(TruncateUtf8(k, 64)),
                                            "is not a known field (base_fee, metrics, features)"));
          }
        }
        if (!errors.empty()) return ProblemFromError(errors.front(), errors);
        auto r = s.subscriptions->SetCustomTerms(id, *c, terms, features, ctx.principal.key_id);
        if (r && !r->state.closings.empty()) InvoiceNow(s, id);
        if (!r) return SubscriptionProblem(r.error());
        return JsonResponse(200, ChangeJson(*r, *s.subscriptions));
      });

  // Until the payments issue lands, an operator records whether a card is
  // on file (trials convert to paid only with one).
  api.Add("POST", "/v1/tenants/{id}/subscription/payment-method", Access::kAdmin,
          [s, created](Context& ctx) -> Response {
            const auto id = ctx.Param("id");
            auto c = created(id);
            if (!c) return NoSuchTenant(id);
            auto body = ReadJsonBody(ctx.request);
            if (auto* problem = std::get_if<Response>(&body)) return std::move(*problem);
            const json::object& o = std::get<json::object>(body);
            const auto* on = o.if_contains("on_file");
            if (!on || !on->is_bool() || o.size() != 1) {
              return ProblemFromError(
                  Error::Invalid("on_file", "must be true or false (the only field)"));
            }
            auto r = s.subscriptions->SetPaymentMethod(id, *c, on->as_bool(), ctx.principal.key_id);
            if (!r) return SubscriptionProblem(r.error());
            return JsonResponse(200, SubscriptionsJson(r->state, s.subscriptions->catalog(),
                                                       s.subscriptions->TimelineOf(r->state)));
          });

  api.Add(
      "GET", "/v1/tenants/{id}/entitlements", Access::kAnyKey,
      [s](Context& ctx) -> Response {
        const auto id = ctx.Param("id");
        if (!ctx.principal.MaySee(id)) return NoSuchTenant(id);
        auto v = s.subscriptions->CachedView(id);
        if (!v) {
          if (v.error().code == ErrorCode::kNotFound) return NoSuchTenant(id);
          return SubscriptionProblem(v.error());
        }
        return JsonResponse(200, EntitlementsJson(std::string(id), v->entitlements));
      },
      /*log_success=*/false);

  api.Add("GET", "/v1/plans", Access::kAnyKey, [s](Context&) -> Response {
    json::array plans;
    const auto& c = s.subscriptions->catalog();
    for (const auto& p : c.All()) {
      json::object metrics, features;
      for (const auto& [m, mt] : p.metrics)
        metrics[catalog::MetricName(m)] = MetricTermsJson(m, mt);
      for (const auto& [f, on] : p.features) features[f] = on;
      plans.push_back(json::object{{"id", p.id},
                                   {"version", p.version},
                                   {"latest", c.Latest(p.id) == &p},
                                   {"name", p.name},
                                   {"tier", p.tier},
                                   {"base_fee", p.base_fee.ToDecimalString()},
                                   {"currency", c.currency().code},
                                   {"custom", p.custom},
                                   {"trial_days", p.trial_days},
                                   {"metrics", metrics},
                                   {"features", features}});
    }
    return JsonResponse(200, json::object{{"object", "list"}, {"data", plans}});
  });

  api.Add("POST", "/v1/plans/{id}/migrate", Access::kAdmin, [s](Context& ctx) -> Response {
    auto body = ReadJsonBody(ctx.request);
    if (auto* problem = std::get_if<Response>(&body)) return std::move(*problem);
    const json::object& o = std::get<json::object>(body);
    std::vector<Error> errors;
    std::optional<int> from, to;
    for (const auto& [k, v] : o) {
      if ((k == "to_version" || k == "from_version") && v.is_int64() && v.as_int64() >= 1 &&
          v.as_int64() <= 10'000) {
        (k == "to_version" ? to : from) = static_cast<int>(v.as_int64());
      } else {
        errors.push_back(Error::Invalid(std::string(TruncateUtf8(k, 64)),
                                        "to_version and from_version are integers from 1"));
      }
    }
    if (!to && errors.empty()) errors.push_back(Error::Invalid("to_version", "is required"));
    if (!errors.empty()) return ProblemFromError(errors.front(), errors);
    const std::string plan(ctx.Param("id"));
    if (!s.subscriptions->catalog().Latest(plan)) {
      return Problem(404, "not-found", "Not found", "no plan " + plan + " in the catalog");
    }
    auto n = s.subscriptions->MigratePlan(plan, from, *to, ctx.principal.key_id);
    if (!n) return SubscriptionProblem(n.error());
    return JsonResponse(200, json::object{{"plan", plan}, {"to_version", *to}, {"migrated", *n}});
  });

  api.Add("GET", "/v1/clock", Access::kAnyKey, [s](Context&) -> Response {
    return JsonResponse(200, json::object{{"now", FormatRfc3339(s.clock.Now())},
                                          {"mode", s.clock.IsManual() ? "manual" : "system"}});
  });

  api.Add("POST", "/v1/clock/advance", Access::kAdmin, [s](Context& ctx) -> Response {
    if (!s.clock.IsManual() || s.manual_clock == nullptr) {
      return Problem(409, "system-clock", "The clock is the system clock",
                     "start the server with --clock manual to move time");
    }
    auto body = ReadJsonBody(ctx.request);
    if (auto* problem = std::get_if<Response>(&body)) return std::move(*problem);
    std::vector<Error> errors;
    ObjectReader r(std::get<json::object>(body), errors);
    auto to = r.String("to", true);
    r.RejectUnknown();
    if (!errors.empty()) return ProblemFromError(errors.front(), errors);
    auto target = ParseRfc3339(*to);
    if (!target) return ProblemFromError(Error::Invalid("to", "must be an RFC 3339 date-time"));
    if (*target < s.clock.Now()) {
      return ProblemFromError(Error::Invalid(
          "to", "must not be before the current time " + FormatRfc3339(s.clock.Now())));
    }
    // Bounded: every transition on the way runs at its own instant, so one
    // call does at most about a year of them (call again to go further).
    if (*target - s.clock.Now() > kMaxAdvance) {
      return ProblemFromError(
          Error::Invalid("to", "must be at most 400 days after the current time " +
                                   FormatRfc3339(s.clock.Now()) + " (advance in steps)"));
    }
    // Everything due before the target runs in time order (transitions,
    // outbox relays, jobs), each at its own instant.
    const int ran = s.scheduler->RunDue(*target, [&](Instant due) {
      if (due > s.clock.Now()) (void)s.manual_clock->Set(due);
    });
    (void)s.manual_clock->Set(*target);
    return JsonResponse(200, json::object{{"now", FormatRfc3339(s.clock.Now())},
                                          {"mode", "manual"},
                                          {"transitions_run", ran}});
  });
}

}  // namespace caas::http
