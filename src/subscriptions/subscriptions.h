// Subscriptions: every tenant has exactly one current subscription (Free from
// the tenant's creation), an explicit state machine with an audit trail,
// upgrades now with proration to the second, downgrades and cancellations at
// the period end, trials, Enterprise terms, and the scheduler that runs what
// falls due (trial reminders and ends, period ends) in time order.
//
// Storage: one document per tenant (collection "subscriptions", id = tenant
// id) holding the current subscription, the ones before it, the audit trail
// and the pending proration lines, so every change is one atomic write
// (no multi-document transactions needed, as on MongoDB).
//
// Proration rule (docs/subscriptions.md): a change at instant c in period
// [s, e) credits the old plan's base fee × r and charges the new plan's
// base fee × r, where r = whole seconds left (e − c) / seconds in the period
// (e − s); each line is rounded once, half away from zero, to minor units.
#pragma once

#include <boost/json/object.hpp>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "core/clock.h"
#include "core/ids.h"
#include "core/money.h"
#include "core/status.h"
#include "metering/plan_terms.h"
#include "storage/document_store.h"

namespace caas::subscriptions {

enum class State { kTrialing, kActive, kPastDue, kSuspended, kCanceled };
std::string_view StateName(State s);
std::optional<State> ParseState(std::string_view s);
// The transitions the state machine allows.
bool CanTransition(State from, State to);

storage::CollectionSpec SubscriptionsCollectionSpec();

struct PlanRef {
  std::string id;
  int version = 1;
  bool operator==(const PlanRef&) const = default;
};

// Per-tenant terms for a custom (Enterprise) plan; absent fields fall back to
// the catalog plan's.
struct CustomTerms {
  std::optional<Money> base_fee;
  std::map<metering::Metric, catalog::MetricPricing> metrics;
};

struct AuditEntry {
  Instant at;
  std::string actor;  // API key id, "scheduler", "system"
  std::string subscription_id;
  PlanRef from_plan;
  State from_status;
  PlanRef to_plan;
  State to_status;
  std::string reason;
};

struct Line {        // a pending invoice line (proration), for the invoices module
  std::string id;    // ii_…
  std::string kind;  // "proration_credit" | "proration_charge"
  std::string description;
  Money amount{0, Currency::Usd()};  // credits are negative
  Period period;                     // the part of the period it covers
  Instant created_at;
};

struct Subscription {
  std::string id;  // sub_…
  PlanRef plan;
  State status = State::kActive;
  Instant started_at;
  bool calendar_anchor = false;
  Instant anchor;  // periods repeat monthly from here
  Period period;   // the current one
  std::optional<Instant> trial_end;
  bool trial_reminder_sent = false;
  bool cancel_at_period_end = false;
  std::optional<PlanRef> scheduled_plan;  // a downgrade taking effect at period end
  std::optional<Instant> ended_at;
};

struct TenantSubscriptions {
  std::string tenant;
  Subscription current;
  std::vector<Subscription> previous;  // ended, oldest first
  std::vector<AuditEntry> audit;
  std::vector<Line> pending_lines;
  bool trial_used = false;
  bool has_payment_method = false;  // set by the payments module (or an admin) later
  std::optional<CustomTerms> custom_terms;
  std::map<std::string, bool> feature_overrides;
  int64_t doc_version = 0;
};

struct ChangeRequest {
  std::string plan;                     // target plan id
  std::optional<std::string> at;        // "now" | "period_end"
  bool trial = false;                   // start the plan's trial instead of paying now
  std::optional<bool> calendar_anchor;  // only when leaving Free
};

struct ChangeResult {
  std::string effect;  // "upgraded", "downgrade_scheduled", "trial_started", ...
  std::vector<Line> lines;
  TenantSubscriptions state;
};

struct Entitlements {
  std::string plan;
  int plan_version;
  State status;
  Period period;
  std::map<std::string, bool> features;
  metering::PlanTerms terms;
};

// The billing period of `s` that contains `t` (a trial is one period).
Period PeriodAt(const Subscription& s, Instant t);

// Recorded for every change (the billing event log).
using EventSink =
    std::function<void(const std::string& type, const std::string& tenant, boost::json::object data,
                       Instant at, const std::string& dedupe_key)>;

class SubscriptionService {
 public:
  SubscriptionService(storage::DocumentStore& store, const Clock& clock, IdGenerator& ids,
                      const catalog::Catalog& catalog, EventSink events);

  // The tenant's subscriptions; created (Free, anchored at `created_at`) on
  // first use.
  // `notify`: false on the read path of CachedView (metering may be calling,
  // holding its own locks; it gets the fresh state from that very call).
  Result<TenantSubscriptions> Get(std::string_view tenant, Instant created_at, bool notify = true);

