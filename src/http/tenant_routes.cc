// /v1/tenants and their API keys.
#include <boost/json.hpp>

#include "http/api.h"
#include "http/json_input.h"
#include "http/problem.h"
#include "subscriptions/subscriptions.h"

namespace caas::http {
namespace json = boost::json;

namespace {

// Reads tenant fields; `creating` makes name and billing_email required.
tenants::TenantFields ReadTenantFields(const json::object& body, bool creating,
                                       std::vector<Error>& errors) {
  tenants::TenantFields f;
  ObjectReader r(body, errors);
  f.name = r.String("name", creating);
  f.billing_email = r.String("billing_email", creating);
  f.tax_id = r.String("tax_id", false, /*null_ok=*/true);
  if (!f.tax_id && body.contains("tax_id") && body.at("tax_id").is_null()) f.tax_id = "";
  f.currency = r.String("currency", false);
  f.tax_mode = r.String("tax_mode", false);
  f.tax_rate = r.String("tax_rate", false);
  bool address_null = false;
  if (const json::object* a = r.Object("address", false, &address_null)) {
    ObjectReader ar(*a, errors, "address.");
    tenants::Address addr;
    addr.line1 = ar.String("line1", true).value_or("");
    addr.line2 = ar.String("line2", false, true).value_or("");
    addr.city = ar.String("city", true).value_or("");
    addr.state = ar.String("state", false, true).value_or("");
    addr.postal_code = ar.String("postal_code", false, true).value_or("");
    addr.country = ar.String("country", true).value_or("");
    ar.RejectUnknown();
    f.address = std::move(addr);
  }
  f.clear_address = address_null;
  r.RejectUnknown();
  return f;
}

// Adds the domain's validation errors for fields that had no type error.
void AddValidationErrors(const tenants::TenantFields& fields, bool creating,
                         std::vector<Error>& errors) {
  for (auto& e : tenants::ValidateTenantFields(fields, creating)) {
    bool seen = false;
    for (const auto& have : errors) seen = seen || have.field == e.field;
    if (!seen) errors.push_back(std::move(e));
  }
}

Response NoSuchTenant(std::string_view id) {
  return Problem(404, "not-found", "Not found", "no tenant " + std::string(id));
}

}  // namespace

void AddTenantRoutes(Api& api, Services s) {
  api.Add("POST", "/v1/tenants", Access::kAdmin, [s](Context& ctx) -> Response {
    auto body = ReadJsonBody(ctx.request);
    if (auto* problem = std::get_if<Response>(&body)) return std::move(*problem);
    std::vector<Error> errors;
    auto fields = ReadTenantFields(std::get<json::object>(body), true, errors);
    AddValidationErrors(fields, true, errors);
    if (!errors.empty()) return ProblemFromError(errors.front(), errors);
    auto t = s.tenants.Create(fields, ctx.NewId("tnt"));
    if (!t) return ProblemFromError(t.error());
    // Its Free subscription starts now: stored at once, so that its periods
    // close (and are invoiced) even if nothing else ever touches it. If
    // this write fails, the next start stores it (App).
    if (s.subscriptions) (void)s.subscriptions->Get(t->id, t->created_at);
    Response r = JsonResponse(201, TenantToJson(*t));
    r.headers.emplace_back("Location", "/v1/tenants/" + t->id);
    return r;
  });

  api.Add("GET", "/v1/tenants", Access::kAnyKey, [s](Context& ctx) -> Response {
    PageParams page;
    if (auto problem = ReadPageParams(ctx.request, "tnt", &page)) return std::move(*problem);
    json::array data;
    bool has_more = false;
    if (ctx.principal.IsAdmin()) {
      auto p = s.tenants.List(page.starting_after, page.limit);
      for (const auto& t : p.items) data.push_back(TenantToJson(t));
      has_more = p.has_more;
    } else if (page.starting_after < ctx.principal.tenant_id) {
      // A tenant key lists exactly its own tenant.
      if (auto t = s.tenants.Get(ctx.principal.tenant_id)) data.push_back(TenantToJson(*t));
    }
    json::object o{{"object", "list"}, {"has_more", has_more}};
    if (has_more && !data.empty()) {
      o["next_starting_after"] = data.back().as_object().at("id");
    }
    o["data"] = std::move(data);
    return JsonResponse(200, o);
  });

  api.Add("GET", "/v1/tenants/{id}", Access::kAnyKey, [s](Context& ctx) -> Response {
    const auto id = ctx.Param("id");
    if (!ctx.principal.MaySee(id)) return NoSuchTenant(id);
    auto t = s.tenants.Get(id);
    if (!t) return NoSuchTenant(id);
    return JsonResponse(200, TenantToJson(*t));
  });

  api.Add("PATCH", "/v1/tenants/{id}", Access::kAnyKey, [s](Context& ctx) -> Response {
    const auto id = ctx.Param("id");
    if (!ctx.principal.MaySee(id)) return NoSuchTenant(id);
    auto body = ReadJsonBody(ctx.request);
    if (auto* problem = std::get_if<Response>(&body)) return std::move(*problem);
    std::vector<Error> errors;
    auto fields = ReadTenantFields(std::get<json::object>(body), false, errors);
    if (fields.currency && !ctx.principal.IsAdmin()) {
      errors.push_back(Error::Invalid("currency", "can be changed only with an admin key"));
    } else if (fields.currency) {
      auto current = s.tenants.Get(id);
      if (current && current->currency != *fields.currency) {
        errors.push_back(
            Error::Invalid("currency",
                           "is fixed when the tenant is created: its subscription and invoices are "
                           "in it (no FX conversion)"));
      }
    }
    if (fields.tax_mode && !ctx.principal.IsAdmin()) {
      errors.push_back(Error::Invalid("tax_mode", "can be changed only with an admin key"));
    }
    if (fields.tax_rate && !ctx.principal.IsAdmin()) {
      errors.push_back(Error::Invalid("tax_rate", "can be changed only with an admin key"));
    }
    AddValidationErrors(fields, false, errors);
    if (!errors.empty()) return ProblemFromError(errors.front(), errors);
    auto t = s.tenants.Update(id, fields);
    if (!t) {
      if (t.error().code == ErrorCode::kNotFound) return NoSuchTenant(id);
      return ProblemFromError(t.error());
    }
    return JsonResponse(200, TenantToJson(*t));
  });

  api.Add("GET", "/v1/tenants/{id}/api_keys", Access::kAnyKey, [s](Context& ctx) -> Response {
    const auto id = ctx.Param("id");
    if (!ctx.principal.MaySee(id) || !s.tenants.Get(id)) return NoSuchTenant(id);
    json::array data;
    for (const auto& k : s.keys.ListForTenant(id)) data.push_back(tenants::ApiKeyToJson(k));
    return JsonResponse(200, json::object{{"object", "list"}, {"has_more", false}, {"data", data}});
  });

  api.Add("POST", "/v1/tenants/{id}/api_keys", Access::kAdmin, [s](Context& ctx) -> Response {
    const auto id = ctx.Param("id");
    if (!s.tenants.Get(id)) return NoSuchTenant(id);
    std::string name;
    if (!ctx.request.body.empty()) {
      auto body = ReadJsonBody(ctx.request);
      if (auto* problem = std::get_if<Response>(&body)) return std::move(*problem);
      std::vector<Error> errors;
      ObjectReader r(std::get<json::object>(body), errors);
      name = r.String("name", false).value_or("");
      r.RejectUnknown();
      if (!errors.empty()) return ProblemFromError(errors.front(), errors);
    }
    // A retried idempotent request must not mint a second secret: the replay
    // returns the first answer (which holds the secret) from the idempotency
    // record. Without an Idempotency-Key, every POST makes a new key.
    auto created = s.keys.Create(tenants::KeyKind::kTenant, id, name);
    if (!created) return ProblemFromError(created.error());
    json::object o = tenants::ApiKeyToJson(created->key);
    o["secret"] = created->secret;
    return JsonResponse(201, o);
  });

  api.Add("POST", "/v1/api_keys/{id}/revoke", Access::kAnyKey, [s](Context& ctx) -> Response {
    const auto id = ctx.Param("id");
    auto k = s.keys.Get(id);
    const auto not_found = Problem(404, "not-found", "Not found", "no API key " + std::string(id));
    if (!k) return not_found;
    if (!ctx.principal.IsAdmin() && k->tenant_id != ctx.principal.tenant_id) return not_found;
    auto revoked = s.keys.Revoke(id);
    if (!revoked) return ProblemFromError(revoked.error());
    return JsonResponse(200, tenants::ApiKeyToJson(*revoked));
  });
}

}  // namespace caas::http
