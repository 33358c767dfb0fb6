// Subscriptions: every tenant has exactly one current subscription (Free from
// the tenant's creation), an explicit state machine with an audit trail,
// upgrades now with proration to the second, downgrades and cancellations at
// the period end, trials, Enterprise terms, and the transitions that fall due
// (trial reminders and ends, period ends) run in time order.
//
// Storage: one document per tenant (collection "subscriptions", id = tenant
// id, see codec.h), so every change is one atomic write (no multi-document
// transactions needed, as on MongoDB). The billing events of a change are in
// that same write, in the document's outbox; a relay publishes them
// (RelayOutbox: right after the write, and by the scheduler after a crash).
// The next instant something falls due is the document's declared key
// `due_at`, so the scheduler finds due tenants through an index.
//
// Money (docs/subscriptions.md): a period's base fee is charged at its start;
// a change inside a period credits the unused part of the charge in force
// (never more than was charged) and charges the new fee for the rest
// (proration.h). The lines wait in `pending_lines` for the invoices module.
// Every change to terms or schedule appends a segment to the tenant's terms
// timeline (timeline.h), which metering rates usage by.
//
// All instants are whole seconds: a change at 12:00:00.7 happens at 12:00:00.
#pragma once

#include <array>
#include <boost/json/object.hpp>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/timeline.h"
#include "core/clock.h"
#include "core/ids.h"
#include "core/status.h"
#include "jobs/scheduler.h"
#include "storage/document_store.h"
#include "subscriptions/model.h"

namespace caas::subscriptions {

storage::CollectionSpec SubscriptionsCollectionSpec();

// The billing period of `s` that contains `t` (a trial is one period),
// clipped at the start of its schedule.
Period PeriodAt(const Subscription& s, Instant t);

class SubscriptionService {
 public:
  SubscriptionService(storage::DocumentStore& store, const Clock& clock, IdGenerator& ids,
                      const catalog::Catalog& catalog);
  SubscriptionService(const SubscriptionService&) = delete;
  SubscriptionService& operator=(const SubscriptionService&) = delete;

  // The tenant's subscriptions; created (Free, anchored at `created_at`) on
  // first use. Runs whatever fell due first, so the answer describes now.
  Result<TenantSubscriptions> Get(std::string_view tenant, Instant created_at);

  // Plan changes. kInvalidArgument (naming the field) for a bad request or a
  // setting that would not apply, kPermissionDenied for a tenant key asking
  // for a custom plan, kFailedPrecondition (409) for a change the state does
  // not allow, with the reason.
  Result<ChangeResult> Change(std::string_view tenant, Instant created_at, const ChangeRequest& req,
                              std::string_view actor, bool admin);
  // The same, without writing or announcing anything.
  Result<ChangeResult> Preview(std::string_view tenant, Instant created_at,
                               const ChangeRequest& req, bool admin);
  Result<ChangeResult> Cancel(std::string_view tenant, Instant created_at, bool now,
                              std::string_view actor);
  Result<ChangeResult> Reactivate(std::string_view tenant, Instant created_at,
                                  std::string_view actor);
  // Custom (Enterprise) terms and feature overrides. A new base fee on a
  // custom plan takes effect at once, prorated like an upgrade.
  Result<ChangeResult> SetCustomTerms(std::string_view tenant, Instant created_at,
                                      CustomTerms terms, std::map<std::string, bool> features,
                                      std::string_view actor);
  Result<ChangeResult> SetPaymentMethod(std::string_view tenant, Instant created_at, bool on_file,
                                        std::string_view actor);

  // Moves every subscription on `plan` (at `from_version`, or any other
  // version) to `to_version` of the catalog, at once and prorated, with an
  // audit entry each. Returns how many moved.
  Result<int> MigratePlan(const std::string& plan, std::optional<int> from_version, int to_version,
                          std::string_view actor);

  // Adds this service's due work to the scheduler: the transitions that fall
  // due (trial reminders and ends, period ends), tenant by tenant in time
  // order, and the relay of outboxes a crash left behind.
  void RegisterWith(jobs::Scheduler& scheduler);

  // Publishes the tenant's outbox and empties it; true when it is empty
  // after (false: a store failure left it for the scheduler's next pass).
  // Throws StorageError.
  bool RelayOutbox(std::string_view tenant);

  // Billing boundaries waiting for their invoices (the invoices module's
  // work, docs/invoices.md "Period close"): the tenant's first closing with
  // copies of the lines it takes, read without writing; nullopt when none.
  struct ClosingWork {
    std::string tenant;
    Closing closing;
    std::vector<Line> lines;
    const Currency* currency = nullptr;  // the subscription's
  };
  Result<std::optional<ClosingWork>> FirstClosing(std::string_view tenant);
  // The closing the current period's end will make (what the next invoice
  // takes), computed without writing anything.
  Result<ClosingWork> PreviewNextClosing(std::string_view tenant, Instant created_at);
  // Removes the closing that became `invoice` and the lines it took, in one
  // write; Ok when it is gone already. Throws StorageError.
  caas::Status CompleteClosing(std::string_view tenant, std::string_view invoice);
  // Carries what a negative invoice left over into the tenant's pending
  // lines, as a credit line the next invoice takes; once per invoice (the
  // document records it), so a retry never adds it twice. Throws StorageError.
  caas::Status CarryCredit(std::string_view tenant, std::string_view invoice, Money amount,
                           std::string description, Period period);
  // The earliest closing of any tenant, and up to `limit` tenants with one
  // due by `until`, earliest first.
  std::optional<Instant> EarliestClosing();
  std::vector<std::string> TenantsWithClosingDue(Instant until, size_t limit);