  // Plan changes. kInvalidArgument for a bad request, kFailedPrecondition
  // (409) for a change the state does not allow, with the reason.
  Result<ChangeResult> Change(std::string_view tenant, Instant created_at, const ChangeRequest& req,
                              std::string_view actor, bool admin);
  // The same, without writing anything.
  Result<ChangeResult> Preview(std::string_view tenant, Instant created_at,
                               const ChangeRequest& req, bool admin);
  Result<ChangeResult> Cancel(std::string_view tenant, Instant created_at, bool now,
                              std::string_view actor);
  Result<ChangeResult> Reactivate(std::string_view tenant, Instant created_at,
                                  std::string_view actor);
  Result<TenantSubscriptions> SetCustomTerms(std::string_view tenant, Instant created_at,
                                             CustomTerms terms,
                                             std::map<std::string, bool> features,
                                             std::string_view actor);
  Result<TenantSubscriptions> SetPaymentMethod(std::string_view tenant, Instant created_at,
                                               bool on_file, std::string_view actor);

  // Moves every subscription on `plan` (at `from_version`, or any other
  // version) to `to_version` of the catalog, with an audit entry each.
  // Returns how many moved.
  Result<int> MigratePlan(const std::string& plan, std::optional<int> from_version, int to_version,
                          std::string_view actor);

  Result<Entitlements> EntitlementsFor(std::string_view tenant, Instant created_at);
  Entitlements ComputeEntitlements(const TenantSubscriptions& t) const;

  // Runs, in time order, everything due at or before `until` for every
  // tenant (trial reminders, trial ends, period ends). `before_each` is
  // called with each due instant first (a manual clock moves there).
  // Returns the number of transitions run.
  Result<int> RunDue(Instant until, const std::function<void(Instant)>& before_each);

  // Called after every change, outside the service's lock (metering
  // refreshes its cached terms).
  void OnChange(std::function<void(const std::string& tenant)> f) { on_change_ = std::move(f); }
  // How to find a tenant's creation time (the anchor of its Free start).
  void SetTenantLookup(std::function<std::optional<Instant>(std::string_view)> f) {
    created_at_ = std::move(f);
  }

  // What is in force for a tenant now, from memory after the first read:
  // the current subscription and its entitlements. Refreshed on every change
  // and when the cached period has ended. kNotFound for an unknown tenant.
  struct View {
    Subscription current;
    std::vector<Subscription> previous;
    Entitlements entitlements;
  };
  Result<View> CachedView(std::string_view tenant);
  // The billing period containing `t` for a tenant (metering's periods).
  Period PeriodFor(std::string_view tenant, Instant t);

  const catalog::Catalog& catalog() const { return catalog_; }

 private:
  Result<TenantSubscriptions> Load(std::string_view tenant, Instant created_at, bool* is_new);
  caas::Status Save(TenantSubscriptions& t, bool is_new);
  Result<ChangeResult> Apply(std::string_view tenant, Instant created_at,
                             const std::function<Result<std::string>(TenantSubscriptions&)>& f,
                             bool write, bool notify = true);
  Result<std::string> DoChange(TenantSubscriptions& t, const ChangeRequest& req,
                               std::string_view actor, bool admin, Instant now);
  void Transition(TenantSubscriptions& t, const PlanRef& to_plan, State to_status,
                  std::string_view actor, std::string reason, Instant at);
  void StartNew(TenantSubscriptions& t, const PlanRef& plan, State status, Instant at,
                std::string_view actor, std::string reason);
  Money FeeOf(const TenantSubscriptions& t, const PlanRef& p) const;
  void Prorate(TenantSubscriptions& t, const PlanRef& from, const PlanRef& to, Instant at);
  std::optional<Instant> NextDue(const TenantSubscriptions& t) const;
  Result<std::string> RunOne(TenantSubscriptions& t, Instant at);
  void Emit(const TenantSubscriptions& t, const std::string& type, boost::json::object data,
            Instant at);

  storage::DocumentStore& store_;
  const Clock& clock_;
  IdGenerator& ids_;
  const catalog::Catalog& catalog_;
  EventSink events_;
  std::function<void(const std::string&)> on_change_;
  std::mutex mu_;  // one writer at a time (changes are rare; the scheduler too)
  std::function<std::optional<Instant>(std::string_view)> created_at_;
  std::mutex cache_mu_;
  std::map<std::string, View, std::less<>> cache_;  // guarded by cache_mu_
  void Notify(const std::string& tenant);
  // Calls `f` with every tenant's document, in id order, until it returns false.
  void ForEachTenant(const std::function<bool(const storage::Document&)>& f);
};

boost::json::object ToJson(const TenantSubscriptions& t, const catalog::Catalog& catalog);
boost::json::object LineToJson(const Line& l);

}  // namespace caas::subscriptions
