// /v1/events, /v1/quota/check, /v1/tenants/{id}/usage…, /v1/tenants/{id}/billing-events.
#include <boost/json.hpp>

#include "core/log.h"
#include "core/text.h"
#include "events/billing_events.h"
#include "http/api.h"
#include "http/json_input.h"
#include "http/problem.h"
#include "http/subscription_json.h"
#include "metering/metering.h"
#include "subscriptions/subscriptions.h"

namespace caas::http {
namespace json = boost::json;
using catalog::Metric;

namespace {

constexpr int64_t kMicrosPerDay = 86'400'000'000;
constexpr int64_t kMaxDailyRange = 366;

Response NoSuchTenant(std::string_view id) {
  return Problem(404, "not-found", "Not found", "no tenant " + std::string(id));
}

// Counted metrics are whole numbers (JSON integers); storage is GB-month with
// 12 decimals (a JSON string, exact).
json::value Amount(Metric m, const Decimal& d) {
  if (m != Metric::kStorage) {
    if (auto whole = d.ToMinorUnitsExact(0)) return *whole;
  }
  return json::value(d.ToString());
}
json::value OptAmount(Metric m, const std::optional<Decimal>& d) {
  return d ? Amount(m, *d) : json::value(nullptr);
}
json::object PeriodJson(const Period& p) {
  return {{"start", FormatRfc3339(p.start)}, {"end", FormatRfc3339(p.end)}};
}
// The period as JSON text, remembered per thread (it changes once a month).
const std::string& PeriodText(const Period& p) {
  thread_local Period last{};
  thread_local std::string text;
  if (text.empty() || !(last == p)) {
    last = p;
    text = json::serialize(PeriodJson(p));
  }
  return text;
}

std::string IngestAnswer(const std::vector<metering::Outcome>& outcomes) {
  size_t counts[4] = {0, 0, 0, 0};
  for (const auto& o : outcomes) ++counts[static_cast<int>(o.kind)];
  std::string out;
  out.reserve(96 + outcomes.size() * 12);
  out += "{\"accepted\":" + std::to_string(counts[0]) +
         ",\"duplicate\":" + std::to_string(counts[1]) +
         ",\"conflict\":" + std::to_string(counts[2]) +
         ",\"rejected\":" + std::to_string(counts[3]) + ",\"outcomes\":[";
  for (size_t i = 0; i < outcomes.size(); ++i) {
    if (i) out += ',';
    out += '"';
    out += metering::OutcomeName(outcomes[i].kind);
    out += '"';
  }
  out += "],\"errors\":[";
  bool first = true;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const auto& o = outcomes[i];
    if (o.kind != metering::OutcomeKind::kRejected && o.kind != metering::OutcomeKind::kConflict) {
      continue;
    }
    if (!first) out += ',';
    first = false;
    out += "{\"index\":" + std::to_string(i) + ",\"outcome\":\"" +
           std::string(metering::OutcomeName(o.kind)) + "\",\"field\":" + JsonQuote(o.field) +
           ",\"reason\":" + JsonQuote(o.reason) + "}";
  }
  out += "]}";
  return out;
}

// One event (structured or binary mode): a rejection answers 422 and a
// conflict 409, naming the field; otherwise the usual answer.
Response SingleAnswer(const std::vector<metering::Outcome>& outcomes) {
  const auto& o = outcomes.front();
  if (o.kind == metering::OutcomeKind::kRejected) {
    return Problem(422, "invalid-event", "Invalid event", "the event was rejected",
                   {Error::Invalid(o.field, o.reason)});
  }
  if (o.kind == metering::OutcomeKind::kConflict) {
    return Problem(409, "event-conflict", "Conflicting event", o.reason,
                   {Error::Invalid(o.field, o.reason)});
  }
  Response r;
  r.body = IngestAnswer(outcomes);
  return r;
}

// "2026-11-01" -> days since the epoch.
std::optional<int64_t> ParseDay(std::string_view text) {
  if (text.size() != 10) return std::nullopt;
  auto t = ParseRfc3339(std::string(text) + "T00:00:00Z");
  if (!t) return std::nullopt;
  return t->time_since_epoch().count() / kMicrosPerDay;
}
std::string FormatDay(int64_t day) {
  return FormatRfc3339(Instant(Micros(day * kMicrosPerDay))).substr(0, 10);
}

// Reads an amount: a JSON integer, or a decimal string.
std::optional<Decimal> ReadAmount(const json::value& v) {
  if (v.is_int64()) return Decimal::FromInt(v.as_int64());
  if (v.is_uint64() && v.as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return Decimal::FromInt(static_cast<int64_t>(v.as_uint64()));
  }
  if (v.is_string()) {
    auto d = Decimal::Parse(std::string_view(v.as_string()));
    if (d) return *d;
  }
  return std::nullopt;
}

}  // namespace

