#include "subscriptions/state_machine.h"

namespace caas::subscriptions {

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

std::string_view LineKindName(LineKind k) {
  switch (k) {
    case LineKind::kBaseFee:
      return "base_fee";
    case LineKind::kProrationCredit:
      return "proration_credit";
    case LineKind::kProrationCharge:
      return "proration_charge";
    case LineKind::kCredit:
      return "credit";
  }
  return "base_fee";
}

std::optional<LineKind> ParseLineKind(std::string_view s) {
  for (auto k : {LineKind::kBaseFee, LineKind::kProrationCredit, LineKind::kProrationCharge,
                 LineKind::kCredit}) {
    if (LineKindName(k) == s) return k;
  }
  return std::nullopt;
}

std::string_view EffectName(Effect e) {
  switch (e) {
    case Effect::kNone:
      return "none";
    case Effect::kUpgraded:
      return "upgraded";
    case Effect::kDowngraded:
      return "downgraded";
    case Effect::kUpgradeScheduled:
      return "upgrade_scheduled";
    case Effect::kDowngradeScheduled:
      return "downgrade_scheduled";
    case Effect::kDowngradeCanceled:
      return "downgrade_canceled";
    case Effect::kTrialStarted:
      return "trial_started";
    case Effect::kTrialConverted:
      return "trial_converted";
    case Effect::kCancelScheduled:
      return "cancel_scheduled";
    case Effect::kCanceled:
      return "canceled";
    case Effect::kReactivated:
      return "reactivated";
    case Effect::kTermsUpdated:
      return "terms_updated";
    case Effect::kPaymentMethodUpdated:
      return "payment_method_updated";
  }
  return "none";
}

bool CanTransition(State from, State to) {
  if (from == State::kCanceled) return false;  // terminal
  if (to == State::kCanceled) return true;     // any live subscription can end
  if (from == to) return true;                 // a plan change or migration within one state
  switch (from) {
    case State::kTrialing:
      return to == State::kActive;
    case State::kActive:
      return to == State::kPastDue;
    case State::kPastDue:
      return to == State::kActive || to == State::kSuspended;
    case State::kSuspended:
      return to == State::kActive;
    case State::kCanceled:
      return false;
  }
  return false;
}

}  // namespace caas::subscriptions