  // Called after every write, outside the service's lock, with the stored
  // state (metering takes the new terms timeline from it).
  using Observer = std::function<void(const TenantSubscriptions&)>;
  void AddObserver(Observer f) { observers_.push_back(std::move(f)); }
  // How to find a tenant's currency (its subscription is priced in it,
  // fixed when the document is created).
  void SetCurrencyLookup(std::function<std::string(std::string_view)> f) {
    currency_of_ = std::move(f);
  }
  // How to find a tenant's creation time (the anchor of its Free start).
  void SetTenantLookup(std::function<std::optional<Instant>(std::string_view)> f) {
    created_at_ = std::move(f);
  }

  // What is in force for a tenant now, from memory after the first read.
  // Refreshed on every change and when the cached period has ended.
  // kNotFound for an unknown tenant.
  struct View {
    Subscription current;
    Entitlements entitlements;
  };
  Result<View> CachedView(std::string_view tenant);

  // The tenant's terms timeline, read without writing anything (a tenant
  // with no document yet gets the Free start it will have). kNotFound for an
  // unknown tenant.
  Result<catalog::VersionedTimeline> TimelineOf(std::string_view tenant);
  catalog::Timeline TimelineOf(const TenantSubscriptions& t) const;

  Result<Entitlements> EntitlementsFor(std::string_view tenant, Instant created_at);
  Entitlements ComputeEntitlements(const TenantSubscriptions& t) const;

  // Calls `f` with every tenant's stored document, in id order, until it
  // returns false. Documents that cannot be read are logged and skipped.
  void ForEachTenant(const std::function<bool(const TenantSubscriptions&)>& f);

  const catalog::Catalog& catalog() const { return catalog_; }

 private:
  struct Pending;  // events to record once the write succeeded
  using Op = std::function<Result<Effect>(TenantSubscriptions&, Pending&)>;
  Result<ChangeResult> Apply(std::string_view tenant, Instant created_at, const Op& op, bool write);
  Result<TenantSubscriptions> Load(std::string_view tenant, Instant created_at, bool* is_new);
  TenantSubscriptions NewTenant(std::string_view tenant, Instant created_at) const;
  caas::Status Save(TenantSubscriptions& t, bool is_new);
  // A versioned read-modify-write of a stored document; `f` returns false
  // when there is nothing to write. kNotFound when there is no document.
  caas::Status Update(std::string_view tenant, const std::function<bool(TenantSubscriptions&)>& f);
  Instant Now() const;

  // The steps every operation is made of.
  Result<Effect> DoChange(TenantSubscriptions& t, Pending& ev, const ChangeRequest& req,
                          std::string_view actor, bool admin, Instant now);
  Result<Effect> DoCancel(TenantSubscriptions& t, Pending& ev, bool now_flag,
                          std::string_view actor, Instant now);
  void Transition(TenantSubscriptions& t, const PlanRef& to_plan, State to_status,
                  std::string_view actor, std::string reason, Instant at);
  void StartNew(TenantSubscriptions& t, const PlanRef& plan, State status, Instant at,
                std::string_view actor, std::string reason, catalog::Schedule schedule);
  // A new period begins at `at` (its fee charged); `ended`: the period of
  // the same subscription that ended there, to be invoiced.
  void StartPeriod(TenantSubscriptions& t, Instant at, std::optional<Period> ended);
  void ChargePeriod(TenantSubscriptions& t, Instant at);
  void AddClosing(TenantSubscriptions& t, const std::string& sub, bool period_end, Period ended,
                  Instant at);
  void CloseChange(TenantSubscriptions& t, size_t lines_before, Instant now);
  void ChangeFee(TenantSubscriptions& t, const catalog::Terms& to, Instant at);
  void CreditUnused(TenantSubscriptions& t, Instant at);
  void AddLine(TenantSubscriptions& t, Line line);
  void Note(TenantSubscriptions& t, std::string_view actor, std::string reason, Instant at);
  catalog::Terms TermsOf(const TenantSubscriptions& t, const PlanRef& plan, State state) const;
  std::optional<Instant> NextDue(const TenantSubscriptions& t) const;
  Result<Effect> RunOne(TenantSubscriptions& t, Pending& ev, Instant at);
  void Notify(const TenantSubscriptions& t);

  storage::DocumentStore& store_;
  const Clock& clock_;
  IdGenerator& ids_;
  const catalog::Catalog& catalog_;
  std::vector<Observer> observers_;  // set up before use; read-only after
  std::function<std::optional<Instant>(std::string_view)> created_at_;
  std::function<std::string(std::string_view)> currency_of_;
  // Guard the read-modify-write of a subscription document in this process,
  // one stripe per tenant hash, so different tenants never wait for each
  // other's commit. Across processes the versioned Replace decides.
  std::mutex& LockFor(std::string_view tenant) {
    return stripes_[std::hash<std::string_view>{}(tenant) % stripes_.size()];
  }
  std::array<std::mutex, 64> stripes_;
  std::mutex cache_mu_;                             // guards cache_
  std::map<std::string, View, std::less<>> cache_;  // guarded by cache_mu_
};

}  // namespace caas::subscriptions
