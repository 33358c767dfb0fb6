#include "subscriptions/subscriptions.h"

#include <boost/json.hpp>

#include "core/log.h"

namespace caas::subscriptions {
namespace json = boost::json;
using metering::Metric;

namespace {

constexpr auto kTrialReminder = std::chrono::hours(24 * 3);
const char* const kCollection = "subscriptions";

std::string Ts(Instant t) { return FormatRfc3339(t); }
// Anchors and subscription starts are whole seconds (proration counts
// seconds; an event stamped in the creation second belongs to the first
// period).
Instant Sec(Instant t) { return std::chrono::floor<std::chrono::seconds>(t); }
Instant ParseTs(const json::value& v) {
  return ParseRfc3339(json::value_to<std::string>(v)).value();
}
std::optional<Instant> OptTs(const json::object& o, const char* k) {
  const auto* v = o.if_contains(k);
  if (!v || v->is_null()) return std::nullopt;
  return ParseTs(*v);
}
json::value OptTsJson(const std::optional<Instant>& t) {
  return t ? json::value(Ts(*t)) : json::value(nullptr);
}

json::object MoneyJson(const Money& m) {
  return {{"amount_minor", m.amount_minor()}, {"currency", m.currency().code}};
}
Money MoneyFrom(const json::object& o) {
  const Currency* c = Currency::Find(json::value_to<std::string>(o.at("currency")));
  return Money(o.at("amount_minor").to_number<int64_t>(), c ? *c : Currency::Usd());
}

json::object SubJson(const Subscription& s) {
  json::object o{
      {"id", s.id},
      {"plan", s.plan.id},
      {"plan_version", s.plan.version},
      {"status", StateName(s.status)},
      {"started_at", Ts(s.started_at)},
      {"billing_anchor", s.calendar_anchor ? "calendar" : "anniversary"},
      {"anchor", Ts(s.anchor)},
      {"current_period", json::object{{"start", Ts(s.period.start)}, {"end", Ts(s.period.end)}}},
      {"trial_end", OptTsJson(s.trial_end)},
      {"trial_reminder_sent", s.trial_reminder_sent},
      {"cancel_at_period_end", s.cancel_at_period_end},
      {"ended_at", OptTsJson(s.ended_at)}};
  if (s.scheduled_plan) {
    o["scheduled_change"] = json::object{{"plan", s.scheduled_plan->id},
                                         {"plan_version", s.scheduled_plan->version},
                                         {"at", Ts(s.period.end)}};
  } else {
    o["scheduled_change"] = nullptr;
  }
  return o;
}

Subscription SubFrom(const json::object& o) {
  Subscription s;
  s.id = json::value_to<std::string>(o.at("id"));
  s.plan = {json::value_to<std::string>(o.at("plan")), o.at("plan_version").to_number<int>()};
  s.status = *ParseState(json::value_to<std::string>(o.at("status")));
  s.started_at = ParseTs(o.at("started_at"));
  s.calendar_anchor = o.at("billing_anchor").as_string() == "calendar";
  s.anchor = ParseTs(o.at("anchor"));
  const auto& p = o.at("current_period").as_object();
  s.period = {ParseTs(p.at("start")), ParseTs(p.at("end"))};
  s.trial_end = OptTs(o, "trial_end");
  s.trial_reminder_sent = o.at("trial_reminder_sent").as_bool();
  s.cancel_at_period_end = o.at("cancel_at_period_end").as_bool();
  s.ended_at = OptTs(o, "ended_at");
  if (const auto* c = o.if_contains("scheduled_change"); c && c->is_object()) {
    s.scheduled_plan = PlanRef{json::value_to<std::string>(c->as_object().at("plan")),
                               c->as_object().at("plan_version").to_number<int>()};
  }
  return s;
}

json::object PricingJson(const catalog::MetricPricing& m) {
  json::object o;
  if (m.included) o["included"] = *m.included;
  if (m.limit) o["limit"] = *m.limit;
  if (m.unit_price) o["unit_price"] = m.unit_price->ToString();
  return o;
}

}  // namespace

std::string_view StateName(State s) {
  switch (s) {
    case State::kTrialing:
      return "trialing";
    case State::kActive:
      return "active";
    case State::kPastDue:
      return "past_due";
    case State::kSuspended:
      return "suspended";
    case State::kCanceled:
      return "canceled";
  }
  return "active";
}

std::optional<State> ParseState(std::string_view s) {
  for (auto st :
       {State::kTrialing, State::kActive, State::kPastDue, State::kSuspended, State::kCanceled}) {
    if (StateName(st) == s) return st;
  }
  return std::nullopt;
}

bool CanTransition(State from, State to) {
  if (from == State::kCanceled) return false;  // terminal
  if (to == State::kCanceled) return true;     // any live subscription can end
  if (from == to) return true;                 // a plan change or migration within one state
  switch (from) {
    case State::kTrialing:
      return to == State::kActive || to == State::kTrialing;
    case State::kActive:
      return to == State::kActive || to == State::kPastDue;
    case State::kPastDue:
      return to == State::kActive || to == State::kSuspended || to == State::kPastDue;
    case State::kSuspended:
      return to == State::kActive;
    case State::kCanceled:
      return false;
  }
  return false;
}

storage::CollectionSpec SubscriptionsCollectionSpec() { return {kCollection, {}}; }

json::object LineToJson(const Line& l) {
  return {{"id", l.id},
          {"kind", l.kind},
          {"description", l.description},
          {"amount", MoneyJson(l.amount)},
          {"period", json::object{{"start", Ts(l.period.start)}, {"end", Ts(l.period.end)}}},
          {"created_at", Ts(l.created_at)}};
}

json::object ToJson(const TenantSubscriptions& t, const catalog::Catalog& catalog) {
  json::array previous, audit, lines;
  for (const auto& s : t.previous) previous.push_back(SubJson(s));
  for (const auto& a : t.audit) {
    audit.push_back(json::object{{"at", Ts(a.at)},
                                 {"actor", a.actor},
                                 {"subscription", a.subscription_id},
                                 {"from", json::object{{"plan", a.from_plan.id},
                                                       {"plan_version", a.from_plan.version},
                                                       {"status", StateName(a.from_status)}}},
                                 {"to", json::object{{"plan", a.to_plan.id},
                                                     {"plan_version", a.to_plan.version},
                                                     {"status", StateName(a.to_status)}}},
                                 {"reason", a.reason}});
  }
  for (const auto& l : t.pending_lines) lines.push_back(LineToJson(l));
  json::object o{{"tenant", t.tenant},
                 {"subscription", SubJson(t.current)},
                 {"previous", previous},
                 {"audit", audit},
                 {"pending_lines", lines},
                 {"trial_used", t.trial_used},
                 {"payment_method_on_file", t.has_payment_method}};
  if (const auto* p = catalog.Get(t.current.plan.id, t.current.plan.version)) {
    o["subscription"].as_object()["plan_name"] = p->name;
  }
  if (t.custom_terms) {
    json::object ct, metrics;
    if (t.custom_terms->base_fee) ct["base_fee"] = MoneyJson(*t.custom_terms->base_fee);
    for (const auto& [m, mp] : t.custom_terms->metrics)
      metrics[metering::MetricName(m)] = PricingJson(mp);
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

namespace {

TenantSubscriptions FromJson(const json::object& o) {
  TenantSubscriptions t;
  t.tenant = json::value_to<std::string>(o.at("tenant"));
  t.current = SubFrom(o.at("subscription").as_object());
  for (const auto& s : o.at("previous").as_array()) t.previous.push_back(SubFrom(s.as_object()));
  for (const auto& v : o.at("audit").as_array()) {
    const auto& a = v.as_object();
    const auto& f = a.at("from").as_object();
    const auto& to = a.at("to").as_object();
    t.audit.push_back(AuditEntry{
        ParseTs(a.at("at")), json::value_to<std::string>(a.at("actor")),
        json::value_to<std::string>(a.at("subscription")),
        PlanRef{json::value_to<std::string>(f.at("plan")), f.at("plan_version").to_number<int>()},
        *ParseState(json::value_to<std::string>(f.at("status"))),
        PlanRef{json::value_to<std::string>(to.at("plan")), to.at("plan_version").to_number<int>()},
        *ParseState(json::value_to<std::string>(to.at("status"))),
        json::value_to<std::string>(a.at("reason"))});
  }
  for (const auto& v : o.at("pending_lines").as_array()) {
    const auto& l = v.as_object();
    const auto& p = l.at("period").as_object();
    t.pending_lines.push_back(Line{
        json::value_to<std::string>(l.at("id")), json::value_to<std::string>(l.at("kind")),
        json::value_to<std::string>(l.at("description")), MoneyFrom(l.at("amount").as_object()),
        Period{ParseTs(p.at("start")), ParseTs(p.at("end"))}, ParseTs(l.at("created_at"))});
  }
  t.trial_used = o.at("trial_used").as_bool();
  t.has_payment_method = o.at("payment_method_on_file").as_bool();
  if (const auto* ct = o.if_contains("custom_terms"); ct && ct->is_object()) {
    CustomTerms c;
    if (const auto* f = ct->as_object().if_contains("base_fee"))
      c.base_fee = MoneyFrom(f->as_object());
    for (const auto& [k, v] : ct->as_object().at("metrics").as_object()) {
      catalog::MetricPricing mp;
      const auto& m = v.as_object();
      if (const auto* x = m.if_contains("included")) mp.included = x->to_number<int64_t>();
      if (const auto* x = m.if_contains("limit")) mp.limit = x->to_number<int64_t>();
      if (const auto* x = m.if_contains("unit_price")) {
        mp.unit_price = Decimal::Parse(json::value_to<std::string>(*x)).value();
      }
      c.metrics[*metering::ParseMetric(std::string_view(k))] = mp;
    }
    t.custom_terms = c;
  }
  for (const auto& [k, v] : o.at("feature_overrides").as_object()) {
    t.feature_overrides[std::string(k)] = v.as_bool();
  }
  return t;
}

}  // namespace

SubscriptionService::SubscriptionService(storage::DocumentStore& store, const Clock& clock,
                                         IdGenerator& ids, const catalog::Catalog& catalog,
                                         EventSink events)
    : store_(store), clock_(clock), ids_(ids), catalog_(catalog), events_(std::move(events)) {}

Period PeriodAt(const Subscription& s, Instant t) {
  if (s.status == State::kTrialing && s.trial_end) return Period{s.started_at, *s.trial_end};
  Period p = s.calendar_anchor ? CalendarMonthContaining(t) : MonthlyPeriodContaining(s.anchor, t);
  if (p.start < s.anchor && p.end > s.anchor) p.start = s.anchor;  // a first, partial period
  return p;
}

Money SubscriptionService::FeeOf(const TenantSubscriptions& t, const PlanRef& p) const {
  const catalog::PlanVersion* plan = catalog_.Get(p.id, p.version);
  if (!plan) return Money::Zero(catalog_.currency());
  if (plan->custom && t.custom_terms && t.custom_terms->base_fee) return *t.custom_terms->base_fee;
  return plan->base_fee;
}

Result<TenantSubscriptions> SubscriptionService::Load(std::string_view tenant, Instant created_at,
                                                      bool* is_new) {
  auto doc = store_.Get(kCollection, tenant);
  if (doc) {
    *is_new = false;
    TenantSubscriptions t = FromJson(json::parse(doc->body).as_object());
    t.doc_version = doc->version;
    return t;
  }
  if (doc.error().code != ErrorCode::kNotFound) return doc.error();
  *is_new = true;
  TenantSubscriptions t;
  t.tenant = std::string(tenant);
  const catalog::PlanVersion* free = catalog_.Latest("free");
  Subscription s;
  s.id = "sub_" + std::string(tenant.substr(tenant.find('_') + 1));  // stable: one per tenant start
  s.plan = {free->id, free->version};
  s.status = State::kActive;
  s.started_at = Sec(created_at);
  s.anchor = Sec(created_at);
  s.period = MonthlyPeriodContaining(s.anchor, s.anchor);
  t.current = s;
  t.audit.push_back(AuditEntry{created_at, "system", s.id, s.plan, State::kActive, s.plan,
                               State::kActive, "tenant created: Free plan"});
  return t;
}

caas::Status SubscriptionService::Save(TenantSubscriptions& t, bool is_new) {
  storage::Document doc;
  doc.id = t.tenant;
  doc.body = json::serialize(ToJson(t, catalog_));
  if (is_new) {
    caas::Status s = store_.Insert(kCollection, doc);
    if (s) t.doc_version = 1;
    return s;
  }
  auto v = store_.Replace(kCollection, doc, t.doc_version);
  if (!v) return v.error();
  t.doc_version = *v;
  return caas::Status::Ok();
}

void SubscriptionService::Emit(const TenantSubscriptions& t, const std::string& type,
                               json::object data, Instant at) {
  if (!events_) return;
  data["subscription"] = t.current.id;
  const std::string key = "sub:" + t.tenant + ":" + type + ":" + Ts(at) + ":" +
                          std::to_string(t.audit.size()) + ":" + t.current.id;
  events_(type, t.tenant, std::move(data), at, key);
}

void SubscriptionService::Transition(TenantSubscriptions& t, const PlanRef& to_plan,
                                     State to_status, std::string_view actor, std::string reason,
                                     Instant at) {
  if (!CanTransition(t.current.status, to_status)) {
    AbortWithMessage("subscription state machine", (std::string(StateName(t.current.status)) +
                                                    " -> " + std::string(StateName(to_status)))
                                                       .c_str());
  }
  t.audit.push_back(AuditEntry{at, std::string(actor), t.current.id, t.current.plan,
                               t.current.status, to_plan, to_status, std::move(reason)});
  t.current.plan = to_plan;
  t.current.status = to_status;
}

// Ends the current subscription and starts another (cancel, trial start or
// end). The audit trail records both steps, so it stays a continuous chain.
void SubscriptionService::StartNew(TenantSubscriptions& t, const PlanRef& plan, State status,
                                   Instant at, std::string_view actor, std::string reason) {
  Transition(t, t.current.plan, State::kCanceled, actor, reason, at);
  Subscription old = t.current;
  old.ended_at = at;
  old.period.end = std::min(old.period.end, at);
  t.previous.push_back(old);
  Subscription s;
  s.id = ids_.Next("sub");
  s.plan = t.current.plan;
  s.status = State::kCanceled;
  s.started_at = Sec(at);
  s.anchor = Sec(at);
  s.calendar_anchor = old.calendar_anchor;
  t.current = s;
  t.audit.push_back(AuditEntry{at, std::string(actor), s.id, old.plan, State::kCanceled, plan,
                               status, std::move(reason)});
  t.current.plan = plan;
  t.current.status = status;
  t.current.period = PeriodAt(t.current, at);
}

void SubscriptionService::Prorate(TenantSubscriptions& t, const PlanRef& from, const PlanRef& to,
                                  Instant at) {
  const Period p = t.current.period;
  // The denominator is the whole monthly period, also when the current one
  // is a shorter first period (a calendar anchor set mid-month).
  const Period full = t.current.calendar_anchor ? CalendarMonthContaining(at) : p;
  const int64_t total =
      std::chrono::duration_cast<std::chrono::seconds>(full.end - full.start).count();
  const int64_t left = std::chrono::duration_cast<std::chrono::seconds>(p.end - at).count();
  if (total <= 0 || left <= 0) return;
  const Period rest{at, p.end};
  auto line = [&](const PlanRef& plan, int sign, const char* kind) {
    const Money fee = FeeOf(t, plan);
    if (fee.amount_minor() == 0) return;
    const int64_t amount = MulDivRound(fee.amount_minor(), left, total).value();
    const catalog::PlanVersion* pv = catalog_.Get(plan.id, plan.version);
    const std::string name = pv ? pv->name : plan.id;
    t.pending_lines.push_back(Line{ids_.Next("ii"), kind,
                                   (sign < 0 ? "Unused time on " : "Remaining time on ") + name +
                                       " (" + std::to_string(left) + " of " +
                                       std::to_string(total) + " s)",
                                   Money(sign * amount, fee.currency()), rest, at});
  };
  line(from, -1, "proration_credit");
  line(to, +1, "proration_charge");
}

Result<std::string> SubscriptionService::DoChange(TenantSubscriptions& t, const ChangeRequest& req,
                                                  std::string_view actor, bool admin, Instant now) {
  Subscription& cur = t.current;
  const catalog::PlanVersion* target = catalog_.Latest(req.plan);
  if (!target) return Error::Invalid("plan", "no plan \"" + req.plan + "\" in the catalog");
  if (req.at && *req.at != "now" && *req.at != "period_end") {
    return Error::Invalid("at", "must be \"now\" or \"period_end\"");
  }
  if (target->custom && !admin) {
    return Error::Make(ErrorCode::kPermissionDenied,
                       "only an admin key may move a tenant to " + target->name);
  }
  const catalog::PlanVersion* current = catalog_.Get(cur.plan.id, cur.plan.version);
  const int cur_tier = current ? current->tier : 0;
  if (cur.status == State::kPastDue || cur.status == State::kSuspended) {
    return Error::Make(ErrorCode::kFailedPrecondition,
                       "the subscription is " + std::string(StateName(cur.status)) +
                           ": settle the open invoice before changing plans");
  }
  const PlanRef to{target->id, target->version};
  if (req.trial) {
    if (t.trial_used)
      return Error::Make(ErrorCode::kFailedPrecondition, "the tenant has had its trial");
    if (target->trial_days == 0) {
      return Error::Make(ErrorCode::kFailedPrecondition, target->name + " has no trial");
    }
    if (cur_tier >= target->tier) {
      return Error::Make(ErrorCode::kFailedPrecondition, "a trial starts from a lower plan");
    }
    t.trial_used = true;
    StartNew(t, to, State::kTrialing, now, actor,
             "trial of " + target->name + " (" + std::to_string(target->trial_days) + " days)");
    t.current.trial_end = now + std::chrono::hours(24) * target->trial_days;
    t.current.period = Period{now, *t.current.trial_end};
    Emit(t, "subscription.trial_started",
         json::object{{"plan", to.id}, {"trial_end", Ts(*t.current.trial_end)}}, now);
    return std::string("trial_started");
  }
  if (cur.status == State::kTrialing) {
    if (to.id != cur.plan.id) {
      return Error::Make(ErrorCode::kFailedPrecondition,
                         "the tenant is in a trial of " + cur.plan.id +
                             ": convert it (same plan) or cancel it first");
    }
    if (!t.has_payment_method) {
      return Error::Make(ErrorCode::kFailedPrecondition,
                         "converting a trial needs a payment method on file");
    }
    Transition(t, cur.plan, State::kActive, actor, "trial converted early", now);
    cur.trial_end.reset();
    cur.anchor = now;
    cur.period = PeriodAt(cur, now);
    Emit(t, "subscription.trial_converted", json::object{{"plan", to.id}}, now);
    return std::string("trial_converted");
  }
  if (to.id == cur.plan.id) {
    if (cur.scheduled_plan) {
      cur.scheduled_plan.reset();
      Emit(t, "subscription.downgrade_canceled", json::object{{"plan", to.id}}, now);
      return std::string("downgrade_canceled");
    }
    return Error::Make(ErrorCode::kFailedPrecondition, "the tenant is already on " + target->name);
  }
  const bool upgrade = target->tier > cur_tier;
  const std::string at = req.at.value_or(upgrade ? "now" : "period_end");
  if (at == "period_end") {
    cur.scheduled_plan = to;
    Emit(t, upgrade ? "subscription.upgrade_scheduled" : "subscription.downgrade_scheduled",
         json::object{{"plan", to.id}, {"at", Ts(cur.period.end)}}, now);
    return std::string(upgrade ? "upgrade_scheduled" : "downgrade_scheduled");
  }
  if (req.calendar_anchor && cur_tier == 0 && FeeOf(t, cur.plan).amount_minor() == 0) {
    // Leaving a free plan may re-anchor the periods (no credit is owed).
    cur.calendar_anchor = *req.calendar_anchor;
    cur.anchor = now;
    cur.period = PeriodAt(cur, now);
  }
  Prorate(t, cur.plan, to, now);
  Transition(t, to, State::kActive, actor,
             std::string(upgrade ? "upgrade" : "downgrade") + " to " + target->name, now);
  cur.scheduled_plan.reset();
  cur.cancel_at_period_end = false;
  Emit(t, upgrade ? "subscription.upgraded" : "subscription.downgraded",
       json::object{{"plan", to.id}}, now);
  return std::string(upgrade ? "upgraded" : "downgraded");
}

std::optional<Instant> SubscriptionService::NextDue(const TenantSubscriptions& t) const {
  const Subscription& s = t.current;
  if (s.status == State::kTrialing && s.trial_end) {
    if (!s.trial_reminder_sent) return *s.trial_end - kTrialReminder;
    return *s.trial_end;
  }
  return s.period.end;
}

Result<std::string> SubscriptionService::RunOne(TenantSubscriptions& t, Instant at) {
  Subscription& s = t.current;
  if (s.status == State::kTrialing && s.trial_end) {
    if (!s.trial_reminder_sent && at >= *s.trial_end - kTrialReminder) {
      s.trial_reminder_sent = true;
      Emit(t, "subscription.trial_will_end",
           json::object{{"trial_end", Ts(*s.trial_end)},
                        {"payment_method_on_file", t.has_payment_method}},
           at);
      return std::string("trial_reminder");
    }
    if (at >= *s.trial_end) {
      const Instant end = *s.trial_end;
      if (t.has_payment_method) {
        Transition(t, s.plan, State::kActive, "scheduler", "trial ended: payment method on file",
                   end);
        s.trial_end.reset();
        s.anchor = end;
        s.period = PeriodAt(s, end);
        Emit(t, "subscription.trial_converted", json::object{{"plan", s.plan.id}}, end);
        return std::string("trial_converted");
      }
      const catalog::PlanVersion* free = catalog_.Latest("free");
      StartNew(t, PlanRef{free->id, free->version}, State::kActive, end, "scheduler",
               "trial ended without a payment method: back to Free");
      Emit(t, "subscription.trial_ended", json::object{{"plan", free->id}}, end);
      return std::string("trial_ended");
    }
    return std::string();
  }
  if (at < s.period.end) return std::string();
  const Instant end = s.period.end;
  if (s.cancel_at_period_end) {
    const catalog::PlanVersion* free = catalog_.Latest("free");
    StartNew(t, PlanRef{free->id, free->version}, State::kActive, end, "scheduler",
             "canceled at period end");
    Emit(t, "subscription.canceled", json::object{{"plan", free->id}}, end);
    return std::string("canceled");
  }
  if (s.scheduled_plan) {
    const PlanRef to = *s.scheduled_plan;
    s.scheduled_plan.reset();
    Transition(t, to, s.status, "scheduler", "scheduled change to " + to.id + " at period end",
               end);
    Emit(t, "subscription.plan_changed", json::object{{"plan", to.id}}, end);
  }
  s.period = PeriodAt(s, end);
  Emit(t, "subscription.renewed",
       json::object{{"plan", s.plan.id},
                    {"period_start", Ts(s.period.start)},
                    {"period_end", Ts(s.period.end)}},
       end);
  return std::string("renewed");
}

Result<ChangeResult> SubscriptionService::Apply(
    std::string_view tenant, Instant created_at,
    const std::function<Result<std::string>(TenantSubscriptions&)>& f, bool write, bool notify) {
  std::unique_lock lock(mu_);
  bool is_new = false;
  auto t = Load(tenant, created_at, &is_new);
  if (!t) return t.error();
  const Instant now = clock_.Now();
  // Catch up on anything due (a server that was down, or a read before the
  // scheduler's next pass), so answers always describe "now".
  bool changed = is_new;
  for (int guard = 0; guard < 10'000; ++guard) {
    auto due = NextDue(*t);
    if (!due || *due > now) break;
    auto r = RunOne(*t, *due);
    if (!r) return r.error();
    changed = true;
  }
  const size_t lines_before = t->pending_lines.size();
  auto effect = f(*t);
  if (!effect) return effect.error();
  changed = changed || !effect->empty();
  ChangeResult out;
  out.effect = *effect;
  out.lines.assign(t->pending_lines.begin() + static_cast<long>(lines_before),
                   t->pending_lines.end());
  if (write && changed) {
    caas::Status s = Save(*t, is_new);
    if (!s) return s.error();
  }
  out.state = std::move(*t);
  if (write && changed) {
    lock.unlock();
    if (notify) {
      Notify(out.state.tenant);
    } else {
      std::lock_guard cache_lock(cache_mu_);
      cache_.erase(out.state.tenant);
    }
  }
  return out;
}

Result<TenantSubscriptions> SubscriptionService::Get(std::string_view tenant, Instant created_at,
                                                     bool notify) {
  auto r = Apply(
      tenant, created_at, [](TenantSubscriptions&) { return std::string(); }, true, notify);
  if (!r) return r.error();
  return std::move(r->state);
}

Result<ChangeResult> SubscriptionService::Change(std::string_view tenant, Instant created_at,
                                                 const ChangeRequest& req, std::string_view actor,
                                                 bool admin) {
  const Instant now = clock_.Now();
  return Apply(
      tenant, created_at,
      [&](TenantSubscriptions& t) { return DoChange(t, req, actor, admin, now); }, true);
}

Result<ChangeResult> SubscriptionService::Preview(std::string_view tenant, Instant created_at,
                                                  const ChangeRequest& req, bool admin) {
  const Instant now = clock_.Now();
  return Apply(
      tenant, created_at,
      [&](TenantSubscriptions& t) { return DoChange(t, req, "preview", admin, now); }, false);
}

Result<ChangeResult> SubscriptionService::Cancel(std::string_view tenant, Instant created_at,
                                                 bool now_flag, std::string_view actor) {
  const Instant now = clock_.Now();
  return Apply(
      tenant, created_at,
      [&](TenantSubscriptions& t) -> Result<std::string> {
        Subscription& s = t.current;
        const catalog::PlanVersion* free = catalog_.Latest("free");
        if (s.plan.id == free->id) {
          return Error::Make(ErrorCode::kFailedPrecondition, "the Free plan cannot be canceled");
        }
        if (s.status == State::kTrialing) {
          StartNew(t, PlanRef{free->id, free->version}, State::kActive, now, actor,
                   "trial canceled");
          Emit(t, "subscription.canceled", json::object{{"plan", free->id}}, now);
          return std::string("canceled");
        }
        if (!now_flag) {
          if (s.cancel_at_period_end) {
            return Error::Make(ErrorCode::kFailedPrecondition,
                               "a cancellation is already scheduled");
          }
          s.cancel_at_period_end = true;
          s.scheduled_plan.reset();
          Emit(t, "subscription.cancel_scheduled", json::object{{"at", Ts(s.period.end)}}, now);
          return std::string("cancel_scheduled");
        }
        Prorate(t, s.plan, PlanRef{free->id, free->version}, now);
        StartNew(t, PlanRef{free->id, free->version}, State::kActive, now, actor,
                 "canceled immediately");
        Emit(t, "subscription.canceled", json::object{{"plan", free->id}}, now);
        return std::string("canceled");
      },
      true);
}

Result<ChangeResult> SubscriptionService::Reactivate(std::string_view tenant, Instant created_at,
                                                     std::string_view) {
  const Instant now = clock_.Now();
  return Apply(
      tenant, created_at,
      [&](TenantSubscriptions& t) -> Result<std::string> {
        if (!t.current.cancel_at_period_end) {
          return Error::Make(ErrorCode::kFailedPrecondition,
                             "no cancellation is scheduled: nothing to reactivate");
        }
        t.current.cancel_at_period_end = false;
        Emit(t, "subscription.reactivated", json::object{{"plan", t.current.plan.id}}, now);
        return std::string("reactivated");
      },
      true);
}

Result<TenantSubscriptions> SubscriptionService::SetCustomTerms(
    std::string_view tenant, Instant created_at, CustomTerms terms,
    std::map<std::string, bool> features, std::string_view) {
  const Instant now = clock_.Now();
  auto r = Apply(
      tenant, created_at,
      [&](TenantSubscriptions& t) -> Result<std::string> {
        t.custom_terms = terms;
        for (auto& [k, v] : features) t.feature_overrides[k] = v;
        Emit(t, "subscription.terms_updated", json::object{}, now);
        return std::string("terms_updated");
      },
      true);
  if (!r) return r.error();
  return std::move(r->state);
}

Result<TenantSubscriptions> SubscriptionService::SetPaymentMethod(std::string_view tenant,
                                                                  Instant created_at, bool on_file,
                                                                  std::string_view) {
  auto r = Apply(
      tenant, created_at,
      [&](TenantSubscriptions& t) -> Result<std::string> {
        t.has_payment_method = on_file;
        return std::string("payment_method");
      },
      true);
  if (!r) return r.error();
  return std::move(r->state);
}

void SubscriptionService::Notify(const std::string& tenant) {
  {
    std::lock_guard lock(cache_mu_);
    cache_.erase(tenant);
  }
  if (on_change_) on_change_(tenant);
}

Result<SubscriptionService::View> SubscriptionService::CachedView(std::string_view tenant) {
  const Instant now = clock_.Now();
  {
    std::lock_guard lock(cache_mu_);
    auto it = cache_.find(tenant);
    if (it != cache_.end() && now < it->second.current.period.end &&
        !(it->second.current.trial_end && now >= *it->second.current.trial_end)) {
      return it->second;
    }
  }
  std::optional<Instant> created = created_at_ ? created_at_(tenant) : std::nullopt;
  if (!created) return Error::NotFound("no tenant " + std::string(tenant));
  auto t = Get(tenant, *created, /*notify=*/false);
  if (!t) return t.error();
  View v{t->current, t->previous, ComputeEntitlements(*t)};
  std::lock_guard lock(cache_mu_);
  cache_[std::string(tenant)] = v;
  return v;
}

Period SubscriptionService::PeriodFor(std::string_view tenant, Instant t) {
  auto v = CachedView(tenant);
  if (!v) return CalendarMonthContaining(t);
  if (t >= v->current.started_at) return PeriodAt(v->current, t);
  for (auto it = v->previous.rbegin(); it != v->previous.rend(); ++it) {
    if (t >= it->started_at) {
      Period p = PeriodAt(*it, t);
      if (it->ended_at && p.end > *it->ended_at) p.end = *it->ended_at;
      return p;
    }
  }
  // Before the tenant's first subscription: its first schedule, backwards.
  const Subscription& first = v->previous.empty() ? v->current : v->previous.front();
  return MonthlyPeriodContaining(first.anchor, t);
}

Result<Entitlements> SubscriptionService::EntitlementsFor(std::string_view tenant,
                                                          Instant created_at) {
  auto t = Get(tenant, created_at);
  if (!t) return t.error();
  return ComputeEntitlements(*t);
}

Entitlements SubscriptionService::ComputeEntitlements(const TenantSubscriptions& tt) const {
  const TenantSubscriptions* t = &tt;
  const catalog::PlanVersion* p = catalog_.Get(t->current.plan.id, t->current.plan.version);
  if (!p) p = catalog_.Latest("free");
  Entitlements e;
  e.plan = p->id;
  e.plan_version = p->version;
  e.status = t->current.status;
  e.period = t->current.period;
  e.features = p->features;
  for (const auto& [k, v] : t->feature_overrides) e.features[k] = v;
  catalog::PlanVersion effective = *p;
  if (p->custom && t->custom_terms) {
    for (const auto& [m, mp] : t->custom_terms->metrics) effective.metrics[m] = mp;
  }
  e.terms = effective.Terms();
  return e;
}

void SubscriptionService::ForEachTenant(const std::function<bool(const storage::Document&)>& f) {
  std::string after;
  for (;;) {
    storage::ListQuery q;
    q.starting_after = after;
    q.limit = 1000;
    auto page = store_.List(kCollection, q);
    for (const auto& doc : page.items) {
      if (!f(doc)) return;
    }
    if (!page.has_more || page.items.empty()) return;
    after = page.items.back().id;
  }
}

Result<int> SubscriptionService::MigratePlan(const std::string& plan,
                                             std::optional<int> from_version, int to_version,
                                             std::string_view actor) {
  if (!catalog_.Get(plan, to_version)) {
    return Error::Invalid("to_version",
                          "the catalog has no " + plan + " version " + std::to_string(to_version));
  }
  int migrated = 0;
  std::vector<std::string> changed;
  caas::Status failed;
  {
    std::lock_guard lock(mu_);
    const Instant now = clock_.Now();
    ForEachTenant([&](const storage::Document& doc) {
      TenantSubscriptions t = FromJson(json::parse(doc.body).as_object());
      t.doc_version = doc.version;
      bool touched = false;
      if (t.current.plan.id == plan && t.current.plan.version != to_version &&
          (!from_version || t.current.plan.version == *from_version)) {
        Transition(t, PlanRef{plan, to_version}, t.current.status, actor,
                   "migrated from " + plan + " version " + std::to_string(t.current.plan.version) +
                       " to version " + std::to_string(to_version),
                   now);
        touched = true;
      }
      if (t.current.scheduled_plan && t.current.scheduled_plan->id == plan &&
          t.current.scheduled_plan->version != to_version) {
        t.current.scheduled_plan->version = to_version;
        touched = true;
      }
      if (!touched) return true;
      Emit(t, "subscription.plan_migrated",
           json::object{{"plan", plan}, {"plan_version", to_version}}, now);
      failed = Save(t, false);
      if (!failed) return false;
      ++migrated;
      changed.push_back(t.tenant);
      return true;
    });
  }
  for (const auto& tenant : changed) Notify(tenant);  // also those moved before a failure
  if (!failed) return failed.error();
  return migrated;
}

Result<int> SubscriptionService::RunDue(Instant until,
                                        const std::function<void(Instant)>& before_each) {
  int ran = 0;
  for (int guard = 0; guard < 1'000'000; ++guard) {
    // The earliest due instant over every tenant.
    std::optional<Instant> earliest;
    std::string who;
    {
      std::lock_guard lock(mu_);
      ForEachTenant([&](const storage::Document& doc) {
        auto due = NextDue(FromJson(json::parse(doc.body).as_object()));
        if (due && *due <= until && (!earliest || *due < *earliest)) {
          earliest = due;
          who = doc.id;
        }
        return true;
      });
    }
    if (!earliest) return ran;
    if (before_each) before_each(*earliest);
    {
      std::lock_guard lock(mu_);
      bool is_new = false;
      auto t = Load(who, *earliest, &is_new);
      if (!t) return t.error();
      auto r = RunOne(*t, *earliest);
      if (!r) return r.error();
      caas::Status s = Save(*t, false);
      if (!s) return s.error();
    }
    Notify(who);
    ++ran;
  }
  return ran;
}

}  // namespace caas::subscriptions
