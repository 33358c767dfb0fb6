// The PaymentGateway port: where card payments come from. Two adapters:
// - manual (the embedded default, no Stripe key): tenants pay by bank
//   transfer and an operator records each payment
//   (POST /v1/invoices/{id}/payments); every card operation answers
//   kFailedPrecondition saying so;
// - stripe (CAAS_BILLING_STRIPE_SECRET_KEY): Stripe's API through
//   StripeClient (stripe_gateway.h).
// Card data never passes through here: a card is saved in the browser with
// Stripe Elements against a SetupIntent's client secret, and we see only its
// pm_ id, brand, last4, expiry and fingerprint (docs/pci.md).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "payments/charge.h"

namespace caas::payments {

struct Card {
  std::string id;  // pm_...
  std::string brand, last4, fingerprint;
  int exp_month = 0, exp_year = 0;
  std::string customer;  // the customer it is attached to ("" when detached)
};

struct ChargeOutcome {
  enum class Kind {
    kSucceeded,               // the money is taken
    kProcessing,              // the webhook will tell
    kDeclined,                // code, decline_code, advice_code say why
    kAuthenticationRequired,  // the tenant must confirm on-session
    kFailed,                  // refused for another reason (message)
    kUnknown,                 // no answer: settled later under the same attempt
  };
  Kind kind = Kind::kUnknown;
  std::string payment_intent;  // pi_... when known
  int64_t amount_received = 0;
  std::string code, decline_code, advice_code, message;
};
std::string_view ChargeKindName(ChargeOutcome::Kind k);

class PaymentGateway {
 public:
  virtual ~PaymentGateway() = default;
  virtual std::string_view Name() const = 0;  // "manual" or "stripe"

  // The customer for a tenant, created once (the tenant id makes the key).
  virtual Result<std::string> CreateCustomer(std::string_view tenant, std::string_view email,
                                             std::string_view name) = 0;
  // A SetupIntent for saving a card off-session; returns its client secret,
  // which goes to the browser and nowhere else. `n` numbers the tenant's
  // setups (part of the idempotency key).
  virtual Result<std::string> CreateSetupIntent(std::string_view customer, std::string_view tenant,
                                                int n) = 0;
  virtual Result<std::vector<Card>> ListCards(std::string_view customer) = 0;
  virtual Result<Card> GetCard(std::string_view payment_method) = 0;
  virtual Status DetachCard(std::string_view payment_method) = 0;
  // Charges off-session under the key of (invoice, attempt): the same
  // attempt never charges twice, however often it is sent.
  virtual ChargeOutcome Charge(const OffSessionCharge& charge) = 0;
  // The current state of a PaymentIntent.
  virtual ChargeOutcome Retrieve(std::string_view payment_intent) = 0;
};

std::unique_ptr<PaymentGateway> MakeManualGateway();

}  // namespace caas::payments
