#include "subscriptions/timeline.h"

namespace caas::subscriptions {

const Currency& CurrencyOf(const catalog::Catalog& catalog, const TenantSubscriptions& t) {
  const Currency* c = t.currency.empty() ? nullptr : Currency::Find(t.currency);
  return c ? *c : catalog.currency();
}

std::optional<catalog::Terms> EffectiveTerms(const catalog::Catalog& catalog, const PlanRef& plan,
                                             State state, const std::optional<CustomTerms>& custom,
                                             const Currency& currency) {
  const catalog::PlanVersion* pv = catalog.Get(plan.id, plan.version);
  if (!pv) return std::nullopt;
  auto priced = pv->TermsIn(currency);
  if (!priced) return std::nullopt;  // no price in this currency (changes to it are refused)
  catalog::Terms terms = *priced;
  if (pv->custom && custom) {
    if (custom->base_fee) terms.base_fee = *custom->base_fee;
    for (const auto& [m, mt] : custom->metrics) terms.of(m) = mt;
  }
  if (state == State::kTrialing) terms = catalog::TrialTerms(terms);
  return terms;
}

namespace {
catalog::Terms TermsOrFree(const catalog::Catalog& catalog, const TenantSubscriptions& t,
                           const PlanRef& plan, State state) {
  auto terms = EffectiveTerms(catalog, plan, state, t.custom_terms, CurrencyOf(catalog, t));
  if (terms) return *terms;
  // A plan the catalog no longer has: bill nothing, limit as Free.
  return *catalog.Latest("free")->TermsIn(CurrencyOf(catalog, t));
}

catalog::Schedule FreshSchedule(Instant at, bool calendar) {
  return catalog::Schedule{at, at, calendar, std::nullopt};
}
}  // namespace

catalog::Segment CurrentSegment(const catalog::Catalog& catalog, const TenantSubscriptions& t,
                                Instant from) {
  return catalog::Segment{from, t.current.schedule,
                          TermsOrFree(catalog, t, t.current.plan, t.current.status)};
}

std::optional<catalog::Segment> ProjectNext(const catalog::Catalog& catalog,
                                            const TenantSubscriptions& t) {
  const Subscription& s = t.current;
  const catalog::PlanVersion* free = catalog.Latest("free");
  const PlanRef free_ref{free->id, free->version};
  if (s.status == State::kTrialing && s.schedule.trial_end) {
    const Instant end = *s.schedule.trial_end;
    if (t.has_payment_method) {
      return catalog::Segment{end, FreshSchedule(end, s.schedule.calendar),
                              TermsOrFree(catalog, t, s.plan, State::kActive)};
    }
    return catalog::Segment{end, FreshSchedule(end, s.schedule.calendar),
                            TermsOrFree(catalog, t, free_ref, State::kActive)};
  }
  if (s.cancel_at_period_end) {
    return catalog::Segment{s.period.end, FreshSchedule(s.period.end, s.schedule.calendar),
                            TermsOrFree(catalog, t, free_ref, State::kActive)};
  }
  if (s.scheduled_plan) {
    return catalog::Segment{s.period.end, s.schedule,
                            TermsOrFree(catalog, t, *s.scheduled_plan, s.status)};
  }
  return std::nullopt;
}

catalog::Timeline BuildTimeline(const catalog::Catalog& catalog, const TenantSubscriptions& t) {
  std::vector<catalog::Segment> segments = t.segments;
  if (auto next = ProjectNext(catalog, t)) {
    const catalog::Segment& last = segments.back();
    if (!(last.schedule == next->schedule && last.terms == next->terms)) {
      if (last.from == next->from) segments.pop_back();
      if (segments.empty() || segments.back().from < next->from) segments.push_back(*next);
    }
  }
  return catalog::Timeline(std::move(segments));
}

void SyncSegment(const catalog::Catalog& catalog, TenantSubscriptions& t, Instant at) {
  catalog::Segment seg = CurrentSegment(catalog, t, at);
  if (!t.segments.empty()) {
    catalog::Segment& last = t.segments.back();
    if (last.schedule == seg.schedule && last.terms == seg.terms) return;
    if (last.from >= at) {  // several changes at one instant: the last one stands
      last.schedule = seg.schedule;
      last.terms = seg.terms;
      // Collapse into an equal predecessor (a change undone at the same instant).
      if (t.segments.size() >= 2) {
        const catalog::Segment& prev = t.segments[t.segments.size() - 2];
        if (prev.schedule == last.schedule && prev.terms == last.terms) t.segments.pop_back();
      }
      return;
    }
  }
  t.segments.push_back(std::move(seg));
}

}  // namespace caas::subscriptions
