// Stripe webhook signatures (the `Stripe-Signature` header), verified on the
// raw request bytes before anything is parsed:
//
//   Stripe-Signature: t=1492774577,v1=5257a8...,v1=1f0c...,v0=6ffbb...
//
// v1 is the hex HMAC-SHA256 of "<t>.<raw body>" keyed with the endpoint
// secret (the whole "whsec_..." string). Only v1 counts: other schemes are
// ignored, so a downgrade to v0 is not possible. Any matching v1 is accepted
// (a rolled secret keeps two alive for up to 24 h). Comparison is constant
// time. The timestamp must lie within the tolerance (300 s by default) of
// `now`, read from the service's Clock, in either direction: Stripe's SDKs
// only check the age; a timestamp far in the future would stretch the
// replay window, so we refuse it too.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "core/time.h"

namespace caas::payments {

inline constexpr std::chrono::seconds kWebhookTolerance{300};

// Ok, or kUnauthenticated with the reason (no header, malformed header, no
// v1 signature, timestamp outside the tolerance, no v1 matches).
Status VerifyStripeSignature(std::string_view header, std::string_view raw_body,
                             std::string_view secret, Instant now,
                             std::chrono::seconds tolerance = kWebhookTolerance);

// The v1 signature of `raw_body` at unix time `t` (hex), as Stripe computes it.
std::string StripeSignatureV1(std::string_view secret, int64_t t, std::string_view raw_body);

// A complete header "t=<t>,v1=<sig>", as the fake Stripe and tests send it.
std::string StripeSignatureHeader(std::string_view secret, int64_t t, std::string_view raw_body);

}  // namespace caas::payments
