// Stripe's request encoding: application/x-www-form-urlencoded with nested
// parameters written as bracketed names (metadata[invoice_id]=in_1,
// expand[0]=latest_charge), booleans as true/false, amounts as integers in
// the currency's minor unit.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace caas::payments {

// Parameters in the order they are sent; a name may carry brackets.
using FormParams = std::vector<std::pair<std::string, std::string>>;

// name=value pairs joined by '&'. Everything but RFC 3986's unreserved
// characters is percent-encoded, except '[' and ']' in names, which Stripe
// reads either way and which keep request logs readable.
std::string FormEncode(const FormParams& params);

// One component percent-encoded (space as %20).
std::string PercentEncode(std::string_view s, bool keep_brackets = false);

}  // namespace caas::payments
