// An off-session charge of one invoice with the tenant's saved card: what
// the charging job asks a payment gateway for.
#pragma once

#include <cstdint>
#include <string>

namespace caas::payments {

struct OffSessionCharge {
  std::string invoice_id;
  int attempt = 1;             // 1, 2, ...: part of the idempotency key
  int64_t amount_minor = 0;    // in the currency's minor unit
  std::string currency;        // ISO 4217, upper or lower case
  std::string customer;        // cus_...
  std::string payment_method;  // pm_...
};

}  // namespace caas::payments
