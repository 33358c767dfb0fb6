#include "http/api.h"

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>

#include "core/log.h"
#include "core/text.h"
#include "http/json_input.h"
#include "http/problem.h"
#include "metering/metering.h"

namespace caas::http {
namespace json = boost::json;

namespace {

std::vector<std::string> Split(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    const size_t j = path.find('/', i);
    out.emplace_back(path.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
    if (j == std::string_view::npos) break;
    i = j;
  }
  return out;
}

bool IsRequestIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

std::string RequestIdFor(const Request& req, IdGenerator& ids) {
  std::string_view given = req.Header("x-request-id");
  if (!given.empty() && given.size() <= 128) {
    bool ok = true;
    for (char c : given) ok = ok && IsRequestIdChar(c);
    if (ok) return std::string(given);
  }
  return ids.Next("req");
}

// Adds the request id to a problem body so that a caller can quote it.
void StampProblem(Response& r, const std::string& request_id) {
  if (r.content_type != "application/problem+json") return;
  json::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec || !v.is_object()) return;
  v.as_object()["request_id"] = request_id;
  r.body = json::serialize(v);
}

}  // namespace

std::string_view Context::Param(std::string_view name) const {
  auto it = params.find(name);
  return it == params.end() ? std::string_view() : std::string_view(it->second);
}

std::string Context::NewId(std::string_view prefix) const {
  if (reserved_suffix.empty()) return ids.Next(prefix);
  return std::string(prefix) + "_" + reserved_suffix;
}

Api::Api(Services services) : s_(services), idempotency_(s_.store, s_.clock, s_.ids) {
  Add("GET", "/healthz", Access::kPublic, [](Context&) {
    return JsonResponse(200, json::object{{"status", "ok"}});
  });
  Add("GET", "/readyz", Access::kPublic, [this](Context&) {
    try {
      s_.store.Ping();
    } catch (const storage::StorageError& e) {
      return Problem(503, "unavailable", "Not ready",
                     std::string("the store cannot serve requests: ") + e.what());
    }
    if (s_.metering != nullptr) {
      if (auto error = s_.metering->WriteError()) {
        return Problem(503, "unavailable", "Not ready", *error);
      }
    }
    return JsonResponse(200, json::object{{"status", "ready"}});
  });
  Add("GET", "/metrics", Access::kPublic, [this](Context&) {
    Response r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = metrics_.Render();
    for (const auto& source : metric_sources_) r.body += source();
    return r;
  });
  AddTenantRoutes(*this, s_);
  AddMeteringRoutes(*this, s_);
  AddSubscriptionRoutes(*this, s_);
  AddJobRoutes(*this, s_);
  AddInvoiceRoutes(*this, s_);
  AddPaymentRoutes(*this, s_);
  unmatched_metric_ = metrics_.RegisterRoute("*", "unmatched");
}

void Api::Add(std::string method, std::string pattern, Access access, RouteHandler handler,
              bool log_success) {
  const size_t metric = metrics_.RegisterRoute(method, pattern);
  auto segments = Split(pattern);
  routes_.push_back(Route{std::move(method), std::move(pattern), std::move(segments), access,
                          std::move(handler), metric, log_success});
}

void Api::AddMetricsSource(std::function<std::string()> source) {
  metric_sources_.push_back(std::move(source));
}

std::vector<Api::RouteInfo> Api::Routes() const {
  std::vector<RouteInfo> out;
  for (const auto& r : routes_) out.push_back({r.method, r.pattern});
  return out;
}

Response Api::RenderTransportError(int status, const std::string& detail) {
  const std::string request_id = s_.ids.Next("req");
  Response res = ProblemForStatus(status, detail);
  StampProblem(res, request_id);
  res.headers.emplace_back("X-Request-Id", request_id);
  metrics_.Observe(unmatched_metric_, status, 0);
  Log(LogLevel::kInfo, "request rejected",
      {{"request_id", request_id}, {"status", static_cast<int64_t>(status)}, {"detail", detail}});
  return res;
}

