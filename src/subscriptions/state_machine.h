// The subscription state machine (docs/subscriptions.md, "States"):
//
//   trialing ──▶ active ◀──▶ past_due ──▶ suspended ──▶ active
//       │          │            │             │
//       └──────────┴────────────┴─────────────┴──▶ canceled (terminal)
#pragma once

#include "subscriptions/model.h"

namespace caas::subscriptions {

// True when a subscription in `from` may move to `to`. Staying in a state is
// allowed (a plan change or migration within it), except from canceled.
bool CanTransition(State from, State to);

}  // namespace caas::subscriptions
