#include "subscriptions/codec.h"

#include <boost/json.hpp>
#include <stdexcept>

#include "storage/json_fields.h"
#include "subscriptions/proration.h"
#include "subscriptions/timeline.h"

namespace caas::subscriptions {
namespace json = boost::json;

namespace {

using storage::fields::Arr;
using storage::fields::AsObj;
using storage::fields::At;
using storage::fields::Bool;
using storage::fields::Corrupt;
using storage::fields::CurrencyOf;
using storage::fields::Int;
using storage::fields::Obj;
using storage::fields::OptTime;
using storage::fields::OptTimeJson;
using storage::fields::PeriodJson;
using storage::fields::PeriodOf;
using storage::fields::Str;
using storage::fields::Time;

std::string Ts(Instant t) { return FormatRfc3339(t); }

State StateOf(const json::object& o, std::string_view k) {
  auto s = ParseState(Str(o, k));
  if (!s) throw Corrupt(std::string(k) + ": not a subscription state");
  return *s;
}
Decimal Dec(const json::value& v, std::string_view what) {
  if (v.is_int64()) return Decimal::FromInt(v.as_int64());
  if (!v.is_string()) throw Corrupt(std::string(what) + ": not a decimal");
  auto d = Decimal::Parse(std::string_view(v.as_string()));
  if (!d) throw Corrupt(std::string(what) + ": not a decimal");
  return *d;
}

json::object MetricTermsJson(const catalog::MetricTerms& m) {
  json::object o;
  if (m.included) o["included"] = m.included->ToString();
  if (m.limit) o["limit"] = m.limit->ToString();
  if (m.unit_price) o["unit_price"] = m.unit_price->ToString();
  return o;
}
catalog::MetricTerms MetricTermsOf(const json::object& o) {
  catalog::MetricTerms m;
  if (const auto* v = o.if_contains("included")) m.included = Dec(*v, "included");
  if (const auto* v = o.if_contains("limit")) m.limit = Dec(*v, "limit");
  if (const auto* v = o.if_contains("unit_price")) m.unit_price = Dec(*v, "unit_price");
  return m;
}
catalog::Metric MetricOf(std::string_view name) {
  auto m = catalog::ParseMetric(name);
  if (!m) throw Corrupt("metrics." + std::string(name) + ": not a metric");
  return *m;
}

json::object TermsJson(const catalog::Terms& t) {
  json::object metrics;
  for (catalog::Metric m : catalog::kAllMetrics) {
    metrics[catalog::MetricName(m)] = MetricTermsJson(t.of(m));
  }
  return {{"plan", t.plan},
          {"plan_version", t.plan_version},
          {"trial", t.trial},
          {"base_fee_minor", t.base_fee.amount_minor()},
          {"currency", t.base_fee.currency().code},
          {"metrics", metrics}};
}
catalog::Terms TermsOf(const json::object& o) {
  catalog::Terms t;
  t.plan = Str(o, "plan");
  t.plan_version = static_cast<int>(Int(o, "plan_version"));
  t.trial = Bool(o, "trial");
  t.base_fee = Money(Int(o, "base_fee_minor"), CurrencyOf(o, "currency"));
  for (const auto& [k, v] : Obj(o, "metrics")) t.of(MetricOf(k)) = MetricTermsOf(AsObj(v, k));
  return t;
}

json::object ScheduleJson(const catalog::Schedule& s) {
  return {{"start", Ts(s.start)},
          {"anchor", Ts(s.anchor)},
          {"calendar", s.calendar},
          {"trial_end", OptTimeJson(s.trial_end)}};
}
catalog::Schedule ScheduleOf(const json::object& o) {
  return catalog::Schedule{Time(o, "start"), Time(o, "anchor"), Bool(o, "calendar"),
                           OptTime(o, "trial_end")};
}

json::object PlanRefJson(const PlanRef& p) { return {{"plan", p.id}, {"plan_version", p.version}}; }
PlanRef PlanRefOf(const json::object& o) {
  return PlanRef{Str(o, "plan"), static_cast<int>(Int(o, "plan_version"))};
}

json::object SubJson(const Subscription& s) {
  json::array charges;
  for (const auto& c : s.charges) {
    charges.push_back(json::object{{"line", c.line},
                                   {"span", PeriodJson(c.span)},
                                   {"amount_minor", c.amount_minor},
                                   {"credited", c.credited}});
  }
  return {{"id", s.id},
          {"plan", s.plan.id},
          {"plan_version", s.plan.version},
          {"status", StateName(s.status)},
          {"started_at", Ts(s.started_at)},
          {"schedule", ScheduleJson(s.schedule)},
          {"period", PeriodJson(s.period)},
          {"trial_reminder_sent", s.trial_reminder_sent},
          {"cancel_at_period_end", s.cancel_at_period_end},
          {"scheduled_plan",
           s.scheduled_plan ? json::value(PlanRefJson(*s.scheduled_plan)) : json::value(nullptr)},
          {"ended_at", OptTimeJson(s.ended_at)},
          {"charges", charges}};
}
Subscription SubOf(const json::object& o) {
  Subscription s;
  s.id = Str(o, "id");
  s.plan = PlanRefOf(o);
  s.status = StateOf(o, "status");
  s.started_at = Time(o, "started_at");
  s.schedule = ScheduleOf(Obj(o, "schedule"));
  s.period = PeriodOf(Obj(o, "period"));
  s.trial_reminder_sent = Bool(o, "trial_reminder_sent");
  s.cancel_at_period_end = Bool(o, "cancel_at_period_end");
  if (const auto* p = o.if_contains("scheduled_plan"); p && !p->is_null()) {
    s.scheduled_plan = PlanRefOf(AsObj(*p, "scheduled_plan"));
  }
  s.ended_at = OptTime(o, "ended_at");
  for (const auto& v : Arr(o, "charges")) {
    const auto& c = AsObj(v, "charges[]");
    s.charges.push_back(FeeCharge{Str(c, "line"), PeriodOf(Obj(c, "span")), Int(c, "amount_minor"),
                                  Bool(c, "credited")});
  }
  return s;
}

json::object AuditJson(const AuditEntry& a) {
  return {{"at", Ts(a.at)},
          {"actor", a.actor},
          {"subscription", a.subscription_id},
          {"from", json::object{{"plan", a.from_plan.id},
                                {"plan_version", a.from_plan.version},
                                {"status", StateName(a.from_status)}}},
          {"to", json::object{{"plan", a.to_plan.id},
                              {"plan_version", a.to_plan.version},
                              {"status", StateName(a.to_status)}}},
          {"reason", a.reason}};
}
AuditEntry AuditOf(const json::object& a) {
  const auto& f = Obj(a, "from");
  const auto& to = Obj(a, "to");
  return AuditEntry{Time(a, "at"),         Str(a, "actor"),      Str(a, "subscription"),
                    PlanRefOf(f),          StateOf(f, "status"), PlanRefOf(to),
                    StateOf(to, "status"), Str(a, "reason")};
}

json::object LineJson(const Line& l) {
  json::object o{{"id", l.id},
                 {"kind", LineKindName(l.kind)},
                 {"description", l.description},
                 {"amount_minor", l.amount.amount_minor()},
                 {"currency", l.amount.currency().code},
                 {"period", PeriodJson(l.period)},
                 {"created_at", Ts(l.created_at)},
                 {"plan", l.plan.id},
                 {"plan_version", l.plan.version}};
  if (l.proration) {
    o["proration"] = json::object{{"seconds", l.proration->seconds},
                                  {"of_seconds", l.proration->of_seconds},
                                  {"of_amount_minor", l.proration->of_amount_minor},
                                  {"of_line", l.proration->of_line}};
  } else {
    o["proration"] = nullptr;
  }
  return o;
}
Line LineOf(const json::object& o) {
  Line l;
  l.id = Str(o, "id");
  auto kind = ParseLineKind(Str(o, "kind"));
  if (!kind) throw Corrupt("kind: not a line kind");
  l.kind = *kind;
  l.description = Str(o, "description");
  l.amount = Money(Int(o, "amount_minor"), CurrencyOf(o, "currency"));
  l.period = PeriodOf(Obj(o, "period"));
  l.created_at = Time(o, "created_at");
  l.plan = PlanRefOf(o);
  if (const auto* p = o.if_contains("proration"); p && !p->is_null()) {
    const auto& po = AsObj(*p, "proration");
    l.proration = Proration{Int(po, "seconds"), Int(po, "of_seconds"), Int(po, "of_amount_minor"),
                            Str(po, "of_line")};
  }
  return l;
}

json::object ClosingJson(const Closing& c) {
  json::array lines;
  for (const auto& l : c.lines) lines.push_back(json::value(l));
  return {{"invoice", c.invoice},
          {"subscription", c.subscription},
          {"period_end", c.period_end},
          {"period", PeriodJson(c.period)},
          {"at", Ts(c.at)},
          {"lines", lines}};
}
Closing ClosingOf(const json::object& o) {
  Closing c;
  c.invoice = Str(o, "invoice");
  c.subscription = Str(o, "subscription");
  c.period_end = Bool(o, "period_end");
  c.period = PeriodOf(Obj(o, "period"));
  c.at = Time(o, "at");
  for (const auto& v : Arr(o, "lines")) {
    if (!v.is_string()) throw Corrupt("closings[].lines[]: not a string");
    c.lines.emplace_back(v.as_string());
  }
  return c;
}

json::object CustomJson(const CustomTerms& c) {
  json::object o, metrics;
  if (c.base_fee) {
    o["base_fee_minor"] = c.base_fee->amount_minor();
    o["currency"] = c.base_fee->currency().code;
  }
  for (const auto& [m, mt] : c.metrics) metrics[catalog::MetricName(m)] = MetricTermsJson(mt);
  o["metrics"] = metrics;
  return o;
}

TenantSubscriptions DecodeV2(const json::object& o) {
  TenantSubscriptions t;
  t.tenant = Str(o, "tenant");
  if (o.contains("currency")) t.currency = Str(o, "currency");
  t.current = SubOf(Obj(o, "current"));
  for (const auto& v : Arr(o, "previous")) t.previous.push_back(SubOf(AsObj(v, "previous[]")));
  for (const auto& v : Arr(o, "audit")) t.audit.push_back(AuditOf(AsObj(v, "audit[]")));
  for (const auto& v : Arr(o, "pending_lines")) {
    t.pending_lines.push_back(LineOf(AsObj(v, "pending_lines[]")));
  }
  if (o.contains("credits_from")) {
    for (const auto& v : Arr(o, "credits_from")) {
      if (!v.is_string()) throw Corrupt("credits_from[]: not a string");
      t.credits_from.emplace_back(v.as_string());
    }
  }
  if (o.contains("closings")) {
    for (const auto& v : Arr(o, "closings"))
      t.closings.push_back(ClosingOf(AsObj(v, "closings[]")));
  }
  for (const auto& v : Arr(o, "segments")) {
    const auto& s = AsObj(v, "segments[]");
    t.segments.push_back(catalog::Segment{Time(s, "from"), ScheduleOf(Obj(s, "schedule")),
                                          TermsOf(Obj(s, "terms"))});
  }
  t.trial_used = Bool(o, "trial_used");
  t.has_payment_method = Bool(o, "payment_method_on_file");
  if (const auto* c = o.if_contains("custom_terms"); c && !c->is_null()) {
    const auto& co = AsObj(*c, "custom_terms");
    CustomTerms ct;
    if (co.contains("base_fee_minor")) {
      ct.base_fee = Money(Int(co, "base_fee_minor"), CurrencyOf(co, "currency"));
    }
    for (const auto& [k, v] : Obj(co, "metrics"))
      ct.metrics[MetricOf(k)] = MetricTermsOf(AsObj(v, k));
    t.custom_terms = ct;
  }
  for (const auto& [k, v] : Obj(o, "feature_overrides")) {
    if (!v.is_bool()) throw Corrupt("feature_overrides." + std::string(k) + ": not a boolean");
    t.feature_overrides[std::string(k)] = v.as_bool();
  }
  if (const auto* ob = o.if_contains("outbox")) {
    if (!ob->is_array()) throw Corrupt("outbox: not an array");
    for (const auto& v : ob->as_array()) {
      auto e = events::BillingEventFromJson(v);
      if (!e) throw Corrupt("outbox[]: not a billing event");
      t.outbox.push_back(std::move(*e));
    }
  }
  return t;
}

// Schema 1: the API JSON of versions before 0.2.
Subscription SubOfV1(const json::object& o) {
  Subscription s;
  s.id = Str(o, "id");
  s.plan = PlanRefOf(o);
  s.status = StateOf(o, "status");
  s.started_at = Time(o, "started_at");
  s.schedule.anchor = Time(o, "anchor");
  s.schedule.start = std::max(s.started_at, s.schedule.anchor);
  s.schedule.calendar = Str(o, "billing_anchor") == "calendar";
  if (s.status == State::kTrialing) s.schedule.trial_end = OptTime(o, "trial_end");
  s.period = PeriodOf(Obj(o, "current_period"));
  s.trial_reminder_sent = Bool(o, "trial_reminder_sent");
  s.cancel_at_period_end = Bool(o, "cancel_at_period_end");
  s.ended_at = OptTime(o, "ended_at");
  if (const auto* c = o.if_contains("scheduled_change"); c && c->is_object()) {
    s.scheduled_plan = PlanRefOf(c->as_object());
  }
  return s;
}

TenantSubscriptions DecodeV1(const json::object& o, const catalog::Catalog& catalog) {
  TenantSubscriptions t;
  t.tenant = Str(o, "tenant");
  t.current = SubOfV1(Obj(o, "subscription"));
  for (const auto& v : Arr(o, "previous")) t.previous.push_back(SubOfV1(AsObj(v, "previous[]")));
  for (const auto& v : Arr(o, "audit")) t.audit.push_back(AuditOf(AsObj(v, "audit[]")));
  for (const auto& v : Arr(o, "pending_lines")) {
    const auto& l = AsObj(v, "pending_lines[]");
    Line line;
    line.id = Str(l, "id");
    line.kind = ParseLineKind(Str(l, "kind")).value_or(LineKind::kProrationCharge);
    line.description = Str(l, "description");
    const auto& amount = Obj(l, "amount");
    line.amount = Money(Int(amount, "amount_minor"), CurrencyOf(amount, "currency"));
    line.period = PeriodOf(Obj(l, "period"));
    line.created_at = Time(l, "created_at");
    line.plan = t.current.plan;
    t.pending_lines.push_back(std::move(line));
  }
  t.trial_used = Bool(o, "trial_used");
  t.has_payment_method = Bool(o, "payment_method_on_file");
  if (const auto* c = o.if_contains("custom_terms"); c && c->is_object()) {
    const auto& co = c->as_object();
    CustomTerms ct;
    if (const auto* f = co.if_contains("base_fee"); f && f->is_object()) {
      ct.base_fee =
          Money(Int(f->as_object(), "amount_minor"), CurrencyOf(f->as_object(), "currency"));
    }
    for (const auto& [k, v] : Obj(co, "metrics"))
      ct.metrics[MetricOf(k)] = MetricTermsOf(AsObj(v, k));
    t.custom_terms = ct;
  }
  for (const auto& [k, v] : Obj(o, "feature_overrides")) {
    if (v.is_bool()) t.feature_overrides[std::string(k)] = v.as_bool();
  }
  // The timeline, from the audit trail: each entry that starts or changes a
  // live subscription starts a segment.
  auto schedule_of = [&](const std::string& id) -> catalog::Schedule {
    if (t.current.id == id) return t.current.schedule;
    for (const auto& s : t.previous) {
      if (s.id == id) return s.schedule;
    }
    return t.current.schedule;
  };
  for (const AuditEntry& a : t.audit) {
    if (a.to_status == State::kCanceled) continue;
    auto terms =
        EffectiveTerms(catalog, a.to_plan, a.to_status, t.custom_terms, CurrencyOf(catalog, t));
    if (!terms) terms = catalog.Latest("free")->Terms();
    catalog::Segment seg{std::chrono::floor<std::chrono::seconds>(a.at),
                         schedule_of(a.subscription_id), *terms};
    if (!t.segments.empty() && t.segments.back().from >= seg.from) {
      t.segments.back().schedule = seg.schedule;
      t.segments.back().terms = seg.terms;
    } else if (t.segments.empty() || !(t.segments.back().schedule == seg.schedule &&
                                       t.segments.back().terms == seg.terms)) {
      t.segments.push_back(std::move(seg));
    }
  }
  if (t.segments.empty()) t.segments.push_back(CurrentSegment(catalog, t, t.current.started_at));
  // The fee charge of the current period: the last proration charge for it,
  // else the whole fee, as charged at the period's start.
  for (auto it = t.pending_lines.rbegin(); it != t.pending_lines.rend(); ++it) {
    if (it->kind == LineKind::kProrationCharge && it->period.end == t.current.period.end) {
      t.current.charges.push_back(FeeCharge{it->id, it->period, it->amount.amount_minor(), false});
      break;
    }
  }
  if (t.current.charges.empty() && t.current.status == State::kActive) {
    auto terms = EffectiveTerms(catalog, t.current.plan, t.current.status, t.custom_terms,
                                CurrencyOf(catalog, t));
    if (terms && terms->base_fee.amount_minor() > 0) {
      const catalog::BillingPeriod bp =
          catalog::SchedulePeriodAt(t.current.schedule, t.current.period.start);
      t.current.charges.push_back(
          FeeCharge{"", t.current.period,
                    FeeForPeriod(terms->base_fee, t.current.period, bp.full_seconds), false});
    }
  }
  return t;
}

}  // namespace

std::string EncodeDocument(const TenantSubscriptions& t) {
  json::array previous, audit, lines, segments;
  for (const auto& s : t.previous) previous.push_back(SubJson(s));
  for (const auto& a : t.audit) audit.push_back(AuditJson(a));
  for (const auto& l : t.pending_lines) lines.push_back(LineJson(l));
  json::array closings, credits_from;
  for (const auto& c : t.closings) closings.push_back(ClosingJson(c));
  for (const auto& c : t.credits_from) credits_from.push_back(json::value(c));
  for (const auto& s : t.segments) {
    segments.push_back(json::object{{"from", Ts(s.from)},
                                    {"schedule", ScheduleJson(s.schedule)},
                                    {"terms", TermsJson(s.terms)}});
  }
  json::object features;
  for (const auto& [k, v] : t.feature_overrides) features[k] = v;
  json::array outbox;
  for (const auto& e : t.outbox) outbox.push_back(events::BillingEventToJson(e));
  json::object o{{"schema", kSchemaVersion},
                 {"tenant", t.tenant},
                 {"currency", t.currency},
                 {"current", SubJson(t.current)},
                 {"previous", previous},
                 {"audit", audit},
                 {"pending_lines", lines},
                 {"closings", closings},
                 {"credits_from", credits_from},
                 {"segments", segments},
                 {"trial_used", t.trial_used},
                 {"payment_method_on_file", t.has_payment_method},
                 {"custom_terms",
                  t.custom_terms ? json::value(CustomJson(*t.custom_terms)) : json::value(nullptr)},
                 {"feature_overrides", features},
                 {"outbox", outbox}};
  return json::serialize(o);
}

Result<TenantSubscriptions> DecodeDocument(std::string_view body, const catalog::Catalog& catalog) {
  json::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) {
    return Error::Make(ErrorCode::kInternal, "not a JSON object: " + ec.message());
  }
  const json::object& o = v.as_object();
  try {
    const json::value* schema = o.if_contains("schema");
    if (!schema) return DecodeV1(o, catalog);
    if (!schema->is_int64() || schema->as_int64() != kSchemaVersion) {
      return Error::Make(ErrorCode::kInternal,
                         "schema " + json::serialize(*schema) + " is not one this version reads");
    }
    TenantSubscriptions t = DecodeV2(o);
    if (t.segments.empty()) throw Corrupt("segments: empty");
    for (size_t i = 1; i < t.segments.size(); ++i) {
      if (!(t.segments[i - 1].from < t.segments[i].from)) throw Corrupt("segments: out of order");
    }
    return t;
  } catch (const Corrupt& e) {
    return Error::Make(ErrorCode::kInternal, e.what());
  }
}

}  // namespace caas::subscriptions
