// Saved cards (/v1/tenants/{id}/payment-methods...), an invoice's payment
// attempts, and Stripe's webhooks (/v1/webhooks/stripe, public: the
// signature is the credential). A tenant key reaches only its own tenant.
// A SetupIntent's client secret is in the answer and nowhere else: never
// logged, never stored.
#include <boost/json.hpp>

#include "core/text.h"
#include "http/api.h"
#include "http/json_input.h"
#include "http/problem.h"
#include "payments/payments.h"

namespace caas::http {
namespace json = boost::json;
namespace pay = caas::payments;

namespace {

json::object CardJson(const pay::Card& c, bool is_default) {
  return {{"id", c.id},
          {"object", "card"},
          {"brand", c.brand},
          {"last4", c.last4},
          {"exp_month", c.exp_month},
          {"exp_year", c.exp_year},
          {"fingerprint", c.fingerprint},
          {"default", is_default}};
}

Response PaymentProblem(const Error& e) {
  if (e.code == ErrorCode::kFailedPrecondition) {
    return Problem(409, "payments-not-configured", "Card payments are not available", e.message);
  }
  if (e.code == ErrorCode::kUnavailable) {
    return Problem(503, "gateway-unavailable", "The payment gateway is unavailable", e.message);
  }
  return ProblemFromError(e);
}

// The tenant of the path, if the caller may act for it.
std::optional<Response> Reachable(const Services& s, const Context& ctx) {
  const auto id = ctx.Param("id");
  if (!IsValidId(id, "tnt")) return ProblemFromError(Error::Invalid("id", "must be a tenant id"));
  if (!ctx.principal.MaySee(id) || !s.tenants.Get(id)) {
    return Problem(404, "not-found", "Not found", "no tenant " + std::string(id));
  }
  return std::nullopt;
}

bool IsPaymentMethodId(std::string_view pm) {
  if (pm.size() < 4 || pm.size() > 100 || pm.rfind("pm_", 0) != 0) return false;
  for (const char c : pm) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

}  // namespace

void AddPaymentRoutes(Api& api, Services s) {
  api.Add("POST", "/v1/tenants/{id}/payment-methods/setup", Access::kAnyKey,
          [s](Context& ctx) -> Response {
            if (auto p = Reachable(s, ctx)) return std::move(*p);
            auto setup = s.payments->StartSetup(ctx.Param("id"));
            if (!setup) return PaymentProblem(setup.error());
            return JsonResponse(201, json::object{{"object", "setup_intent"},
                                                  {"customer", setup->customer},
                                                  {"client_secret", setup->client_secret}});
          });

  api.Add("GET", "/v1/tenants/{id}/payment-methods", Access::kAnyKey,
          [s](Context& ctx) -> Response {
            if (auto p = Reachable(s, ctx)) return std::move(*p);
            auto cards = s.payments->ListCards(ctx.Param("id"));
            if (!cards) return PaymentProblem(cards.error());
            const std::string def = cards->default_card ? cards->default_card->id : "";
            json::array data;
            for (const auto& c : cards->cards) data.push_back(CardJson(c, c.id == def));
            json::object o{{"object", "list"}, {"has_more", false}, {"data", std::move(data)}};
            o["default_payment_method"] = def.empty() ? json::value(nullptr) : json::value(def);
            return JsonResponse(200, o);
          });

  api.Add("POST", "/v1/tenants/{id}/payment-methods/default", Access::kAnyKey,
          [s](Context& ctx) -> Response {
            if (auto p = Reachable(s, ctx)) return std::move(*p);
            auto body = ReadJsonBody(ctx.request);
            if (auto* problem = std::get_if<Response>(&body)) return std::move(*problem);
            std::vector<Error> errors;
            ObjectReader rd(std::get<json::object>(body), errors);
            const auto pm = rd.String("payment_method", true);
            rd.RejectUnknown();
            if (pm && !IsPaymentMethodId(*pm)) {
              errors.push_back(Error::Invalid("payment_method", "must be a pm_ id"));
            }
            if (!errors.empty()) return ProblemFromError(errors.front(), errors);
            auto card = s.payments->SetDefault(ctx.Param("id"), *pm);
            if (!card) return PaymentProblem(card.error());
            return JsonResponse(200, CardJson(*card, true));
          });

  api.Add("DELETE", "/v1/tenants/{id}/payment-methods/{pm}", Access::kAnyKey,
          [s](Context& ctx) -> Response {
            if (auto p = Reachable(s, ctx)) return std::move(*p);
            const auto pm = ctx.Param("pm");
            if (!IsPaymentMethodId(pm)) {
              return ProblemFromError(Error::Invalid("pm", "must be a pm_ id"));
            }
            Status d = s.payments->Detach(ctx.Param("id"), pm);
            if (!d) return PaymentProblem(d.error());
            return JsonResponse(200, json::object{{"id", std::string(pm)}, {"deleted", true}});
          });

  api.Add(
      "GET", "/v1/invoices/{id}/payment-attempts", Access::kAnyKey, [s](Context& ctx) -> Response {
        const auto id = ctx.Param("id");
        if (!IsValidId(id, "in")) {
          return ProblemFromError(Error::Invalid("id", "must be an invoice id"));
        }
        auto i = s.invoices->Get(id);
        if (!i || !ctx.principal.MaySee(i->tenant)) {
          return Problem(404, "not-found", "Not found", "no invoice " + std::string(id));
        }
        json::array data;
        for (const auto& a : s.payments->Attempts(id)) data.push_back(pay::AttemptToJson(a));
        return JsonResponse(
            200, json::object{{"object", "list"}, {"has_more", false}, {"data", std::move(data)}});
      });

  // Stripe's webhooks: verified on the raw bytes before anything is parsed.
  // A bad signature answers 400 (Stripe shows it in the dashboard and
  // retries); a duplicate answers 200 and does nothing.
  api.Add("POST", "/v1/webhooks/stripe", Access::kPublic, [s](Context& ctx) -> Response {
    auto r = s.payments->HandleWebhook(ctx.request.Header("stripe-signature"), ctx.request.body);
    if (!r) {
      if (r.error().code == ErrorCode::kUnauthenticated) {
        return Problem(400, "bad-signature", "The webhook signature is not valid",
                       r.error().message, {r.error()});
      }
      return PaymentProblem(r.error());
    }
    return JsonResponse(200, json::object{{"received", true},
                                          {"id", r->event_id},
                                          {"type", r->type},
                                          {"duplicate", r->duplicate}});
  });
}

}  // namespace caas::http
