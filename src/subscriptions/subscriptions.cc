#include "subscriptions/subscriptions.h"

#include <algorithm>
#include <boost/json.hpp>
#include <set>

#include "core/log.h"
#include "subscriptions/codec.h"
#include "subscriptions/proration.h"
#include "subscriptions/state_machine.h"
#include "subscriptions/timeline.h"

namespace caas::subscriptions {
namespace json = boost::json;

namespace {

constexpr auto kTrialReminder = std::chrono::hours(24 * 3);
const char* const kCollection = "subscriptions";

std::string Ts(Instant t) { return FormatRfc3339(t); }
Instant Sec(Instant t) { return std::chrono::floor<std::chrono::seconds>(t); }
std::string Day(Instant t) { return Ts(t).substr(0, 10); }

// The pending lines some closing took already.
std::set<std::string, std::less<>> TakenLines(const TenantSubscriptions& t) {
  std::set<std::string, std::less<>> taken;
  for (const auto& c : t.closings) taken.insert(c.lines.begin(), c.lines.end());
  return taken;
}

}  // namespace

// The billing events of one operation go into the document's outbox, in
// the operation's own write (a preview, or a failed write, announces
// nothing).
struct SubscriptionService::Pending {
  IdGenerator& ids;
  void Emit(TenantSubscriptions& t, std::string type, json::object data, Instant at,
            std::string_view actor) {
    data["subscription"] = t.current.id;
    data["actor"] = actor;
    events::BillingEvent e;
    e.id = ids.Next("bev");
    e.type = std::move(type);
    e.tenant = t.tenant;
    e.occurred_at = at;
    e.data = std::move(data);
    t.outbox.push_back(std::move(e));
  }
};

storage::CollectionSpec SubscriptionsCollectionSpec() {
  return {kCollection, {{"due_at", false}, {"outbox", false}, {"closing", false}}};
}

Period PeriodAt(const Subscription& s, Instant t) {
  Period p = catalog::SchedulePeriodAt(s.schedule, t).period;
  if (p.start < s.schedule.start && p.end > s.schedule.start) p.start = s.schedule.start;
  return p;
}

SubscriptionService::SubscriptionService(storage::DocumentStore& store, const Clock& clock,
                                         IdGenerator& ids, const catalog::Catalog& catalog)
    : store_(store), clock_(clock), ids_(ids), catalog_(catalog) {}

Instant SubscriptionService::Now() const { return Sec(clock_.Now()); }

catalog::Terms SubscriptionService::TermsOf(const TenantSubscriptions& t, const PlanRef& plan,
                                            State state) const {
  auto terms = EffectiveTerms(catalog_, plan, state, t.custom_terms, CurrencyOf(catalog_, t));
  return terms ? *terms : *catalog_.Latest("free")->TermsIn(CurrencyOf(catalog_, t));
}

TenantSubscriptions SubscriptionService::NewTenant(std::string_view tenant,
                                                   Instant created_at) const {
  TenantSubscriptions t;
  t.tenant = std::string(tenant);
  t.currency = std::string(catalog_.currency().code);
  if (currency_of_) {
    const std::string c = currency_of_(tenant);
    if (Currency::Find(c)) t.currency = c;
  }
  const catalog::PlanVersion* free = catalog_.Latest("free");
  Subscription& s = t.current;
  s.id = "sub_" + std::string(tenant.substr(tenant.find('_') + 1));  // stable: one per tenant start
  s.plan = {free->id, free->version};
  s.status = State::kActive;
  s.started_at = Sec(created_at);
  s.schedule = catalog::Schedule{s.started_at, s.started_at, false, std::nullopt};
  s.period = PeriodAt(s, s.started_at);
  t.audit.push_back(AuditEntry{s.started_at, "system", s.id, s.plan, State::kActive, s.plan,
                               State::kActive, "tenant created: Free plan"});
  SyncSegment(catalog_, t, s.started_at);
  return t;
}

Result<TenantSubscriptions> SubscriptionService::Load(std::string_view tenant, Instant created_at,
                                                      bool* is_new) {
  auto doc = store_.Get(kCollection, tenant);
  if (doc) {
    *is_new = false;
    auto t = DecodeDocument(doc->body, catalog_);
    if (!t) throw storage::CorruptDocument(kCollection, tenant, t.error().message);
    t->doc_version = doc->version;
    return t;
  }
  if (doc.error().code != ErrorCode::kNotFound) return doc.error();
  *is_new = true;
  return NewTenant(tenant, created_at);
}

caas::Status SubscriptionService::Save(TenantSubscriptions& t, bool is_new) {
  storage::Document doc;
  doc.id = t.tenant;
  doc.body = EncodeDocument(t);
  // What the scheduler looks for: the next due instant, and an outbox to relay.
  if (auto due = NextDue(t)) {
    doc.keys["due_at"] = storage::SortableTime(due->time_since_epoch().count());
  }
  if (!t.closings.empty()) {
    doc.keys["closing"] = storage::SortableTime(t.closings.front().at.time_since_epoch().count());
  }
  if (!t.outbox.empty()) {
    doc.keys["outbox"] =
        storage::SortableTime(t.outbox.front().occurred_at.time_since_epoch().count());
  }
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

// An audit entry for a change that is not a transition (the plan and state
// stay), so that every change records who made it.
void SubscriptionService::Note(TenantSubscriptions& t, std::string_view actor, std::string reason,
                               Instant at) {
  t.audit.push_back(AuditEntry{at, std::string(actor), t.current.id, t.current.plan,
                               t.current.status, t.current.plan, t.current.status,
                               std::move(reason)});
}

void SubscriptionService::AddLine(TenantSubscriptions& t, Line line) {
  if (line.amount.amount_minor() == 0) return;  // zero lines are not written
  line.id = ids_.Next("ii");
  t.pending_lines.push_back(std::move(line));
}

// A new period of the current subscription begins at `at`: its base fee is
// charged now, in advance (prorated when the period is a first calendar
// period that starts mid-month).
void SubscriptionService::StartPeriod(TenantSubscriptions& t, Instant at,
                                      std::optional<Period> ended) {
  Subscription& s = t.current;
  s.period = PeriodAt(s, at);
  s.charges.clear();
  ChargePeriod(t, at);
  if (ended) AddClosing(t, s.id, true, *ended, at);
}

// Records a boundary for the invoices module: the period `ended` of
// subscription `sub` ended at `at` (period_end), or a change at `at` is
// invoiced at once. It takes every pending line no earlier closing took.
void SubscriptionService::AddClosing(TenantSubscriptions& t, const std::string& sub,
                                     bool period_end, Period ended, Instant at) {
  Closing c;
  c.invoice = ids_.Next("in");
  c.subscription = sub;
  c.period_end = period_end;
  c.period = ended;
  c.at = at;
  const auto taken = TakenLines(t);
  for (const auto& l : t.pending_lines) {
    if (!taken.contains(l.id)) c.lines.push_back(l.id);
  }
  // A period that ended as it began (a trial started the second the tenant
  // was created) has nothing to bill unless lines wait.
  if (period_end && !(ended.start < ended.end) && c.lines.empty()) return;
  t.closings.push_back(std::move(c));
}

// The base fee of the period that begins at `at`, charged in advance.
void SubscriptionService::ChargePeriod(TenantSubscriptions& t, Instant at) {
  Subscription& s = t.current;
  if (s.status != State::kActive) return;
  const catalog::Terms terms = TermsOf(t, s.plan, s.status);
  const int64_t full = catalog::SchedulePeriodAt(s.schedule, at).full_seconds;
  const int64_t amount = FeeForPeriod(terms.base_fee, s.period, full);
  if (amount == 0) return;
  const catalog::PlanVersion* pv = catalog_.Get(s.plan.id, s.plan.version);
  Line line;
  line.kind = LineKind::kBaseFee;
  line.description = (pv ? pv->name : s.plan.id) + " monthly fee, " + Day(s.period.start) + " to " +
                     Day(s.period.end);
  line.amount = Money(amount, terms.base_fee.currency());
  line.period = s.period;
  line.created_at = at;
  line.plan = s.plan;
  if (amount != terms.base_fee.amount_minor()) {
    const int64_t len =
        std::chrono::duration_cast<std::chrono::seconds>(s.period.end - s.period.start).count();
    line.proration = Proration{len, full, terms.base_fee.amount_minor(), ""};
  }
  AddLine(t, line);
  s.charges.push_back(FeeCharge{t.pending_lines.back().id, s.period, amount, false});
}

// Credits the unused part of the fee charge in force at `at`, from that
// charge; nothing is left of it afterwards.
void SubscriptionService::CreditUnused(TenantSubscriptions& t, Instant at) {
  Subscription& s = t.current;
  for (auto it = s.charges.rbegin(); it != s.charges.rend(); ++it) {
    if (it->credited || !it->span.Contains(at)) continue;
    const Prorated credit = CreditForUnused(*it, at);
    it->credited = true;
    if (credit.amount_minor == 0) return;
    const catalog::PlanVersion* pv = catalog_.Get(s.plan.id, s.plan.version);
    Line line;
    line.kind = LineKind::kProrationCredit;
    line.description = "Unused time on " + (pv ? pv->name : s.plan.id) + " (" +
                       std::to_string(credit.how.seconds) + " of " +
                       std::to_string(credit.how.of_seconds) + " s)";
    line.amount = Money(credit.amount_minor, TermsOf(t, s.plan, s.status).base_fee.currency());
    line.period = Period{at, it->span.end};
    line.created_at = at;
    line.plan = s.plan;
    line.proration = credit.how;
    AddLine(t, line);
    return;
  }
}

// A fee change inside the period at `at`: the unused part of the charge in
// force is credited, and the new fee charged for the rest of the period.
void SubscriptionService::ChangeFee(TenantSubscriptions& t, const catalog::Terms& to, Instant at) {
  Subscription& s = t.current;
  CreditUnused(t, at);
  if (s.status != State::kActive) return;
  const int64_t full = catalog::SchedulePeriodAt(s.schedule, at).full_seconds;
  const Prorated charge = ChargeForRest(to.base_fee, at, s.period.end, full);
  std::string line_id;
  if (charge.amount_minor != 0) {
    const catalog::PlanVersion* pv = catalog_.Get(to.plan, to.plan_version);
    Line line;
    line.kind = LineKind::kProrationCharge;
    line.description = "Remaining time on " + (pv ? pv->name : to.plan) + " (" +
                       std::to_string(charge.how.seconds) + " of " +
                       std::to_string(charge.how.of_seconds) + " s)";
    line.amount = Money(charge.amount_minor, to.base_fee.currency());
    line.period = Period{at, s.period.end};
    line.created_at = at;
    line.plan = PlanRef{to.plan, to.plan_version};
    line.proration = charge.how;
    AddLine(t, line);
    line_id = t.pending_lines.back().id;
  }
  s.charges.push_back(FeeCharge{line_id, Period{at, s.period.end}, charge.amount_minor, false});
}

// Ends the current subscription and starts another (cancel, trial start or
// end, re-anchoring). The audit trail records both steps, so it stays a
// continuous chain.
void SubscriptionService::StartNew(TenantSubscriptions& t, const PlanRef& plan, State status,
                                   Instant at, std::string_view actor, std::string reason,
                                   catalog::Schedule schedule) {
  Transition(t, t.current.plan, State::kCanceled, actor, reason, at);
  Subscription old = t.current;
  old.ended_at = at;
  old.period.end = std::min(old.period.end, at);
  old.charges.clear();
  t.previous.push_back(std::move(old));
  Subscription s;
  s.id = ids_.Next("sub");
  s.plan = plan;
  s.status = status;
  s.started_at = at;
  s.schedule = schedule;
  t.audit.push_back(AuditEntry{at, std::string(actor), s.id, t.current.plan, State::kCanceled, plan,
                               status, std::move(reason)});
  t.current = std::move(s);
  StartPeriod(t, at, std::nullopt);
  const Subscription& ended = t.previous.back();
  AddClosing(t, ended.id, true, ended.period, at);
  SyncSegment(catalog_, t, at);
}

Result<Effect> SubscriptionService::DoChange(TenantSubscriptions& t, Pending& ev,
                                             const ChangeRequest& req, std::string_view actor,
                                             bool admin, Instant now) {
  Subscription& cur = t.current;
  const catalog::PlanVersion* target = catalog_.Latest(req.plan);
  if (!target) return Error::Invalid("plan", "no plan \"" + req.plan + "\" in the catalog");
  if (target->custom && !admin) {
    return Error::Make(ErrorCode::kPermissionDenied,
                       "only an admin key may move a tenant to " + target->name);
  }
  const catalog::PlanVersion* current = catalog_.Get(cur.plan.id, cur.plan.version);
  const int cur_tier = current ? current->tier : 0;
  const bool leaving_free =
      cur_tier == 0 && TermsOf(t, cur.plan, cur.status).base_fee.amount_minor() == 0;
  if (cur.status == State::kPastDue || cur.status == State::kSuspended) {
    return Error::Make(ErrorCode::kFailedPrecondition,
                       "the subscription is " + std::string(StateName(cur.status)) +
                           ": settle the open invoice before changing plans");
  }
  const PlanRef to{target->id, target->version};
  if (auto priced = target->TermsIn(CurrencyOf(catalog_, t)); !priced) {
    return Error::Invalid("plan", priced.error().message);
  }
  const std::string anchor_reason =
      "applies only to an upgrade from a free plan that takes effect now";
  if (req.trial) {
    if (req.at) return Error::Invalid("at", "does not apply to a trial: it starts now");
    if (req.billing_anchor) {
      return Error::Invalid("billing_anchor", "does not apply to a trial: " + anchor_reason);
    }
    if (t.trial_used) {
      return Error::Make(ErrorCode::kFailedPrecondition, "the tenant has had its trial");
    }
    if (target->trial_days == 0) {
      return Error::Make(ErrorCode::kFailedPrecondition, target->name + " has no trial");
    }
    if (cur_tier >= target->tier) {
      return Error::Make(ErrorCode::kFailedPrecondition, "a trial starts from a lower plan");
    }
    t.trial_used = true;
    CreditUnused(t, now);
    const Instant end = now + std::chrono::hours(24) * target->trial_days;
    StartNew(t, to, State::kTrialing, now, actor,
             "trial of " + target->name + " (" + std::to_string(target->trial_days) + " days)",
             catalog::Schedule{now, now, cur.schedule.calendar, end});
    ev.Emit(t, "subscription.trial_started", json::object{{"plan", to.id}, {"trial_end", Ts(end)}},
            now, actor);
    return Effect::kTrialStarted;
  }
  if (cur.status == State::kTrialing) {
    if (req.billing_anchor) return Error::Invalid("billing_anchor", anchor_reason);
    if (to.id != cur.plan.id) {
      return Error::Make(ErrorCode::kFailedPrecondition,
                         "the tenant is in a trial of " + cur.plan.id +
                             ": convert it (same plan) or cancel it first");
    }
    if (req.at == When::kPeriodEnd) {
      return Error::Invalid("at",
                            "a trial converts at its end by itself; \"now\" converts it early");
    }
    if (!t.has_payment_method) {
      return Error::Make(ErrorCode::kFailedPrecondition,
                         "converting a trial needs a payment method on file");
    }
    Transition(t, cur.plan, State::kActive, actor, "trial converted early", now);
    cur.schedule = catalog::Schedule{now, now, cur.schedule.calendar, std::nullopt};
    StartPeriod(t, now, Period{cur.period.start, now});
    SyncSegment(catalog_, t, now);
    ev.Emit(t, "subscription.trial_converted", json::object{{"plan", to.id}}, now, actor);
    return Effect::kTrialConverted;
  }
  if (to.id == cur.plan.id) {
    if (req.billing_anchor) return Error::Invalid("billing_anchor", anchor_reason);
    if (cur.scheduled_plan) {
      Note(t, actor, "scheduled change to " + cur.scheduled_plan->id + " withdrawn", now);
      cur.scheduled_plan.reset();
      ev.Emit(t, "subscription.downgrade_canceled", json::object{{"plan", to.id}}, now, actor);
      return Effect::kDowngradeCanceled;
    }
    return Error::Make(ErrorCode::kFailedPrecondition, "the tenant is already on " + target->name);
  }
  const bool upgrade = target->tier > cur_tier;
  const When when = req.at.value_or(upgrade ? When::kNow : When::kPeriodEnd);
  if (when == When::kPeriodEnd) {
    if (req.billing_anchor) return Error::Invalid("billing_anchor", anchor_reason);
    cur.scheduled_plan = to;
    cur.cancel_at_period_end = false;
    Note(t, actor, "change to " + target->name + " scheduled at period end", now);
    ev.Emit(t, upgrade ? "subscription.upgrade_scheduled" : "subscription.downgrade_scheduled",
            json::object{{"plan", to.id}, {"at", Ts(cur.period.end)}}, now, actor);
    return upgrade ? Effect::kUpgradeScheduled : Effect::kDowngradeScheduled;
  }
  const std::string reason = std::string(upgrade ? "upgrade" : "downgrade") + " to " + target->name;
  if (req.billing_anchor) {
    if (!upgrade || !leaving_free) return Error::Invalid("billing_anchor", anchor_reason);
    // Re-anchoring ends the free subscription here and starts a new one, so
    // usage before and after lies in different periods.
    StartNew(t, to, State::kActive, now, actor, reason + " (re-anchored)",
             catalog::Schedule{now, now, *req.billing_anchor == Anchor::kCalendar, std::nullopt});
  } else {
    ChangeFee(t, TermsOf(t, to, State::kActive), now);
    Transition(t, to, State::kActive, actor, reason, now);
    cur.scheduled_plan.reset();
    cur.cancel_at_period_end = false;
    SyncSegment(catalog_, t, now);
  }
  ev.Emit(t, upgrade ? "subscription.upgraded" : "subscription.downgraded",
          json::object{{"plan", to.id}}, now, actor);
  return upgrade ? Effect::kUpgraded : Effect::kDowngraded;
}

Result<Effect> SubscriptionService::DoCancel(TenantSubscriptions& t, Pending& ev, bool now_flag,
                                             std::string_view actor, Instant now) {
  Subscription& s = t.current;
  const catalog::PlanVersion* free = catalog_.Latest("free");
  const PlanRef free_ref{free->id, free->version};
  if (s.plan.id == free->id) {
    return Error::Make(ErrorCode::kFailedPrecondition, "the Free plan cannot be canceled");
  }
  if (s.status == State::kTrialing) {
    StartNew(t, free_ref, State::kActive, now, actor, "trial canceled",
             catalog::Schedule{now, now, s.schedule.calendar, std::nullopt});
    ev.Emit(t, "subscription.canceled", json::object{{"plan", free->id}}, now, actor);
    return Effect::kCanceled;
  }
  if (!now_flag) {
    if (s.cancel_at_period_end) {
      return Error::Make(ErrorCode::kFailedPrecondition, "a cancellation is already scheduled");
    }
    s.cancel_at_period_end = true;
    s.scheduled_plan.reset();
    Note(t, actor, "cancellation scheduled at period end", now);
    ev.Emit(t, "subscription.cancel_scheduled", json::object{{"at", Ts(s.period.end)}}, now, actor);
    return Effect::kCancelScheduled;
  }
  CreditUnused(t, now);
  StartNew(t, free_ref, State::kActive, now, actor, "canceled immediately",
           catalog::Schedule{now, now, s.schedule.calendar, std::nullopt});
  ev.Emit(t, "subscription.canceled", json::object{{"plan", free->id}}, now, actor);
  return Effect::kCanceled;
}

std::optional<Instant> SubscriptionService::NextDue(const TenantSubscriptions& t) const {
  const Subscription& s = t.current;
  if (s.status == State::kTrialing && s.schedule.trial_end) {
    if (!s.trial_reminder_sent) return *s.schedule.trial_end - kTrialReminder;
    return *s.schedule.trial_end;
  }
  return s.period.end;
}

Result<Effect> SubscriptionService::RunOne(TenantSubscriptions& t, Pending& ev, Instant at) {
  Subscription& s = t.current;
  const catalog::PlanVersion* free = catalog_.Latest("free");
  const PlanRef free_ref{free->id, free->version};
  if (s.status == State::kTrialing && s.schedule.trial_end) {
    const Instant end = *s.schedule.trial_end;
    if (!s.trial_reminder_sent && at >= end - kTrialReminder) {
      s.trial_reminder_sent = true;
      ev.Emit(
          t, "subscription.trial_will_end",
          json::object{{"trial_end", Ts(end)}, {"payment_method_on_file", t.has_payment_method}},
          at, "scheduler");
      return Effect::kNone;
    }
    if (at < end) return Effect::kNone;
    if (t.has_payment_method) {
      Transition(t, s.plan, State::kActive, "scheduler", "trial ended: payment method on file",
                 end);
      const Period trial = s.period;
      s.schedule = catalog::Schedule{end, end, s.schedule.calendar, std::nullopt};
      StartPeriod(t, end, trial);
      SyncSegment(catalog_, t, end);
      ev.Emit(t, "subscription.trial_converted", json::object{{"plan", s.plan.id}}, end,
              "scheduler");
      return Effect::kTrialConverted;
    }
    StartNew(t, free_ref, State::kActive, end, "scheduler",
             "trial ended without a payment method: back to Free",
             catalog::Schedule{end, end, s.schedule.calendar, std::nullopt});
    ev.Emit(t, "subscription.trial_ended", json::object{{"plan", free->id}}, end, "scheduler");
    return Effect::kCanceled;
  }
  if (at < s.period.end) return Effect::kNone;
  const Instant end = s.period.end;
  const Period ended = s.period;
  if (s.cancel_at_period_end) {
    StartNew(t, free_ref, State::kActive, end, "scheduler", "canceled at period end",
             catalog::Schedule{end, end, s.schedule.calendar, std::nullopt});
    ev.Emit(t, "subscription.canceled", json::object{{"plan", free->id}}, end, "scheduler");
    return Effect::kCanceled;
  }
  if (s.scheduled_plan) {
    const PlanRef to = *s.scheduled_plan;
    s.scheduled_plan.reset();
    Transition(t, to, s.status, "scheduler", "scheduled change to " + to.id + " at period end",
               end);
    ev.Emit(t, "subscription.plan_changed", json::object{{"plan", to.id}}, end, "scheduler");
  }
  StartPeriod(t, end, ended);
  SyncSegment(catalog_, t, end);
  ev.Emit(t, "subscription.renewed",
          json::object{{"plan", s.plan.id},
                       {"period_start", Ts(s.period.start)},
                       {"period_end", Ts(s.period.end)}},
          end, "scheduler");
  return Effect::kNone;
}

// A change that charges more than it credits is invoiced at once (so an
// upgrade is paid before it is used); otherwise its lines wait for the
// period's invoice.
void SubscriptionService::CloseChange(TenantSubscriptions& t, size_t lines_before, Instant now) {
  const auto taken = TakenLines(t);
  int64_t net = 0;
  for (size_t i = lines_before; i < t.pending_lines.size(); ++i) {
    if (!taken.contains(t.pending_lines[i].id)) net += t.pending_lines[i].amount.amount_minor();
  }
  if (net > 0) AddClosing(t, t.current.id, false, Period{now, now}, now);
}

Result<ChangeResult> SubscriptionService::Apply(std::string_view tenant, Instant created_at,
                                                const Op& op, bool write) {
  std::unique_lock lock(LockFor(tenant));
  bool is_new = false;
  auto t = Load(tenant, created_at, &is_new);
  if (!t) return t.error();
  const Instant now = Now();
  Pending pending{ids_};
  // Catch up on anything due (a server that was down, or a read before the
  // scheduler's next pass), so answers always describe "now".
  bool changed = is_new;
  for (int guard = 0; guard < 10'000; ++guard) {
    auto due = NextDue(*t);
    if (!due || *due > now) break;
    auto r = RunOne(*t, pending, *due);
    if (!r) return r.error();
    changed = true;
  }
  const size_t lines_before = t->pending_lines.size();
  const size_t events_before = t->outbox.size();
  auto effect = op(*t, pending);
  if (!effect) return effect.error();
  CloseChange(*t, lines_before, now);
  changed = changed || *effect != Effect::kNone || t->outbox.size() != events_before;
  ChangeResult out;
  out.effect = *effect;
  out.lines.assign(t->pending_lines.begin() + static_cast<long>(lines_before),
                   t->pending_lines.end());
  if (!write || !changed) {
    out.state = std::move(*t);
    return out;
  }
  caas::Status s = Save(*t, is_new);
  if (!s) return s.error();
  out.state = std::move(*t);
  lock.unlock();
  if (!out.state.outbox.empty()) {
    // Published now, so a reader sees it; if this fails, the scheduler
    // relays it later (the document's `outbox` key).
    try {
      if (RelayOutbox(out.state.tenant)) out.state.outbox.clear();
    } catch (const storage::StorageError& e) {
      Log(LogLevel::kWarn, "outbox_relay_deferred",
          {{"tenant", out.state.tenant}, {"error", std::string_view(e.what())}});
    }
  }
  Notify(out.state);
  return out;
}

Result<TenantSubscriptions> SubscriptionService::Get(std::string_view tenant, Instant created_at) {
  auto r = Apply(
      tenant, created_at,
      [](TenantSubscriptions&, Pending&) -> Result<Effect> { return Effect::kNone; }, true);
  if (!r) return r.error();
  return std::move(r->state);
}

Result<ChangeResult> SubscriptionService::Change(std::string_view tenant, Instant created_at,
                                                 const ChangeRequest& req, std::string_view actor,
                                                 bool admin) {
  return Apply(
      tenant, created_at,
      [&](TenantSubscriptions& t, Pending& ev) {
        return DoChange(t, ev, req, actor, admin, Now());
      },
      true);
}

Result<ChangeResult> SubscriptionService::Preview(std::string_view tenant, Instant created_at,
                                                  const ChangeRequest& req, bool admin) {
  return Apply(
      tenant, created_at,
      [&](TenantSubscriptions& t, Pending& ev) {
        return DoChange(t, ev, req, "preview", admin, Now());
      },
      false);
}

Result<ChangeResult> SubscriptionService::Cancel(std::string_view tenant, Instant created_at,
                                                 bool now_flag, std::string_view actor) {
  return Apply(
      tenant, created_at,
      [&](TenantSubscriptions& t, Pending& ev) { return DoCancel(t, ev, now_flag, actor, Now()); },
      true);
}

Result<ChangeResult> SubscriptionService::Reactivate(std::string_view tenant, Instant created_at,
                                                     std::string_view actor) {
  return Apply(
      tenant, created_at,
      [&](TenantSubscriptions& t, Pending& ev) -> Result<Effect> {
        if (!t.current.cancel_at_period_end) {
          return Error::Make(ErrorCode::kFailedPrecondition,
                             "no cancellation is scheduled: nothing to reactivate");
        }
        t.current.cancel_at_period_end = false;
        Note(t, actor, "cancellation at period end withdrawn", Now());
        ev.Emit(t, "subscription.reactivated", json::object{{"plan", t.current.plan.id}}, Now(),
                actor);
        return Effect::kReactivated;
      },
      true);
}

Result<ChangeResult> SubscriptionService::SetCustomTerms(std::string_view tenant,
                                                         Instant created_at, CustomTerms terms,
                                                         std::map<std::string, bool> features,
                                                         std::string_view actor) {
  for (const auto& [m, mt] : terms.metrics) {
    const std::string why = catalog::CheckMetricTerms(mt, catalog::IsCounted(m));
    if (!why.empty()) return Error::Invalid("metrics." + std::string(catalog::MetricName(m)), why);
  }
  return Apply(
      tenant, created_at,
      [&](TenantSubscriptions& t, Pending& ev) -> Result<Effect> {
        const Instant now = Now();
        if (terms.base_fee && !(terms.base_fee->currency() == CurrencyOf(catalog_, t))) {
          return Error::Invalid("base_fee", "must be in the tenant's currency " +
                                                std::string(CurrencyOf(catalog_, t).code));
        }
        const catalog::Terms before = TermsOf(t, t.current.plan, t.current.status);
        t.custom_terms = terms;
        for (auto& [k, v] : features) t.feature_overrides[k] = v;
        const catalog::Terms after = TermsOf(t, t.current.plan, t.current.status);
        if (!(after.base_fee == before.base_fee)) ChangeFee(t, after, now);
        SyncSegment(catalog_, t, now);
        Note(t, actor, "custom terms or feature overrides updated", now);
        ev.Emit(t, "subscription.terms_updated", json::object{}, now, actor);
        return Effect::kTermsUpdated;
      },
      true);
}

Result<ChangeResult> SubscriptionService::SetPaymentMethod(std::string_view tenant,
                                                           Instant created_at, bool on_file,
                                                           std::string_view actor) {
  return Apply(
      tenant, created_at,
      [&](TenantSubscriptions& t, Pending& ev) -> Result<Effect> {
        if (t.has_payment_method == on_file) return Effect::kNone;
        t.has_payment_method = on_file;
        Note(t, actor, on_file ? "payment method on file" : "payment method removed", Now());
        ev.Emit(t, "subscription.payment_method_updated", json::object{{"on_file", on_file}}, Now(),
                actor);
        return Effect::kPaymentMethodUpdated;
      },
      true);
}

void SubscriptionService::Notify(const TenantSubscriptions& t) {
  {
    std::lock_guard lock(cache_mu_);
    cache_.erase(t.tenant);
  }
  for (const auto& f : observers_) f(t);
}

Result<SubscriptionService::View> SubscriptionService::CachedView(std::string_view tenant) {
  const Instant now = clock_.Now();
  {
    std::lock_guard lock(cache_mu_);
    auto it = cache_.find(tenant);
    if (it != cache_.end() && now < it->second.current.period.end &&
        !(it->second.current.schedule.trial_end &&
          now >= *it->second.current.schedule.trial_end - kTrialReminder &&
          it->second.current.status == State::kTrialing)) {
      return it->second;
    }
  }
  std::optional<Instant> created = created_at_ ? created_at_(tenant) : std::nullopt;
  if (!created) return Error::NotFound("no tenant " + std::string(tenant));
  auto t = Get(tenant, *created);
  if (!t) return t.error();
  View v{t->current, ComputeEntitlements(*t)};
  std::lock_guard lock(cache_mu_);
  cache_[std::string(tenant)] = v;
  return v;
}

Result<catalog::VersionedTimeline> SubscriptionService::TimelineOf(std::string_view tenant) {
  auto doc = store_.Get(kCollection, tenant);
  if (doc) {
    auto t = DecodeDocument(doc->body, catalog_);
    if (!t) throw storage::CorruptDocument(kCollection, tenant, t.error().message);
    return catalog::VersionedTimeline{doc->version, TimelineOf(*t)};
  }
  if (doc.error().code != ErrorCode::kNotFound) return doc.error();
  std::optional<Instant> created = created_at_ ? created_at_(tenant) : std::nullopt;
  if (!created) return Error::NotFound("no tenant " + std::string(tenant));
  return catalog::VersionedTimeline{0, TimelineOf(NewTenant(tenant, *created))};
}

catalog::Timeline SubscriptionService::TimelineOf(const TenantSubscriptions& t) const {
  return BuildTimeline(catalog_, t);
}

Result<Entitlements> SubscriptionService::EntitlementsFor(std::string_view tenant,
                                                          Instant created_at) {
  auto t = Get(tenant, created_at);
  if (!t) return t.error();
  return ComputeEntitlements(*t);
}

Entitlements SubscriptionService::ComputeEntitlements(const TenantSubscriptions& t) const {
  const catalog::PlanVersion* p = catalog_.Get(t.current.plan.id, t.current.plan.version);
  if (!p) p = catalog_.Latest("free");
  Entitlements e;
  e.plan = p->id;
  e.plan_version = p->version;
  e.status = t.current.status;
  e.period = t.current.period;
  e.features = p->features;
  for (const auto& [k, v] : t.feature_overrides) e.features[k] = v;
  e.terms = TermsOf(t, PlanRef{p->id, p->version}, t.current.status);
  return e;
}

void SubscriptionService::ForEachTenant(const std::function<bool(const TenantSubscriptions&)>& f) {
  std::string after;
  for (;;) {
    storage::ListQuery q;
    q.starting_after = after;
    q.limit = 1000;
    auto page = store_.List(kCollection, q);
    for (const auto& doc : page.items) {
      auto t = DecodeDocument(doc.body, catalog_);
      if (!t) {
        Log(LogLevel::kError, "corrupt_document",
            {{"collection", kCollection}, {"id", doc.id}, {"error", t.error().message}});
        continue;
      }
      t->doc_version = doc.version;
      if (!f(*t)) return;
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
  std::vector<std::pair<std::string, Instant>> tenants;
  ForEachTenant([&](const TenantSubscriptions& t) {
    const bool on_plan = t.current.plan.id == plan && t.current.plan.version != to_version &&
                         (!from_version || t.current.plan.version == *from_version);
    const bool scheduled = t.current.scheduled_plan && t.current.scheduled_plan->id == plan &&
                           t.current.scheduled_plan->version != to_version;
    if (on_plan || scheduled) tenants.emplace_back(t.tenant, t.current.started_at);
    return true;
  });
  int migrated = 0;
  for (const auto& [tenant, started] : tenants) {
    auto r = Apply(
        tenant, started,
        [&](TenantSubscriptions& t, Pending& ev) -> Result<Effect> {
          const Instant now = Now();
          bool touched = false;
          Subscription& s = t.current;
          if (!catalog_.Get(plan, to_version)->TermsIn(CurrencyOf(catalog_, t))) {
            // No price in the tenant's currency: it stays where it is.
            Log(LogLevel::kWarn, "plan_migration_skipped",
                {{"tenant", t.tenant}, {"currency", CurrencyOf(catalog_, t).code}});
            return Effect::kNone;
          }
          if (s.plan.id == plan && s.plan.version != to_version &&
              (!from_version || s.plan.version == *from_version)) {
            const PlanRef to{plan, to_version};
            const catalog::Terms before = TermsOf(t, s.plan, s.status);
            const catalog::Terms after = TermsOf(t, to, s.status);
            if (!(after.base_fee == before.base_fee)) ChangeFee(t, after, now);
            Transition(t, to, s.status, actor,
                       "migrated from " + plan + " version " + std::to_string(s.plan.version) +
                           " to version " + std::to_string(to_version),
                       now);
            SyncSegment(catalog_, t, now);
            touched = true;
          }
          if (s.scheduled_plan && s.scheduled_plan->id == plan &&
              s.scheduled_plan->version != to_version) {
            s.scheduled_plan->version = to_version;
            touched = true;
          }
          if (!touched) return Effect::kNone;
          ev.Emit(t, "subscription.plan_migrated",
                  json::object{{"plan", plan}, {"plan_version", to_version}}, now, actor);
          return Effect::kTermsUpdated;
        },
        true);
    if (!r) return r.error();
    if (r->effect != Effect::kNone) ++migrated;
  }
  return migrated;
}

bool SubscriptionService::RelayOutbox(std::string_view tenant) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::lock_guard lock(LockFor(tenant));
    auto doc = store_.Get(kCollection, tenant);
    if (!doc) return doc.error().code == ErrorCode::kNotFound;
    auto t = DecodeDocument(doc->body, catalog_);
    if (!t) throw storage::CorruptDocument(kCollection, tenant, t.error().message);
    t->doc_version = doc->version;
    if (t->outbox.empty()) return true;
    for (const auto& e : t->outbox) events::PublishBillingEvent(store_, clock_, e);
    t->outbox.clear();
    caas::Status s = Save(*t, false);
    if (s) return true;
    // Changed meanwhile (a new event?): publish again from the new version;
    // what is already published is skipped by its id. Any other failure is
    // left for the scheduler's next pass.
    if (s.error().code != ErrorCode::kConflict) return false;
  }
  return false;
}

Result<std::optional<SubscriptionService::ClosingWork>> SubscriptionService::FirstClosing(
    std::string_view tenant) {
  auto doc = store_.Get(kCollection, tenant);
  if (!doc) {
    if (doc.error().code == ErrorCode::kNotFound) return std::optional<ClosingWork>();
    return doc.error();
  }
  auto t = DecodeDocument(doc->body, catalog_);
  if (!t) throw storage::CorruptDocument(kCollection, tenant, t.error().message);
  if (t->closings.empty()) return std::optional<ClosingWork>();
  ClosingWork w{t->tenant, t->closings.front(), {}, &CurrencyOf(catalog_, *t)};
  for (const auto& id : w.closing.lines) {
    for (const auto& l : t->pending_lines) {
      if (l.id == id) w.lines.push_back(l);
    }
  }
  return std::optional<ClosingWork>(std::move(w));
}

Result<SubscriptionService::ClosingWork> SubscriptionService::PreviewNextClosing(
    std::string_view tenant, Instant created_at) {
  std::unique_lock lock(LockFor(tenant));
  bool is_new = false;
  auto t = Load(tenant, created_at, &is_new);
  if (!t) return t.error();
  lock.unlock();
  const Instant now = Now();
  Pending pending{ids_};
  for (int guard = 0; guard < 10'000; ++guard) {  // catch up first
    auto due = NextDue(*t);
    if (!due || *due > now) break;
    auto r = RunOne(*t, pending, *due);
    if (!r) return r.error();
  }
  const size_t before = t->closings.size();
  for (int guard = 0; guard < 8 && t->closings.size() == before; ++guard) {
    auto due = NextDue(*t);
    if (!due) break;
    auto r = RunOne(*t, pending, *due);
    if (!r) return r.error();
  }
  if (t->closings.size() == before) {
    return Error::Make(ErrorCode::kFailedPrecondition, "no period end is scheduled");
  }
  ClosingWork w{t->tenant, t->closings[before], {}, &CurrencyOf(catalog_, *t)};
  for (const auto& id : w.closing.lines) {
    for (const auto& l : t->pending_lines) {
      if (l.id == id) w.lines.push_back(l);
    }
  }
  return w;
}

// Reads the stored document, applies `f` (false: nothing to write) and
// writes it back, again from a fresh read when another write came between.
caas::Status SubscriptionService::Update(std::string_view tenant,
                                         const std::function<bool(TenantSubscriptions&)>& f) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::unique_lock lock(LockFor(tenant));
    auto doc = store_.Get(kCollection, tenant);
    if (!doc) return doc.error();
    auto t = DecodeDocument(doc->body, catalog_);
    if (!t) throw storage::CorruptDocument(kCollection, tenant, t.error().message);
    t->doc_version = doc->version;
    if (!f(*t)) return caas::Status::Ok();
    caas::Status s = Save(*t, false);
    if (s) {
      lock.unlock();
      Notify(*t);
      return s;
    }
    if (s.error().code != ErrorCode::kConflict) return s;
  }
  return Error::Make(ErrorCode::kConflict, "the subscription document kept changing");
}

