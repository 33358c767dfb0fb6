// The tenant aggregate: a company that embeds chat and is billed by us.
#pragma once

#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/time.h"

namespace caas::tenants {

struct Address {
  std::string line1;
  std::string line2;
  std::string city;
  std::string state;
  std::string postal_code;
  std::string country;  // ISO 3166-1 alpha-2, upper case
  bool operator==(const Address&) const = default;
};

struct Tenant {
  std::string id;  // tnt_…
  std::string name;
  std::string billing_email;
  std::optional<Address> address;
  std::string tax_id;    // empty when none
  std::string currency;  // ISO 4217 code the tenant is billed in
  // How invoices tax it (docs/invoices.md, "Tax"): "standard" at `tax_rate`
  // percent (a decimal, "0" by default), "exempt", or "reverse_charge" (the
  // customer accounts for the VAT; needs its tax_id).
  std::string tax_mode = "standard";
  std::string tax_rate = "0";
  Instant created_at;
  Instant updated_at;
  int64_t version = 0;  // storage version, for conditional writes
};

// Fields a caller may set. On create, name and billing_email are required and
// currency defaults to USD; on update, only the fields present change.
struct TenantFields {
  std::optional<std::string> name;
  std::optional<std::string> billing_email;
  std::optional<Address> address;
  bool clear_address = false;  // update: remove the address
  std::optional<std::string> tax_id;
  std::optional<std::string> currency;
  std::optional<std::string> tax_mode;
  std::optional<std::string> tax_rate;
};

// Every problem with the fields, each naming its field ("address.country").
std::vector<Error> ValidateTenantFields(const TenantFields& f, bool creating);

// The API and storage representation.
boost::json::object TenantToJson(const Tenant& t);
Result<Tenant> TenantFromJson(const boost::json::value& v);

}  // namespace caas::tenants
