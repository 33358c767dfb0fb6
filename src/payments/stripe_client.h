// A Stripe REST client over libcurl (API v1): form-encoded requests, a
// pinned Stripe-Version, `Authorization: Bearer`, timeouts, an
// Idempotency-Key on every POST (given by the caller, derived from our own
// ids, never random), retries where Stripe's SDKs retry, and typed outcomes.
//
// Retries (the same key each time, so a replay never charges twice):
// a network error or timeout, `Stripe-Should-Retry: true`, 409, 429 with
// code `lock_timeout`, and 5xx; never `Stripe-Should-Retry: false`, a
// decline (402), an `idempotency_error` or any other 4xx. The delay before
// retry n (0-based) is base * 2^n, capped, times a jitter of 50-100 %, and
// never under the base (stripe-node's schedule).
//
// The secret key goes only into the Authorization header: it is never
// logged, stored, or put into an error.
#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "payments/charge.h"
#include "payments/stripe_form.h"

namespace caas::payments {

// The API version every request pins (the version Stripe's SDKs pinned on
// 2026-08-19). Events are rendered in the version they were created with.
inline constexpr std::string_view kStripeApiVersion = "2026-07-29.dahlia";

struct StripeOptions {
  std::string api_base = "https://api.stripe.com";
  std::string secret_key;  // sk_... or rk_...
  std::string api_version{kStripeApiVersion};
  std::chrono::milliseconds timeout{30'000};
  std::chrono::milliseconds connect_timeout{10'000};
  int max_retries = 2;
  std::chrono::milliseconds base_delay{500};
  std::chrono::milliseconds max_delay{5'000};
  std::string ca_file;  // empty: the system's CA store
};

// What a call came to, from the caller's point of view.
enum class StripeOutcome {
  kOk,                      // 2xx: `object` holds the answer
  kDeclined,                // 402 card_error: decline_code, advice_code
  kAuthenticationRequired,  // 402 authentication_required: the customer must act on-session
  kInvalidRequest,          // 400/404 and other 4xx: our request is wrong (param names it)
  kIdempotencyError,        // a key reused with other parameters
  kRateLimited,             // 429 (not lock_timeout) after our own retries
  kAuthentication,          // 401/403: the key is wrong or lacks permission
  kUnavailable,             // 5xx after retries: Stripe said it failed
  kUnknown,                 // no answer (timeout, dropped connection) after retries:
                            // the request may have happened; settle it with the
                            // same idempotency key or by retrieving the object
};
std::string_view StripeOutcomeName(StripeOutcome o);

struct StripeResult {
  StripeOutcome outcome = StripeOutcome::kUnknown;
  int http_status = 0;         // 0: no answer
  boost::json::object object;  // the answer on kOk
  // From Stripe's error body ({"error": {...}}), when there was one.
  std::string type, code, decline_code, advice_code, param, message;
  std::string payment_intent_id;  // error.payment_intent.id, e.g. on a decline
  std::string request_id;         // the Request-Id header
  bool replayed = false;          // Idempotent-Replayed: true
  int attempts = 0;               // requests sent, retries included

  bool ok() const { return outcome == StripeOutcome::kOk; }
};

// Whether a failed attempt is retried (same key). `http_status` 0 is a
// network error or timeout; `should_retry` is the Stripe-Should-Retry header.
bool ShouldRetryStripe(int http_status, std::optional<bool> should_retry,
                       std::string_view error_code);

// The delay before retry `n` (0-based), for `jitter` in [0, 1].
std::chrono::milliseconds StripeRetryDelay(const StripeOptions& o, int n, double jitter);

class StripeClient {
 public:
  // `sleep` waits between retries (tests may shorten it).
  explicit StripeClient(StripeOptions options,
                        std::function<void(std::chrono::milliseconds)> sleep = {});

  StripeResult Post(std::string_view path, const FormParams& params,
                    std::string_view idempotency_key);
  StripeResult Get(std::string_view path, const FormParams& query = {});

 private:
  StripeResult Call(const char* method, std::string_view path, const std::string& body,
                    std::string_view idempotency_key);

  StripeOptions o_;
  std::function<void(std::chrono::milliseconds)> sleep_;
};

}  // namespace caas::payments

namespace caas::payments {

// "charge:<invoice id>:<attempt>": the same attempt always sends the same
// key, so a retry or a restart replays the first answer instead of charging
// again.
std::string ChargeIdempotencyKey(std::string_view invoice_id, int attempt);

// POST /v1/payment_intents with confirm=true, off_session=true and the
// invoice id in metadata, under ChargeIdempotencyKey.
StripeResult CreateOffSessionPaymentIntent(StripeClient& client, const OffSessionCharge& charge);

}  // namespace caas::payments