caas::Status SubscriptionService::CompleteClosing(std::string_view tenant,
                                                  std::string_view invoice) {
  caas::Status s = Update(tenant, [&](TenantSubscriptions& t) {
    auto it = std::find_if(t.closings.begin(), t.closings.end(),
                           [&](const Closing& c) { return c.invoice == invoice; });
    if (it == t.closings.end()) return false;  // done already
    const std::set<std::string, std::less<>> taken(it->lines.begin(), it->lines.end());
    std::erase_if(t.pending_lines, [&](const Line& l) { return taken.contains(l.id); });
    t.closings.erase(it);
    return true;
  });
  if (!s && s.error().code == ErrorCode::kNotFound) return caas::Status::Ok();
  return s;
}

caas::Status SubscriptionService::CarryCredit(std::string_view tenant, std::string_view invoice,
                                              Money amount, std::string description,
                                              Period period) {
  return Update(tenant, [&](TenantSubscriptions& t) {
    if (std::find(t.credits_from.begin(), t.credits_from.end(), invoice) != t.credits_from.end()) {
      return false;  // carried already
    }
    t.credits_from.emplace_back(invoice);
    Line line;
    line.id = ids_.Next("ii");
    line.kind = LineKind::kCredit;
    line.description = description;
    line.amount = amount;
    line.period = period;
    line.created_at = Now();
    line.plan = t.current.plan;
    t.pending_lines.push_back(std::move(line));
    return true;
  });
}