void AddMeteringRoutes(Api& api, Services s) {
  if (s.metering != nullptr) {
    api.AddMetricsSource([s] {
      const auto st = s.metering->Stats();
      std::string out;
      auto line = [&out](const char* name, const char* help, const char* type,
                         const std::string& labels, uint64_t v) {
        if (!help[0]) {
          out += std::string(name) + labels + " " + std::to_string(v) + "\n";
          return;
        }
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
               name + labels + " " + std::to_string(v) + "\n";
      };
      line("caas_usage_events_total", "Usage events by outcome since start", "counter",
           "{outcome=\"accepted\"}", st.accepted);
      line("caas_usage_events_total", "", "", "{outcome=\"duplicate\"}", st.duplicate);
      line("caas_usage_events_total", "", "", "{outcome=\"conflict\"}", st.conflict);
      line("caas_usage_events_total", "", "", "{outcome=\"rejected\"}", st.rejected);
      line("caas_usage_events_voided_total", "Events voided since start", "counter", "", st.voided);
      line("caas_usage_group_commits_total", "fdatasync group commits of the event log", "counter",
           "", st.group_commits);
      line("caas_usage_event_keys", "Distinct event keys held by the dedupe index", "gauge", "",
           st.events);
      line("caas_usage_log_bytes", "Size of the usage event log", "gauge", "", st.log_bytes);
      line("caas_usage_dedupe_memory_bytes", "Memory of the dedupe index", "gauge", "",
           st.dedupe_memory_bytes);
      return out;
    });
  }
  api.Add(
      "POST", "/v1/events", Access::kAnyKey,
      [s](Context& ctx) -> Response {
        metering::ParseOptions options;
        if (!ctx.principal.IsAdmin()) options.principal_tenant = ctx.principal.tenant_id;
        if (!ctx.request.Header("ce-specversion").empty()) {
          // Binary content mode: one event, attributes in ce-* headers.
          std::vector<metering::ParsedEvent> one;
          one.push_back(metering::ParseBinaryEvent(ctx.request.headers, ctx.request.body, options));
          auto ingested = s.metering->Ingest(one);
          if (!ingested) return ProblemFromError(ingested.error());
          return SingleAnswer(*ingested);
        }
        auto format = metering::FormatFromContentType(ctx.request.Header("content-type"));
        if (!format) {
          return Problem(415, "unsupported-media-type", "Unsupported media type",
                         "send application/cloudevents+json (one event), "
                         "application/cloudevents-batch+json (an array) or "
                         "application/x-ndjson (one event per line)");
        }
        auto parsed = metering::ParseEventBody(ctx.request.body, *format, options);
        if (!parsed) {
          if (parsed.error().code == ErrorCode::kTooLarge) {
            return ProblemFromError(parsed.error(), {parsed.error()});
          }
          return Problem(400, "invalid-body", "Invalid body", parsed.error().message,
                         {parsed.error()});
        }
        auto ingested = s.metering->Ingest(*parsed);
        if (!ingested) return ProblemFromError(ingested.error());
        if (*format == metering::BodyFormat::kSingle) return SingleAnswer(*ingested);
        Response r;
        r.body = IngestAnswer(*ingested);
        return r;
      },
      /*log_success=*/false);

  // Voids by id: in the path, or (for any id an event may have, with '/' or
  // longer than a path segment) in the body.
  auto void_event = [s](Context& ctx, bool id_in_body) -> Response {
    auto body = ReadJsonBody(ctx.request);
    if (auto* problem = std::get_if<Response>(&body)) return std::move(*problem);
    std::vector<Error> errors;
    ObjectReader r(std::get<json::object>(body), errors);
    auto tenant = r.String("tenant", true);
    auto source = r.String("source", true);
    std::optional<std::string> id;
    if (id_in_body) id = r.String("id", true);
    auto reason = r.String("reason", true);
    r.RejectUnknown();
    if (reason && (reason->empty() || reason->size() > 500)) {
      errors.push_back(Error::Invalid("reason", "must be 1 to 500 characters"));
    }
    if (id && (id->empty() || id->size() > metering::kMaxIdBytes)) {
      errors.push_back(Error::Invalid("id", "must be 1 to 256 bytes"));
    }
    if (!errors.empty()) return ProblemFromError(errors.front(), errors);
    const std::string event_id = id_in_body ? *id : std::string(ctx.Param("id"));
    auto v = s.metering->Void(*tenant, *source, event_id, ctx.principal.key_id, *reason);
    if (!v) return ProblemFromError(v.error());
    return JsonResponse(200, json::object{{"tenant", v->tenant},
                                          {"source", v->source},
                                          {"id", v->id},
                                          {"type", metering::UsageTypeName(v->type)},
                                          {"time", FormatRfc3339(v->event_time)},
                                          {"quantity", v->quantity},
                                          {"voided_at", FormatRfc3339(v->voided_at)},
                                          {"voided_by", v->actor},
                                          {"reason", v->reason}});
  };
  api.Add("POST", "/v1/events/{id}/void", Access::kAdmin,
          [void_event](Context& ctx) { return void_event(ctx, false); });
  api.Add("POST", "/v1/events/void", Access::kAdmin,
          [void_event](Context& ctx) { return void_event(ctx, true); });

  api.Add(
      "POST", "/v1/quota/check", Access::kAnyKey,
      [s](Context& ctx) -> Response {
        auto body = ReadJsonBody(ctx.request);
        if (auto* problem = std::get_if<Response>(&body)) return std::move(*problem);
        const json::object& o = std::get<json::object>(body);
        std::vector<Error> errors;
        std::string tenant = ctx.principal.tenant_id;
        Metric metric = Metric::kMessages;
        bool has_metric = false;
        Decimal quantity = Decimal::FromInt(1);
        std::string subject;
        for (const auto& [k, v] : o) {
          if (k == "tenant") {
            if (!v.is_string()) {
              errors.push_back(Error::Invalid("tenant", "must be a string"));
            } else if (!ctx.principal.IsAdmin() && v.as_string() != ctx.principal.tenant_id) {
              errors.push_back(Error::Invalid("tenant", "a tenant key may only check its own"));
            } else {
              tenant = std::string(v.as_string());
            }
          } else if (k == "metric") {
            auto m = v.is_string() ? catalog::ParseMetric(std::string_view(v.as_string()))
                                   : std::nullopt;
            has_metric = m.has_value();
            if (m) metric = *m;
            if (!m) {
              errors.push_back(
                  Error::Invalid("metric", "must be one of messages, api_calls, mau, storage"));
            }
          } else if (k == "quantity") {
            auto q = ReadAmount(v);
            if (!q || q->IsNegative() || *q > Decimal::FromInt(1'000'000'000'000)) {
              errors.push_back(Error::Invalid(
                  "quantity", "must be a number from 0 to 10^12 (a decimal string for storage)"));
            } else {
              quantity = *q;
            }
          } else if (k == "subject") {
            if (!v.is_string() || v.as_string().empty() ||
                v.as_string().size() > metering::kMaxSubjectBytes) {
              errors.push_back(Error::Invalid("subject", "must be a string of 1 to 256 bytes"));
            } else {
              subject = std::string(v.as_string());
            }
          } else {
            errors.push_back(
                Error::Invalid(std::string(TruncateUtf8(k, 64)), "is not a known field"));
          }
        }
        if (tenant.empty() && errors.empty())
          errors.push_back(Error::Invalid("tenant", "is required"));
        if (!has_metric && !o.contains("metric")) {
          errors.push_back(Error::Invalid("metric", "is required"));
        }
        if (!errors.empty()) return ProblemFromError(errors.front(), errors);
        if (!subject.empty() && metric == Metric::kMau && s.metering->IsActive(tenant, subject)) {
          quantity = Decimal();  // already counted this period
        }
        auto d = s.metering->CheckQuota(tenant, metric, quantity);
        if (!d) {
          if (d.error().code == ErrorCode::kNotFound) return NoSuchTenant(tenant);
          return ProblemFromError(d.error());
        }
        // Built by hand: this is the hottest read route.
        Response r;
        r.body.reserve(256);
        r.body += "{\"tenant\":";
        r.body += JsonQuote(tenant);
        r.body += ",\"metric\":\"";
        r.body += catalog::MetricName(metric);
        r.body += d->allowed ? "\",\"allowed\":true" : "\",\"allowed\":false";
        r.body += ",\"used\":" + json::serialize(Amount(metric, d->used));
        r.body += ",\"limit\":" + json::serialize(OptAmount(metric, d->limit));
        r.body += ",\"remaining\":" + json::serialize(OptAmount(metric, d->remaining));
        r.body += ",\"included\":" + json::serialize(OptAmount(metric, d->included));
        r.body += ",\"period\":" + PeriodText(d->period) + "}";
        return r;
      },
      /*log_success=*/false);

  api.Add("GET", "/v1/tenants/{id}/usage", Access::kAnyKey, [s](Context& ctx) -> Response {
    const auto id = ctx.Param("id");
    if (!ctx.principal.MaySee(id)) return NoSuchTenant(id);
    Instant at = s.clock.Now();
    if (const std::string* text = ctx.request.Query("at")) {
      auto t = ParseRfc3339(*text);
      if (!t) {
        return ProblemFromError(Error::Invalid("at", "must be an RFC 3339 date-time"));
      }
      at = *t;
    }
    auto u = s.metering->Usage(id, at);
    if (!u) return NoSuchTenant(id);
    json::object metrics;
    for (const auto& m : u->metrics) {
      metrics[catalog::MetricName(m.metric)] =
          json::object{{"used", Amount(m.metric, m.used)},
                       {"included", OptAmount(m.metric, m.included)},
                       {"limit", OptAmount(m.metric, m.limit)},
                       {"overage", Amount(m.metric, m.overage)},
                       {"unit", catalog::MetricUnit(m.metric)}};
    }
    // The period's slices: the terms in force in each and what each rated.
    json::array segments;
    for (const auto& sl : u->slices) {
      json::object sm;
      for (Metric m : catalog::kAllMetrics) {
        const int i = catalog::MetricIndex(m);
        sm[catalog::MetricName(m)] =
            json::object{{"used", Amount(m, sl.used[i])},
                         {"billable", Amount(m, sl.billable[i])},
                         {"included", OptAmount(m, sl.terms.of(m).included)},
                         {"unit_price", sl.terms.of(m).unit_price
                                            ? json::value(sl.terms.of(m).unit_price->ToString())
                                            : json::value(nullptr)}};
      }
      segments.push_back(json::object{{"from", FormatRfc3339(sl.from)},
                                      {"to", FormatRfc3339(sl.to)},
                                      {"plan", sl.terms.plan},
                                      {"plan_version", sl.terms.plan_version},
                                      {"trial", sl.terms.trial},
                                      {"metrics", sm}});
    }
    return JsonResponse(200, json::object{{"tenant", u->tenant},
                                          {"plan", u->plan},
                                          {"period", PeriodJson(u->period.period)},
                                          {"as_of", FormatRfc3339(u->as_of)},
                                          {"metrics", metrics},
                                          {"segments", segments}});
  });

  api.Add("GET", "/v1/tenants/{id}/usage/daily", Access::kAnyKey, [s](Context& ctx) -> Response {
    const auto id = ctx.Param("id");
    if (!ctx.principal.MaySee(id)) return NoSuchTenant(id);
    const int64_t today = s.clock.Now().time_since_epoch().count() / kMicrosPerDay;
    int64_t from = today - 29, to = today;
    std::vector<Error> errors;
    if (const std::string* f = ctx.request.Query("from")) {
      if (auto d = ParseDay(*f)) {
        from = *d;
      } else {
        errors.push_back(Error::Invalid("from", "must be a date (YYYY-MM-DD)"));
      }
    }
    if (const std::string* t = ctx.request.Query("to")) {
      if (auto d = ParseDay(*t)) {
        to = *d;
      } else {
        errors.push_back(Error::Invalid("to", "must be a date (YYYY-MM-DD)"));
      }
    }
    if (errors.empty() && to < from)
      errors.push_back(Error::Invalid("to", "must not be before from"));
    if (errors.empty() && to - from + 1 > kMaxDailyRange) {
      errors.push_back(Error::Invalid("to", "the range may span at most 366 days"));
    }
    if (!errors.empty()) return ProblemFromError(errors.front(), errors);
    auto days = s.metering->Daily(id, from, to);
    if (!days) return NoSuchTenant(id);
    json::array data;
    for (const auto& d : *days) {
      data.push_back(json::object{{"date", FormatDay(d.day)},
                                  {"messages", d.messages},
                                  {"api_calls", d.api_calls},
                                  {"active_users", d.active_users},
                                  {"storage_bytes", d.storage_bytes}});
    }
    return JsonResponse(200, json::object{{"tenant", id}, {"days", data}});
  });

  api.Add("GET", "/v1/tenants/{id}/usage/voids", Access::kAnyKey, [s](Context& ctx) -> Response {
    const auto id = ctx.Param("id");
    if (!ctx.principal.MaySee(id) || !s.tenants.Get(id)) return NoSuchTenant(id);
    json::array data;
    for (const auto& v : s.metering->Voids(id)) {
      data.push_back(json::object{{"source", v.source},
                                  {"id", v.id},
                                  {"type", metering::UsageTypeName(v.type)},
                                  {"time", FormatRfc3339(v.event_time)},
                                  {"quantity", v.quantity},
                                  {"voided_at", FormatRfc3339(v.voided_at)},
                                  {"voided_by", v.actor},
                                  {"reason", v.reason}});
    }
    return JsonResponse(200, json::object{{"object", "list"}, {"has_more", false}, {"data", data}});
  });

  api.Add("GET", "/v1/tenants/{id}/billing-events", Access::kAnyKey, [s](Context& ctx) -> Response {
    const auto id = ctx.Param("id");
    if (!ctx.principal.MaySee(id) || !s.tenants.Get(id)) return NoSuchTenant(id);
    PageParams page;
    if (auto problem = ReadPageParams(ctx.request, "bev", &page)) {
      return std::move(*problem);
    }
    // Read your writes: what was announced is listed (the metering recorder's
    // queue, and an outbox a crash left for the scheduler).
    s.billing_events->Flush();
    if (s.subscriptions) (void)s.subscriptions->RelayOutbox(id);
    auto p = s.billing_events->List(id, page.starting_after, page.limit);
    json::array data;
    for (const auto& e : p.items) data.push_back(events::BillingEventToJson(e));
    json::object o{{"object", "list"}, {"has_more", p.has_more}};
    if (p.has_more && !p.items.empty()) o["next_starting_after"] = p.items.back().id;
    o["data"] = std::move(data);
    return JsonResponse(200, o);
  });
}

}  // namespace caas::http