Response Api::Handle(Request& req) {
  const auto start = std::chrono::steady_clock::now();
  const std::string request_id = RequestIdFor(req, s_.ids);
  size_t metric = unmatched_metric_;
  bool log_success = true;
  Response res;
  try {
    res = Dispatch(req, request_id, &metric, &log_success);
  } catch (const storage::CorruptDocument& e) {
    // Refused, named, and logged for the operator; other documents serve on.
    Log(LogLevel::kError, "corrupt_document",
        {{"request_id", request_id}, {"error", std::string_view(e.what())}});
    res = Problem(500, "stored-data-damaged", "Stored data is damaged",
                  std::string(e.what()) + "; it is not served until it is repaired");
  } catch (const storage::StorageError& e) {
    Log(LogLevel::kError, "storage failure",
        {{"request_id", request_id}, {"error", std::string_view(e.what())}});
    res = e.retryable() ? Problem(503, "unavailable", "Service unavailable",
                                  "the store is busy; retry the request")
                        : Problem(500, "internal", "Internal error", "an internal error occurred");
  } catch (const std::exception& e) {
    Log(LogLevel::kError, "unhandled exception",
        {{"request_id", request_id}, {"error", std::string_view(e.what())}});
    res = Problem(500, "internal", "Internal error", "an internal error occurred");
  }
  StampProblem(res, request_id);
  res.headers.emplace_back("X-Request-Id", request_id);
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  metrics_.Observe(metric, res.status, us);
  if (!log_success && res.status < 400) return res;
  Log(LogLevel::kInfo, "request",
      {{"request_id", request_id},
       {"method", req.method},
       {"path", req.path},
       {"status", static_cast<int64_t>(res.status)},
       {"duration_us", static_cast<int64_t>(us)}});
  return res;
}

Response Api::Dispatch(Request& req, const std::string& request_id, size_t* metric,
                       bool* log_success) {
  const auto segments = Split(req.path);
  const Route* match = nullptr;
  std::map<std::string, std::string, std::less<>> params;
  std::string allowed;
  for (const auto& r : routes_) {
    if (r.segments.size() != segments.size()) continue;
    std::map<std::string, std::string, std::less<>> p;
    bool ok = true;
    for (size_t i = 0; i < segments.size() && ok; ++i) {
      const std::string& want = r.segments[i];
      if (want.size() > 2 && want.front() == '{' && want.back() == '}') {
        if (segments[i].empty() || segments[i].size() > 128)
          ok = false;
        else
          p[want.substr(1, want.size() - 2)] = segments[i];
      } else {
        ok = want == segments[i];
      }
    }
    if (!ok) continue;
    if (r.method != req.method) {
      if (!allowed.empty()) allowed += ", ";
      allowed += r.method;
      continue;
    }
    match = &r;
    params = std::move(p);
    break;
  }
  if (match == nullptr) {
    if (!allowed.empty()) {
      Response r = ProblemForStatus(405, req.method + " is not allowed on " + req.path);
      r.headers.emplace_back("Allow", allowed);
      return r;
    }
    return ProblemForStatus(404, "no route for " + req.method + " " + req.path);
  }
  *metric = match->metric;
  *log_success = match->log_success;

  // Query parameters are single values: a repeat is an error, not a guess.
  for (size_t i = 0; i < req.query.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (req.query[i].first == req.query[j].first) {
        return ProblemFromError(Error::Invalid(std::string(TruncateUtf8(req.query[i].first, 64)),
                                               "is given more than once"));
      }
    }
  }
  Context ctx{req, std::move(params), {tenants::KeyKind::kTenant, "", ""}, request_id, "", s_.ids};
  if (match->access != Access::kPublic) {
    std::string_view auth = req.Header("authorization");
    if (auth.empty()) {
      Response r = Problem(401, "unauthenticated", "Authentication required",
                           "send an API key as 'Authorization: Bearer <key>'");
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"caas-billing\"");
      return r;
    }
    // The scheme is case-insensitive (RFC 9110 §11.1): "Bearer", "bearer".
    const size_t space = auth.find(' ');
    std::string scheme(auth.substr(0, space));
    for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (space == std::string_view::npos || scheme != "bearer") {
      Response r = Problem(401, "unauthenticated", "Authentication required",
                           "the Authorization header must use the Bearer scheme");
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"caas-billing\"");
      return r;
    }
    std::string_view token = auth.substr(space + 1);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    auto principal = s_.keys.Authenticate(token);
    if (!principal) {
      Response r = Problem(401, "unauthenticated", "Authentication required",
                           "the API key is not valid or was revoked");
      r.headers.emplace_back("WWW-Authenticate",
                             "Bearer realm=\"caas-billing\", error=\"invalid_token\"");
      return r;
    }
    ctx.principal = *principal;
    if (match->access == Access::kAdmin && !principal->IsAdmin()) {
      return Problem(403, "forbidden", "Forbidden", "this operation needs an admin API key");
    }
  }

  std::string_view idem_key = req.Header("idempotency-key");
  if (req.method == "POST" && req.HasHeader("idempotency-key") &&
      match->access != Access::kPublic) {
    auto outcome = idempotency_.Begin(ctx.principal.key_id, idem_key, req);
    if (outcome.answer) return std::move(*outcome.answer);
    ctx.reserved_suffix = outcome.claim->reserved_suffix;
    Response res;
    try {
      res = match->handler(ctx);
    } catch (...) {
      idempotency_.Finish(*outcome.claim, Problem(500, "internal", "Internal error", ""));
      throw;
    }
    StampProblem(res, request_id);
    idempotency_.Finish(*outcome.claim, res);
    return res;
  }
  return match->handler(ctx);
}