std::optional<Instant> SubscriptionService::EarliestClosing() {
  return storage::EarliestTime(store_, kCollection, "closing");
}

std::vector<std::string> SubscriptionService::TenantsWithClosingDue(Instant until, size_t limit) {
  return storage::DueIds(store_, kCollection, "closing", until, limit);
}

void SubscriptionService::RegisterWith(jobs::Scheduler& scheduler) {
  auto earliest = [this](const char* key) {
    return storage::EarliestTime(store_, kCollection, key);
  };
  auto due = [this](const char* key) {
    return [this, key](Instant until, size_t limit) {
      return storage::DueIds(store_, kCollection, key, until, limit);
    };
  };
  // Each tenant's document is its own business: tenants run in parallel.
  scheduler.Add(jobs::Scheduler::Keyed(
      "subscriptions.due", [earliest] { return earliest("due_at"); }, due("due_at"),
      [this](const std::string& tenant, Instant until) {
        // Apply catches up on everything due by the clock (a tenant no
        // longer due does nothing).
        auto r = Apply(
            tenant, until,
            [](TenantSubscriptions&, Pending&) -> Result<Effect> { return Effect::kNone; }, true);
        if (!r) {
          Log(LogLevel::kError, "subscription_transition_failed",
              {{"tenant", tenant}, {"error", r.error().message}});
          return false;
        }
        return true;
      }));
  scheduler.Add(jobs::Scheduler::Keyed(
      "subscriptions.outbox", [earliest] { return earliest("outbox"); }, due("outbox"),
      [this](const std::string& tenant, Instant) { return RelayOutbox(tenant); }));
}

}  // namespace caas::subscriptions
