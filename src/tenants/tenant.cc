#include "tenants/tenant.h"

#include <boost/json.hpp>

#include "core/decimal.h"
#include "core/money.h"
#include "core/text.h"

namespace caas::tenants {
namespace {

namespace json = boost::json;

void CheckText(std::vector<Error>& errors, const std::string& field, const std::string& value,
               size_t max_chars, bool required) {
  if (required && value.empty()) {
    errors.push_back(Error::Invalid(field, "must not be empty"));
  } else if (CodePointCount(value) > max_chars) {
    errors.push_back(
        Error::Invalid(field, "must be at most " + std::to_string(max_chars) + " characters"));
  } else if (HasControlCharacters(value)) {
    errors.push_back(Error::Invalid(field, "must not contain control characters"));
  }
}

bool IsTaxIdChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ' ' ||
         c == '-' || c == '.' || c == '/';
}

std::string Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

}  // namespace

std::vector<Error> ValidateTenantFields(const TenantFields& f, bool creating) {
  std::vector<Error> errors;
  if (creating && !f.name) errors.push_back(Error::Invalid("name", "is required"));
  if (creating && !f.billing_email) {
    errors.push_back(Error::Invalid("billing_email", "is required"));
  }
  if (f.name) CheckText(errors, "name", *f.name, 200, true);
  if (f.billing_email && !IsPlausibleEmail(*f.billing_email)) {
    errors.push_back(
        Error::Invalid("billing_email", "must be an e-mail address like billing@example.com"));
  }
  if (f.currency && Currency::Find(*f.currency) == nullptr) {
    errors.push_back(Error::Invalid("currency", "must be a supported ISO 4217 code like USD"));
  }
  if (f.tax_id) {
    if (f.tax_id->size() > 64) {
      errors.push_back(Error::Invalid("tax_id", "must be at most 64 characters"));
    } else {
      for (char c : *f.tax_id) {
        if (!IsTaxIdChar(c)) {
          errors.push_back(
              Error::Invalid("tax_id", "may contain only letters, digits, space, '-', '.', '/'"));
          break;
        }
      }
    }
  }
  if (f.tax_mode && *f.tax_mode != "standard" && *f.tax_mode != "exempt" &&
      *f.tax_mode != "reverse_charge") {
    errors.push_back(Error::Invalid("tax_mode", "must be one of standard, exempt, reverse_charge"));
  }
  if (f.tax_rate) {
    auto d = Decimal::Parse(*f.tax_rate);
    if (!d || d->IsNegative() || *d > Decimal::FromInt(100) || (d->raw() % 100'000'000) != 0) {
      errors.push_back(Error::Invalid(
          "tax_rate", "must be a percentage from 0 to 100 with at most 4 decimals, like \"19\""));
    }
  }
  if (f.address) {
    const Address& a = *f.address;
    CheckText(errors, "address.line1", a.line1, 200, true);
    CheckText(errors, "address.line2", a.line2, 200, false);
    CheckText(errors, "address.city", a.city, 100, true);
    CheckText(errors, "address.state", a.state, 100, false);
    CheckText(errors, "address.postal_code", a.postal_code, 20, false);
    if (a.country.size() != 2 || a.country[0] < 'A' || a.country[0] > 'Z' || a.country[1] < 'A' ||
        a.country[1] > 'Z') {
      errors.push_back(
          Error::Invalid("address.country", "must be an ISO 3166-1 alpha-2 code like DE"));
    }
  }
  return errors;
}

boost::json::object TenantToJson(const Tenant& t) {
  json::object o;
  o["id"] = t.id;
  o["object"] = "tenant";
  o["name"] = t.name;
  o["billing_email"] = t.billing_email;
  if (t.address) {
    json::object a;
    a["line1"] = t.address->line1;
    a["line2"] = t.address->line2;
    a["city"] = t.address->city;
    a["state"] = t.address->state;
    a["postal_code"] = t.address->postal_code;
    a["country"] = t.address->country;
    o["address"] = std::move(a);
  } else {
    o["address"] = nullptr;
  }
  o["tax_id"] = t.tax_id.empty() ? json::value(nullptr) : json::value(t.tax_id);
  o["currency"] = t.currency;
  o["tax_mode"] = t.tax_mode;
  o["tax_rate"] = t.tax_rate;
  o["created_at"] = FormatRfc3339(t.created_at);
  o["updated_at"] = FormatRfc3339(t.updated_at);
  return o;
}

Result<Tenant> TenantFromJson(const boost::json::value& v) {
  const json::object* o = v.if_object();
  if (o == nullptr) return Error::Make(ErrorCode::kInternal, "stored tenant is not an object");
  Tenant t;
  t.id = Str(*o, "id");
  t.name = Str(*o, "name");
  t.billing_email = Str(*o, "billing_email");
  t.tax_id = Str(*o, "tax_id");
  t.currency = Str(*o, "currency");
  if (o->contains("tax_mode")) t.tax_mode = Str(*o, "tax_mode");
  if (o->contains("tax_rate")) t.tax_rate = Str(*o, "tax_rate");
  if (const json::value* a = o->if_contains("address"); a && a->is_object()) {
    const auto& ao = a->as_object();
    t.address = Address{Str(ao, "line1"), Str(ao, "line2"),       Str(ao, "city"),
                        Str(ao, "state"), Str(ao, "postal_code"), Str(ao, "country")};
  }
  auto created = ParseRfc3339(Str(*o, "created_at"));
  auto updated = ParseRfc3339(Str(*o, "updated_at"));
  if (!created || !updated || t.id.empty()) {
    return Error::Make(ErrorCode::kInternal, "stored tenant is corrupt");
  }
  t.created_at = *created;
  t.updated_at = *updated;
  return t;
}

}  // namespace caas::tenants