Response JsonResponse(int status, const json::value& body) {
  Response r;
  r.status = status;
  r.body = json::serialize(body);
  return r;
}

std::optional<Response> ReadPageParams(const Request& req, std::string_view prefix, PageParams* out,
                                       std::initializer_list<std::string_view> also) {
  if (const std::string* l = req.Query("limit")) {
    int v = 0;
    bool ok = !l->empty() && l->size() <= 3;
    for (char c : *l) ok = ok && c >= '0' && c <= '9';
    if (ok) v = std::stoi(*l);
    if (!ok || v < 1 || v > 100) {
      return ProblemFromError(Error::Invalid("limit", "must be an integer from 1 to 100"));
    }
    out->limit = v;
  }
  if (const std::string* s = req.Query("starting_after")) {
    if (!IsValidId(*s, prefix)) {
      return ProblemFromError(
          Error::Invalid("starting_after", "must be an id like " + std::string(prefix) + "_01J…"));
    }
    out->starting_after = *s;
  }
  for (const auto& [k, v] : req.query) {
    if (k != "limit" && k != "starting_after" &&
        std::find(also.begin(), also.end(), k) == also.end()) {
      return ProblemFromError(Error::Invalid(k, "is not a known query parameter"));
    }
  }
  return std::nullopt;
}

}  // namespace caas::http

namespace caas::http {

std::variant<json::object, Response> ReadJsonBody(const Request& req) {
  std::string_view ct = req.Header("content-type");
  const std::string_view media = ct.substr(0, ct.find(';'));
  if (media != "application/json") {
    return Problem(415, "unsupported-media-type", "Unsupported media type",
                   "send the body as application/json",
                   {Error::Invalid("Content-Type", "must be application/json")});
  }
  auto parsed = ParseJsonObject(req.body);
  if (!parsed) {
    return Problem(400, "malformed-json", "Malformed JSON", parsed.error().message);
  }
  return std::move(*parsed);
}

}  // namespace caas::http
