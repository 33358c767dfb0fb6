// The subscription aggregate: one document per tenant holding its current
// subscription, the ones before it, the audit trail, the terms timeline, the
// fee charges of the current period and the lines waiting for an invoice.
// Plain data; the rules live in state_machine.h, proration.h, timeline.h and
// the service (subscriptions.h).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/terms.h"
#include "catalog/timeline.h"
#include "core/money.h"
#include "core/time.h"
#include "events/billing_events.h"

namespace caas::subscriptions {

enum class State { kTrialing, kActive, kPastDue, kSuspended, kCanceled };
std::string_view StateName(State s);
std::optional<State> ParseState(std::string_view s);

struct PlanRef {
  std::string id;
  int version = 1;
  bool operator==(const PlanRef&) const = default;
};

// Per-tenant terms of a custom (Enterprise) plan; what is absent falls back
// to the catalog plan's.
struct CustomTerms {
  std::optional<Money> base_fee;
  std::map<catalog::Metric, catalog::MetricTerms> metrics;
  bool operator==(const CustomTerms&) const = default;
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

// kCredit: what a negative invoice left over (its subtotal), carried to the
// tenant's next invoice.
enum class LineKind { kBaseFee, kProrationCredit, kProrationCharge, kCredit };
std::string_view LineKindName(LineKind k);
std::optional<LineKind> ParseLineKind(std::string_view s);

// How a proration line was computed: amount = round(of_amount × seconds /
// of_seconds), half away from zero; negative for credits.
struct Proration {
  int64_t seconds = 0;
  int64_t of_seconds = 0;
  int64_t of_amount_minor = 0;  // a charge: the monthly fee; a credit: the charge credited
  std::string of_line;          // a credit: the id of the line that charged it
};

// A line waiting for an invoice (the invoices module takes them).
struct Line {
  std::string id;  // ii_…
  LineKind kind = LineKind::kBaseFee;
  std::string description;
  Money amount{0, Currency::Usd()};  // credits are negative
  Period period;                     // the span it covers
  Instant created_at;
  PlanRef plan;  // the plan it is for
  std::optional<Proration> proration;
};

// A fee charged for a span of the current period. A credit is always taken
// from the charge that covers it, never from a price: it is at most the part
// of that charge that is left.
struct FeeCharge {
  std::string line;  // the line that charged it (empty when it rounded to 0)
  Period span;
  int64_t amount_minor = 0;
  bool credited = false;  // its unused part was credited; nothing is left
};

// A billing boundary waiting for its invoice (the invoices module turns it
// into one, then removes it with the lines it took): written in the same
// atomic write as the transition that made it, so no boundary is missed or
// invoiced twice, whatever crashes in between (docs/invoices.md).
struct Closing {
  std::string invoice;             // in_…: the id of the invoice it becomes
  std::string subscription;        // sub_…
  bool period_end = true;          // a period ended; false: a change invoiced at once
  Period period;                   // period_end: the period whose usage it bills
  Instant at;                      // the boundary
  std::vector<std::string> lines;  // the pending lines it takes (ids)
};

struct Subscription {
  std::string id;  // sub_…
  PlanRef plan;
  State status = State::kActive;
  Instant started_at;
  catalog::Schedule schedule;  // how its periods repeat (reset by a trial conversion)
  Period period;               // the current one
  bool trial_reminder_sent = false;
  bool cancel_at_period_end = false;
  std::optional<PlanRef> scheduled_plan;  // a change taking effect at period end
  std::optional<Instant> ended_at;
  std::vector<FeeCharge> charges;  // in the current period, in order
};

struct TenantSubscriptions {
  std::string tenant;
  std::string currency;  // ISO 4217, fixed when the document is created (empty: the catalog's)
  Subscription current;
  std::vector<Subscription> previous;  // ended, oldest first
  std::vector<AuditEntry> audit;
  std::vector<Line> pending_lines;
  std::vector<Closing> closings;  // oldest first
  // Invoices whose negative balance was carried into pending_lines (once each).
  std::vector<std::string> credits_from;
  // The terms in force so far, one segment per change (the timeline without
  // its projected next transition; see BuildTimeline).
  std::vector<catalog::Segment> segments;
  bool trial_used = false;
  bool has_payment_method = false;  // set by the payments module (or an admin) later
  std::optional<CustomTerms> custom_terms;
  std::map<std::string, bool> feature_overrides;
  // Billing events written with the change that caused them, waiting for the
  // relay to publish them (events/billing_events.h).
  std::vector<events::BillingEvent> outbox;
  int64_t doc_version = 0;
};

enum class When { kNow, kPeriodEnd };
enum class Anchor { kAnniversary, kCalendar };

struct ChangeRequest {
  std::string plan;                      // target plan id
  std::optional<When> at;                // default: now for upgrades, period end otherwise
  bool trial = false;                    // start the plan's trial instead of paying now
  std::optional<Anchor> billing_anchor;  // re-anchor; only when leaving a free plan now
};

enum class Effect {
  kNone,
  kUpgraded,
  kDowngraded,
  kUpgradeScheduled,
  kDowngradeScheduled,
  kDowngradeCanceled,
  kTrialStarted,
  kTrialConverted,
  kCancelScheduled,
  kCanceled,
  kReactivated,
  kTermsUpdated,
  kPaymentMethodUpdated,
};
std::string_view EffectName(Effect e);

struct ChangeResult {
  Effect effect = Effect::kNone;
  std::vector<Line> lines;  // the lines this change created
  TenantSubscriptions state;
};

struct Entitlements {
  std::string plan;
  int plan_version;
  State status;
  Period period;
  std::map<std::string, bool> features;
  catalog::Terms terms;
};

}  // namespace caas::subscriptions
