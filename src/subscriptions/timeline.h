// A tenant's terms timeline, from its subscription document: the segments in
// force so far plus the next scheduled transition as it stands (a trial end,
// a downgrade or cancellation at period end). Metering records it and rates
// usage by it; it is pushed again after every change.
#pragma once

#include <optional>

#include "catalog/catalog.h"
#include "catalog/timeline.h"
#include "subscriptions/model.h"

namespace caas::subscriptions {

// The effective terms of `plan` in `state` for a tenant with `custom` terms:
// the catalog plan's, overridden by the tenant's own on a custom plan, and
// trial terms while trialing. nullopt when the catalog lacks the plan.
// The currency a tenant's subscription is priced in (the catalog's when the
// document predates currencies).
const Currency& CurrencyOf(const catalog::Catalog& catalog, const TenantSubscriptions& t);

std::optional<catalog::Terms> EffectiveTerms(const catalog::Catalog& catalog, const PlanRef& plan,
                                             State state, const std::optional<CustomTerms>& custom,
                                             const Currency& currency);

// The segment the current subscription's state puts in force from `from`.
catalog::Segment CurrentSegment(const catalog::Catalog& catalog, const TenantSubscriptions& t,
                                Instant from);

// The next scheduled transition that changes the segment, as it would
// happen if nothing changes before it.
std::optional<catalog::Segment> ProjectNext(const catalog::Catalog& catalog,
                                            const TenantSubscriptions& t);

// Realized segments plus the projection.
catalog::Timeline BuildTimeline(const catalog::Catalog& catalog, const TenantSubscriptions& t);

// Appends the current segment from `at` unless it is already in force
// (several changes at one instant leave one segment).
void SyncSegment(const catalog::Catalog& catalog, TenantSubscriptions& t, Instant at);

}  // namespace caas::subscriptions
