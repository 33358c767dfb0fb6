// The API's JSON for subscriptions, lines, terms and timelines (the public
// schema in api/openapi.yaml; the stored form is subscriptions/codec.h).
#pragma once

#include <boost/json/object.hpp>

#include "catalog/catalog.h"
#include "catalog/timeline.h"
#include "subscriptions/model.h"

namespace caas::http {

boost::json::object MoneyJson(const Money& m);
boost::json::object LineJson(const subscriptions::Line& l);
boost::json::object MetricTermsJson(catalog::Metric m, const catalog::MetricTerms& t);
boost::json::object TermsJson(const catalog::Terms& t);
boost::json::array TimelineJson(const catalog::Timeline& t);
boost::json::object SubscriptionsJson(const subscriptions::TenantSubscriptions& t,
                                      const catalog::Catalog& catalog,
                                      const catalog::Timeline& timeline);

}  // namespace caas::http
