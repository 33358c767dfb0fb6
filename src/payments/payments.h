// Card payments of invoices: the tenant's Stripe customer and saved cards,
// the charging of finalized invoices (a job per invoice), and the webhooks
// that move payment state forward.
//
// Documents:
// - payment_profiles (id: the tenant id): the gateway's customer id and the
//   default card (pm_ id, brand, last4, expiry, fingerprint; never a card
//   number). Keys: customer (unique), default_card.
// - payment_attempts (id: "<invoice id>:<n>"): one per charge attempt of an
//   invoice, with its PaymentIntent and outcome. Its status only moves
//   forward (open -> processing / action_required / failed / succeeded;
//   failed and action_required may still become succeeded), so a late or
//   repeated webhook never undoes a newer state. Key: payment_intent
//   (unique), invoice.
// - stripe_events (id: the event id): each webhook event, stored once after
//   it was applied; a duplicate delivery answers 200 and does nothing.
//
// One payment path per invoice: an attempt is a document with a unique id
// per (invoice, n); before a PaymentIntent is created the job checks again
// that the invoice is still unpaid and that no attempt is open, and the
// idempotency key of the charge is made from (invoice, n). A charge whose
// answer was lost ("unknown") is settled under the same key or by
// retrieving its PaymentIntent, never by a new attempt.
#pragma once

#include <boost/json/object.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "core/status.h"
#include "invoices/invoices.h"
#include "jobs/queue.h"
#include "payments/gateway.h"
#include "storage/document_store.h"
#include "tenants/tenant_service.h"

namespace caas::payments {

storage::CollectionSpec PaymentProfilesCollectionSpec();
storage::CollectionSpec PaymentAttemptsCollectionSpec();
storage::CollectionSpec StripeEventsCollectionSpec();

struct PaymentProfile {
  std::string tenant;
  std::string customer;
  std::optional<Card> default_card;
  int setups = 0;  // SetupIntents made so far (numbers their keys)
  int64_t version = 0;
};

struct PaymentAttempt {
  std::string id;  // <invoice>:<n>
  std::string invoice, tenant;
  int n = 1;
  std::string status;  // open, processing, action_required, failed, succeeded, canceled
  std::string payment_intent;
  Money amount{0, Currency::Usd()};
  std::string code, decline_code, advice_code, message;
  Instant created_at, updated_at;
  int64_t version = 0;
};
boost::json::object AttemptToJson(const PaymentAttempt& a);

class PaymentService {
 public:
  PaymentService(storage::DocumentStore& store, const Clock& clock, IdGenerator& ids,
                 tenants::TenantService& tenants, invoices::InvoiceService& invoices,
                 PaymentGateway& gateway, std::string webhook_secret);

  std::string_view gateway() const { return gateway_.Name(); }

  // Registers the "payment.charge" job and asks invoices to enqueue it for
  // every finalized invoice.
  void EnableCharging(jobs::JobQueue& jobs);

  // A SetupIntent for the Admin Portal's Stripe Elements; the customer is
  // created on first use. The client secret is returned, never stored or
  // logged.
  struct Setup {
    std::string customer;
    std::string client_secret;
  };
  Result<Setup> StartSetup(std::string_view tenant);
  struct Cards {
    std::vector<Card> cards;
    std::optional<Card> default_card;
  };
  Result<Cards> ListCards(std::string_view tenant);
  // The card must be attached to the tenant's customer.
  Result<Card> SetDefault(std::string_view tenant, std::string_view payment_method);
  Status Detach(std::string_view tenant, std::string_view payment_method);
  Result<PaymentProfile> Profile(std::string_view tenant);

  // The charging job's work for one invoice: idempotent, safe to run twice
  // or at once. kUnavailable when the outcome is not known yet (the job
  // retries: the same attempt, the same key).
  Status Charge(std::string_view invoice_id);
  std::vector<PaymentAttempt> Attempts(std::string_view invoice_id);

  // POST /v1/webhooks/stripe: verifies the signature on the raw bytes (on
  // this service's clock), stores the event once, then applies it.
  // kUnauthenticated (field Stripe-Signature) for a bad signature;
  // kInvalidArgument for a body that is not an event.
  struct WebhookResult {
    std::string event_id, type;
    bool duplicate = false;
    bool handled = false;  // false: a type we record but do not act on
  };
  Result<WebhookResult> HandleWebhook(std::string_view signature_header, std::string_view raw_body);

 private:
  Status SaveProfile(PaymentProfile& p, bool insert);
  Result<PaymentAttempt> LoadAttempt(std::string_view id);
  // Writes the attempt's state `next` (with the outcome's codes) if it
  // moves forward, and learns its PaymentIntent; true if it wrote.
  Result<bool> Advance(PaymentAttempt a, const std::string& next, const ChargeOutcome& o);
  // Records a charge's outcome on its attempt; a success pays the invoice.
  // kUnavailable while the outcome is not known.
  Status Settle(const PaymentAttempt& a, const ChargeOutcome& o);
  Status ApplySucceeded(const PaymentAttempt& a, const ChargeOutcome& o);
  Status ApplyPaymentIntentEvent(const boost::json::object& pi);
  Status ApplySetupSucceeded(const boost::json::object& si);
  Status ApplyCardChanged(const boost::json::object& pm, bool detached);

  storage::DocumentStore& store_;
  const Clock& clock_;
  IdGenerator& ids_;
  tenants::TenantService& tenants_;
  invoices::InvoiceService& invoices_;
  PaymentGateway& gateway_;
  std::string webhook_secret_;
};

}  // namespace caas::payments
