// The REST API: routing, authentication, idempotency, request ids, metrics and
// problem answers around the per-resource route files (*_routes.cc).
#pragma once

#include <boost/json/value.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "http/idempotency.h"
#include "http/message.h"
#include "http/metrics.h"
#include "storage/document_store.h"
#include "tenants/api_keys.h"
#include "tenants/tenant_service.h"

namespace caas::metering {
class MeteringEngine;
}
namespace caas::events {
class BillingEventRecorder;
}
namespace caas::subscriptions {
class SubscriptionService;
}
namespace caas::invoices {
class InvoiceService;
}
namespace caas::payments {
class PaymentService;
}
namespace caas::jobs {
class JobQueue;
class Scheduler;
}  // namespace caas::jobs

namespace caas::http {

enum class Access {
  kPublic,  // no key (health, metrics)
  kAnyKey,  // admin or tenant key; handlers scope tenant keys to their tenant
  kAdmin,   // admin keys only
};

struct Context {
  Request& request;
  std::map<std::string, std::string, std::less<>> params;  // from the route pattern
  tenants::Principal principal{tenants::KeyKind::kTenant, "", ""};
  std::string request_id;
  std::string reserved_suffix;  // set for POSTs with an Idempotency-Key
  IdGenerator& ids;

  std::string_view Param(std::string_view name) const;
  // A new id; the same one on every retry of an idempotent request.
  std::string NewId(std::string_view prefix) const;
};

using RouteHandler = std::function<Response(Context&)>;

struct Services {
  storage::DocumentStore& store;
  const Clock& clock;
  IdGenerator& ids;
  tenants::TenantService& tenants;
  tenants::ApiKeyService& keys;
  metering::MeteringEngine* metering = nullptr;                 // not needed to list routes
  events::BillingEventRecorder* billing_events = nullptr;       // idem
  subscriptions::SubscriptionService* subscriptions = nullptr;  // idem
  jobs::JobQueue* jobs = nullptr;                               // idem
  jobs::Scheduler* scheduler = nullptr;                         // idem
  ManualClock* manual_clock = nullptr;           // set when the server runs on a manual clock
  invoices::InvoiceService* invoices = nullptr;  // routes are added when set
  payments::PaymentService* payments = nullptr;  // idem
};

class Api {
 public:
  explicit Api(Services services);
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  // The server's handler: never throws.
  Response Handle(Request& req);
  // For answers the transport makes itself (413, 431, malformed HTTP): a
  // problem with a fresh request id, counted under the "unmatched" route.
  Response RenderTransportError(int status, const std::string& detail);

  struct RouteInfo {
    std::string method;
    std::string pattern;
  };
  std::vector<RouteInfo> Routes() const;

  // `log_success`: false for high-rate routes (ingest, quota checks), whose
  // successful requests are counted in /metrics but not logged one by one.
  void Add(std::string method, std::string pattern, Access access, RouteHandler handler,
           bool log_success = true);
  // More Prometheus text for GET /metrics (a module's own gauges/counters).
  void AddMetricsSource(std::function<std::string()> source);

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    Access access;
    RouteHandler handler;
    size_t metric;
    bool log_success;
  };
  Response Dispatch(Request& req, const std::string& request_id, size_t* metric, bool* log_success);

  Services s_;
  Idempotency idempotency_;
  Metrics metrics_;
  std::vector<Route> routes_;
  std::vector<std::function<std::string()>> metric_sources_;
  size_t unmatched_metric_;
};

// Helpers for route files.
Response JsonResponse(int status, const boost::json::value& body);
// Reads `limit` (1..100, default 10) and `starting_after` (an id with
// `prefix`); on bad input returns a problem. Query parameters other than
// these and `also` are refused.
struct PageParams {
  int limit = 10;
  std::string starting_after;
};
std::optional<Response> ReadPageParams(const Request& req, std::string_view prefix, PageParams* out,
                                       std::initializer_list<std::string_view> also = {});

void AddTenantRoutes(Api& api, Services s);
void AddMeteringRoutes(Api& api, Services s);
void AddSubscriptionRoutes(Api& api, Services s);
void AddJobRoutes(Api& api, Services s);
void AddInvoiceRoutes(Api& api, Services s);
void AddPaymentRoutes(Api& api, Services s);

}  // namespace caas::http

namespace caas::http {
// The body of a POST/PATCH as a JSON object, or the problem to answer
// (415 for another media type, 400 for malformed JSON).
std::variant<boost::json::object, Response> ReadJsonBody(const Request& req);
}  // namespace caas::http
