#include "payments/stripe_gateway.h"

namespace caas::payments {
namespace {

std::string Str(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

int64_t Int(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_int64() ? v->as_int64() : 0;
}

// A call that did not succeed, as an error for the caller.
Error ErrorOf(const StripeResult& r, std::string_view field) {
  switch (r.outcome) {
    case StripeOutcome::kInvalidRequest:
      if (r.code == "resource_missing") {
        return Error{ErrorCode::kNotFound, "Stripe: " + r.message, std::string(field)};
      }
      return Error{ErrorCode::kInvalidArgument, "Stripe: " + r.message, std::string(field)};
    case StripeOutcome::kAuthentication:
      return Error::Make(ErrorCode::kUnavailable,
                         "Stripe refused our API key (check CAAS_BILLING_STRIPE_SECRET_KEY)");
    default:
      return Error::Make(ErrorCode::kUnavailable,
                         "Stripe: " + std::string(StripeOutcomeName(r.outcome)) +
                             (r.message.empty() ? "" : ": " + r.message));
  }
}

Card CardOf(const boost::json::object& pm) {
  Card c;
  c.id = Str(pm, "id");
  c.customer = Str(pm, "customer");
  if (const auto* card = pm.if_contains("card"); card && card->is_object()) {
    const auto& o = card->as_object();
    c.brand = Str(o, "brand");
    c.last4 = Str(o, "last4");
    c.fingerprint = Str(o, "fingerprint");
    c.exp_month = static_cast<int>(Int(o, "exp_month"));
    c.exp_year = static_cast<int>(Int(o, "exp_year"));
  }
  return c;
}

class StripeGateway final : public PaymentGateway {
 public:
  explicit StripeGateway(StripeOptions o) : client_(std::move(o)) {}
  std::string_view Name() const override { return "stripe"; }

  Result<std::string> CreateCustomer(std::string_view tenant, std::string_view email,
                                     std::string_view name) override {
    auto r = client_.Post("/v1/customers",
                          {{"email", std::string(email)},
                           {"name", std::string(name)},
                           {"metadata[tenant_id]", std::string(tenant)}},
                          "customer:" + std::string(tenant));
    if (!r.ok()) return ErrorOf(r, "tenant");
    return Str(r.object, "id");
  }

  Result<std::string> CreateSetupIntent(std::string_view customer, std::string_view tenant,
                                        int n) override {
    auto r = client_.Post("/v1/setup_intents",
                          {{"customer", std::string(customer)},
                           {"usage", "off_session"},
                           {"payment_method_types[0]", "card"},
                           {"metadata[tenant_id]", std::string(tenant)}},
                          "setup:" + std::string(tenant) + ":" + std::to_string(n));
    if (!r.ok()) return ErrorOf(r, "tenant");
    return Str(r.object, "client_secret");
  }

  Result<std::vector<Card>> ListCards(std::string_view customer) override {
    auto r = client_.Get("/v1/payment_methods",
                         {{"customer", std::string(customer)}, {"type", "card"}, {"limit", "100"}});
    if (!r.ok()) return ErrorOf(r, "tenant");
    std::vector<Card> out;
    if (const auto* data = r.object.if_contains("data"); data && data->is_array()) {
      for (const auto& pm : data->as_array()) {
        if (pm.is_object()) out.push_back(CardOf(pm.as_object()));
      }
    }
    return out;
  }

  Result<Card> GetCard(std::string_view payment_method) override {
    auto r = client_.Get("/v1/payment_methods/" + PercentEncode(payment_method));
    if (!r.ok()) return ErrorOf(r, "payment_method");
    return CardOf(r.object);
  }

  Status DetachCard(std::string_view payment_method) override {
    const std::string pm(payment_method);
    auto r =
        client_.Post("/v1/payment_methods/" + PercentEncode(pm) + "/detach", {}, "detach:" + pm);
    if (!r.ok()) return ErrorOf(r, "payment_method");
    return Status::Ok();
  }

  ChargeOutcome Charge(const OffSessionCharge& charge) override {
    return Outcome(CreateOffSessionPaymentIntent(client_, charge));
  }

  ChargeOutcome Retrieve(std::string_view payment_intent) override {
    return Outcome(client_.Get("/v1/payment_intents/" + PercentEncode(payment_intent)));
  }

 private:
  static ChargeOutcome Outcome(const StripeResult& r) {
    if (r.ok()) return OutcomeOfPaymentIntent(r.object);
    ChargeOutcome o;
    o.payment_intent = r.payment_intent_id;
    o.code = r.code;
    o.decline_code = r.decline_code;
    o.advice_code = r.advice_code;
    o.message = r.message;
    switch (r.outcome) {
      case StripeOutcome::kDeclined:
        o.kind = ChargeOutcome::Kind::kDeclined;
        break;
      case StripeOutcome::kAuthenticationRequired:
        o.kind = ChargeOutcome::Kind::kAuthenticationRequired;
        break;
      case StripeOutcome::kInvalidRequest:
      case StripeOutcome::kIdempotencyError:
      case StripeOutcome::kAuthentication:
        o.kind = ChargeOutcome::Kind::kFailed;
        o.message = std::string(StripeOutcomeName(r.outcome)) + ": " + r.message;
        break;
      default:
        o.kind = ChargeOutcome::Kind::kUnknown;
        break;  // settled later, same key
    }
    return o;
  }

  StripeClient client_;
};

}  // namespace

ChargeOutcome OutcomeOfPaymentIntent(const boost::json::object& pi) {
  ChargeOutcome o;
  o.payment_intent = Str(pi, "id");
  o.amount_received = Int(pi, "amount_received");
  const std::string status = Str(pi, "status");
  if (status == "succeeded") {
    o.kind = ChargeOutcome::Kind::kSucceeded;
  } else if (status == "processing") {
    o.kind = ChargeOutcome::Kind::kProcessing;
  } else if (status == "requires_action") {
    o.kind = ChargeOutcome::Kind::kAuthenticationRequired;
  } else if (status == "canceled") {
    o.kind = ChargeOutcome::Kind::kFailed;
    o.message = "the PaymentIntent was canceled";
  } else {  // requires_payment_method (after a decline), requires_confirmation
    o.kind = ChargeOutcome::Kind::kDeclined;
    if (const auto* e = pi.if_contains("last_payment_error"); e && e->is_object()) {
      o.code = Str(e->as_object(), "code");
      o.decline_code = Str(e->as_object(), "decline_code");
      o.advice_code = Str(e->as_object(), "advice_code");
      o.message = Str(e->as_object(), "message");
      if (o.code == "authentication_required")
        o.kind = ChargeOutcome::Kind::kAuthenticationRequired;
    }
  }
  return o;
}

std::unique_ptr<PaymentGateway> MakeStripeGateway(StripeOptions options) {
  return std::make_unique<StripeGateway>(std::move(options));
}

}  // namespace caas::payments
