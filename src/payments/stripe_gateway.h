// The Stripe adapter of the PaymentGateway port.
#pragma once

#include <memory>

#include "payments/gateway.h"
#include "payments/stripe_client.h"

namespace caas::payments {

std::unique_ptr<PaymentGateway> MakeStripeGateway(StripeOptions options);

// A PaymentIntent (as Stripe answers it) as a charge outcome.
ChargeOutcome OutcomeOfPaymentIntent(const boost::json::object& pi);

}  // namespace caas::payments
