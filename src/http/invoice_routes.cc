// /v1/invoices…, /v1/credit_notes and /v1/tenants/{id}/invoices/upcoming.
// Tenant keys see only their own tenant's documents; a document of another
// tenant answers 404, as if it did not exist.
#include <boost/json.hpp>

#include "core/text.h"
#include "http/api.h"
#include "http/json_input.h"
#include "http/problem.h"
#include "invoices/codec.h"
#include "invoices/invoices.h"
#include "jobs/scheduler.h"

namespace caas::http {
namespace json = boost::json;
namespace inv = caas::invoices;

namespace {

Response NotFound(std::string_view what, std::string_view id) {
  return Problem(404, "not-found", "Not found", "no " + std::string(what) + " " + std::string(id));
}

Response InvoiceProblem(const Error& e) {
  if (e.code == ErrorCode::kFailedPrecondition) {
    return Problem(409, "invoice-state", "Not allowed in this state", e.message);
  }
  return ProblemFromError(e);
}

json::object ListJson(const inv::InvoiceService::ListPage& p) {
  json::array data;
  for (const auto& i : p.items) data.push_back(inv::InvoiceToJson(i, false));
  json::object o{{"object", "list"}, {"has_more", p.has_more}};
  if (p.has_more && !p.items.empty()) o["next_starting_after"] = p.items.back().id;
  o["data"] = std::move(data);
  return o;
}

// The invoice `id` if the caller may see it.
std::variant<inv::Invoice, Response> Visible(const Services& s, const Context& ctx,
                                             std::string_view id) {
  if (!IsValidId(id, "in")) return ProblemFromError(Error::Invalid("id", "must be an invoice id"));
  auto i = s.invoices->Get(id);
  if (!i) {
    if (i.error().code == ErrorCode::kNotFound) return NotFound("invoice", id);
    return ProblemFromError(i.error());
  }
  if (!ctx.principal.MaySee(i->tenant)) return NotFound("invoice", id);
  return std::move(*i);
}

}  // namespace

void AddInvoiceRoutes(Api& api, Services s) {
  api.Add("GET", "/v1/invoices", Access::kAnyKey, [s](Context& ctx) -> Response {
    PageParams page;
    if (auto problem = ReadPageParams(ctx.request, "in", &page, {"tenant", "status", "period"})) {
      return std::move(*problem);
    }
    inv::InvoiceService::Filter f;
    if (const std::string* t = ctx.request.Query("tenant")) {
      if (!IsValidId(*t, "tnt")) {
        return ProblemFromError(Error::Invalid("tenant", "must be a tenant id"));
      }
      f.tenant = *t;
    }
    if (!ctx.principal.IsAdmin()) {
      if (!f.tenant.empty() && !ctx.principal.MaySee(f.tenant)) {
        return JsonResponse(200, ListJson({}));
      }
      f.tenant = ctx.principal.tenant_id;
    }
    if (const std::string* v = ctx.request.Query("status")) {
      f.status = inv::ParseStatus(*v);
      if (!f.status) {
        return ProblemFromError(
            Error::Invalid("status", "must be one of draft, finalized, paid, void, uncollectible"));
      }
    }
    if (const std::string* v = ctx.request.Query("period")) {
      auto at = ParseRfc3339(*v);
      if (!at) {
        return ProblemFromError(Error::Invalid(
            "period", "must be an RFC 3339 instant inside the period, like 2026-03-15T00:00:00Z"));
      }
      f.period_at = *at;
    }
    return JsonResponse(200, ListJson(s.invoices->List(f, page.starting_after, page.limit)));
  });

  api.Add("GET", "/v1/invoices/{id}", Access::kAnyKey, [s](Context& ctx) -> Response {
    const auto id = ctx.Param("id");
    if (!IsValidId(id, "in"))
      return ProblemFromError(Error::Invalid("id", "must be an invoice id"));
    auto t = s.invoices->GetApiText(id);
    if (!t) {
      if (t.error().code == ErrorCode::kNotFound) return NotFound("invoice", id);
      return ProblemFromError(t.error());
    }
    if (!ctx.principal.MaySee(t->tenant)) return NotFound("invoice", id);
    Response r;
    r.body = std::move(t->json);
    return r;
  });

  api.Add("GET", "/v1/invoices/{id}/lines/{n}/usage", Access::kAnyKey,
          [s](Context& ctx) -> Response {
            auto r = Visible(s, ctx, ctx.Param("id"));
            if (auto* p = std::get_if<Response>(&r)) return std::move(*p);
            const std::string_view n = ctx.Param("n");
            if (n.empty() || n.size() > 4 || n.find_first_not_of("0123456789") != n.npos) {
              return ProblemFromError(Error::Invalid("n", "must be a line index from 0"));
            }
            auto u = s.invoices->LineUsage(ctx.Param("id"), std::stoul(std::string(n)));
            if (!u) return ProblemFromError(u.error());
            return JsonResponse(200, *u);
          });

  api.Add("POST", "/v1/invoices/{id}/finalize", Access::kAdmin, [s](Context& ctx) -> Response {
    auto r = Visible(s, ctx, ctx.Param("id"));
    if (auto* p = std::get_if<Response>(&r)) return std::move(*p);
    auto f = s.invoices->Finalize(ctx.Param("id"), ctx.principal.key_id);
    if (!f) return InvoiceProblem(f.error());
    return JsonResponse(200, inv::InvoiceToJson(*f, false));
  });

  api.Add("POST", "/v1/invoices/{id}/void", Access::kAdmin, [s](Context& ctx) -> Response {
    auto r = Visible(s, ctx, ctx.Param("id"));
    if (auto* p = std::get_if<Response>(&r)) return std::move(*p);
    std::string reason;
    if (!ctx.request.body.empty()) {
      auto body = ReadJsonBody(ctx.request);
      if (auto* problem = std::get_if<Response>(&body)) return std::move(*problem);
      std::vector<Error> errors;
      ObjectReader rd(std::get<json::object>(body), errors);
      reason = rd.String("reason", false).value_or("");
      rd.RejectUnknown();
      if (reason.size() > 500) errors.push_back(Error::Invalid("reason", "at most 500 characters"));
      if (!errors.empty()) return ProblemFromError(errors.front(), errors);
    }
    auto v = s.invoices->Void(ctx.Param("id"), ctx.principal.key_id, reason);
    if (!v) return InvoiceProblem(v.error());
    return JsonResponse(200, inv::InvoiceToJson(*v, false));
  });

  // An operator records a payment received outside any gateway (a bank
  // transfer): partial payments add up; an overpayment is refused.
  api.Add("POST", "/v1/invoices/{id}/payments", Access::kAdmin, [s](Context& ctx) -> Response {
    auto r = Visible(s, ctx, ctx.Param("id"));
    if (auto* p = std::get_if<Response>(&r)) return std::move(*p);
    const inv::Invoice& current = std::get<inv::Invoice>(r);
    auto body = ReadJsonBody(ctx.request);
    if (auto* problem = std::get_if<Response>(&body)) return std::move(*problem);
    std::vector<Error> errors;
    ObjectReader rd(std::get<json::object>(body), errors);
    const auto amount = rd.String("amount", true);
    const auto currency = rd.String("currency", false);
    const auto method = rd.String("method", true);
    const auto reference = rd.String("reference", false);
    rd.RejectUnknown();
    inv::InvoiceService::PaymentIn in{Money(0, *current.currency), "", ""};
    if (currency && *currency != current.currency->code) {
      errors.push_back(Error::Invalid(
          "currency", "must be the invoice's currency, " + std::string(current.currency->code)));
    }
    if (amount) {
      auto m = Money::Parse(*amount, *current.currency);
      if (!m || m->amount_minor() <= 0) {
        errors.push_back(Error::Invalid("amount", "must be a positive amount string in " +
                                                      std::string(current.currency->code) +
                                                      ", e.g. \"99.00\""));
      } else {
        in.amount = *m;
      }
    }
    if (method) {
      if (*method != "bank_transfer" && *method != "check" && *method != "cash" &&
          *method != "other") {
        errors.push_back(
            Error::Invalid("method", "must be one of bank_transfer, check, cash, other"));
      } else {
        in.method = *method;
      }
    }
    if (reference) {
      if (reference->size() > 200 || HasControlCharacters(*reference)) {
        errors.push_back(
            Error::Invalid("reference", "at most 200 bytes of text without control characters"));
      } else {
        in.reference = *reference;
      }
    }
    if (!errors.empty()) return ProblemFromError(errors.front(), errors);
    auto paid = s.invoices->RecordPayment(ctx.Param("id"), in, ctx.principal.key_id);
    if (!paid) return InvoiceProblem(paid.error());
    return JsonResponse(201, inv::InvoiceToJson(*paid, false));
  });

  for (const bool cn : {false, true}) {
    api.Add(
        "GET", cn ? "/v1/credit_notes/{id}/pdf" : "/v1/invoices/{id}/pdf", Access::kAnyKey,
        [s, cn](Context& ctx) -> Response {
          const auto id = ctx.Param("id");
          if (!IsValidId(id, cn ? "cn" : "in")) {
            return ProblemFromError(
                Error::Invalid("id", cn ? "must be a credit note id" : "must be an invoice id"));
          }
          auto doc = cn ? s.invoices->GetCreditNote(id) : s.invoices->Get(id);
          if (!doc || !ctx.principal.MaySee(doc->tenant)) {
            if (!doc && doc.error().code != ErrorCode::kNotFound) {
              return ProblemFromError(doc.error());
            }
            return NotFound(cn ? "credit note" : "invoice", id);
          }
          auto pdf = s.invoices->Pdf(id, cn);
          if (!pdf) return ProblemFromError(pdf.error());
          Response r;
          r.status = 200;
          r.content_type = "application/pdf";
          r.body = std::move(*pdf);
          const std::string name = doc->number.empty() ? doc->id : doc->number;
          r.headers.emplace_back("Content-Disposition", "inline; filename=\"" + name + ".pdf\"");
          return r;
        });
  }

  api.Add("POST", "/v1/invoices/{id}/send", Access::kAdmin, [s](Context& ctx) -> Response {
    auto r = Visible(s, ctx, ctx.Param("id"));
    if (auto* p = std::get_if<Response>(&r)) return std::move(*p);
    auto j = s.invoices->Send(ctx.Param("id"), false);
    if (!j) return InvoiceProblem(j.error());
    if (s.scheduler) s.scheduler->Wake();
    return JsonResponse(
        202, json::object{
                 {"object", "send"}, {"invoice", std::string(ctx.Param("id"))}, {"job", j->id}});
  });

  // Period close on demand (the scheduler closes at each period end).
  api.Add("POST", "/v1/invoices/close", Access::kAdmin, [s](Context& ctx) -> Response {
    std::string tenant;
    Instant at = s.clock.Now();
    if (!ctx.request.body.empty()) {
      auto body = ReadJsonBody(ctx.request);
      if (auto* problem = std::get_if<Response>(&body)) return std::move(*problem);
      std::vector<Error> errors;
      ObjectReader rd(std::get<json::object>(body), errors);
      tenant = rd.String("tenant", false).value_or("");
      auto at_text = rd.String("at", false);
      rd.RejectUnknown();
      if (!tenant.empty() && !IsValidId(tenant, "tnt")) {
        errors.push_back(Error::Invalid("tenant", "must be a tenant id"));
      }
      if (at_text) {
        auto t = ParseRfc3339(*at_text);
        if (!t) {
          errors.push_back(Error::Invalid("at", "must be an RFC 3339 date-time"));
        } else if (*t > s.clock.Now()) {
          errors.push_back(
              Error::Invalid("at", "is in the future: only periods that ended can be closed"));
        } else {
          at = *t;
        }
      }
      if (!errors.empty()) return ProblemFromError(errors.front(), errors);
    }
    auto made = s.invoices->Close(tenant, at);
    if (!made) {
      if (made.error().code == ErrorCode::kNotFound) return NotFound("tenant", tenant);
      return ProblemFromError(made.error());
    }
    json::array data;
    for (const auto& i : *made) data.push_back(inv::InvoiceToJson(i, false));
    return JsonResponse(200, json::object{{"object", "list"}, {"data", data}});
  });

  api.Add("GET", "/v1/tenants/{id}/invoices/upcoming", Access::kAnyKey,
          [s](Context& ctx) -> Response {
            const auto id = ctx.Param("id");
            if (!ctx.principal.MaySee(id)) return NotFound("tenant", id);
            auto u = s.invoices->Upcoming(id);
            if (!u) {
              if (u.error().code == ErrorCode::kNotFound) return NotFound("tenant", id);
              return InvoiceProblem(u.error());
            }
            json::object o = inv::InvoiceToJson(*u, false);
            o["id"] = nullptr;
            o["object"] = "upcoming_invoice";
            return JsonResponse(200, o);
          });

  api.Add("GET", "/v1/credit_notes", Access::kAnyKey, [s](Context& ctx) -> Response {
    PageParams page;
    if (auto problem = ReadPageParams(ctx.request, "cn", &page, {"tenant"})) {
      return std::move(*problem);
    }
    std::string tenant;
    if (const std::string* t = ctx.request.Query("tenant")) {
      if (!IsValidId(*t, "tnt")) {
        return ProblemFromError(Error::Invalid("tenant", "must be a tenant id"));
      }
      tenant = *t;
    }
    if (!ctx.principal.IsAdmin()) {
      if (!tenant.empty() && !ctx.principal.MaySee(tenant)) return JsonResponse(200, ListJson({}));
      tenant = ctx.principal.tenant_id;
    }
    return JsonResponse(
        200, ListJson(s.invoices->ListCreditNotes(tenant, page.starting_after, page.limit)));
  });

  api.Add("GET", "/v1/credit_notes/{id}", Access::kAnyKey, [s](Context& ctx) -> Response {
    const auto id = ctx.Param("id");
    if (!IsValidId(id, "cn")) {
      return ProblemFromError(Error::Invalid("id", "must be a credit note id"));
    }
    auto c = s.invoices->GetCreditNote(id);
    if (!c || !ctx.principal.MaySee(c->tenant)) {
      if (!c && c.error().code != ErrorCode::kNotFound) return ProblemFromError(c.error());
      return NotFound("credit note", id);
    }
    return JsonResponse(200, inv::InvoiceToJson(*c, false));
  });
}

}  // namespace caas::http
