#include "tenants/tenant_service.h"

#include <boost/json.hpp>

#include "core/decimal.h"

namespace caas::tenants {
namespace json = boost::json;

storage::CollectionSpec TenantsCollectionSpec() { return {std::string(kTenantsCollection), {}}; }

namespace {

Result<Tenant> Decode(const storage::Document& d) {
  json::error_code ec;
  json::value v = json::parse(d.body, ec);
  if (ec) throw storage::CorruptDocument(kTenantsCollection, d.id, "not JSON: " + ec.message());
  auto t = TenantFromJson(v);
  if (!t) throw storage::CorruptDocument(kTenantsCollection, d.id, t.error().message);
  t->version = d.version;
  return t;
}

Status Reject(std::vector<Error> found, std::vector<Error>* errors) {
  Error first = found.front();
  if (errors) *errors = std::move(found);
  return first;
}

void Apply(Tenant& t, const TenantFields& f) {
  if (f.name) t.name = *f.name;
  if (f.billing_email) t.billing_email = *f.billing_email;
  if (f.address) t.address = *f.address;
  if (f.clear_address) t.address.reset();
  if (f.tax_id) t.tax_id = *f.tax_id;
  if (f.currency) t.currency = *f.currency;
  if (f.tax_mode) t.tax_mode = *f.tax_mode;
  if (f.tax_rate) {
    t.tax_rate = Decimal::Parse(*f.tax_rate).value().ToString();  // validated: canonical form
  }
}

// Reverse charge prints both VAT ids, so the customer's must be known.
std::optional<Error> CheckTax(const Tenant& t) {
  if (t.tax_mode == "reverse_charge" && t.tax_id.empty()) {
    return Error::Invalid("tax_id", "is required when tax_mode is reverse_charge");
  }
  return std::nullopt;
}

}  // namespace

Result<Tenant> TenantService::Create(const TenantFields& fields, std::string id,
                                     std::vector<Error>* errors) {
  if (auto found = ValidateTenantFields(fields, /*creating=*/true); !found.empty()) {
    return Reject(std::move(found), errors).error();
  }
  Tenant t;
  t.id = id.empty() ? ids_.Next("tnt") : std::move(id);
  t.currency = "USD";
  Apply(t, fields);
  if (auto e = CheckTax(t)) return Reject({*e}, errors).error();
  t.created_at = t.updated_at = clock_.Now();
  storage::Document doc{t.id, 0, json::serialize(TenantToJson(t)), {}};
  Status s = store_.Insert(kTenantsCollection, doc);
  if (!s) {
    if (s.error().code == ErrorCode::kAlreadyExists && s.error().field == "id") return Get(t.id);
    return s.error();
  }
  t.version = 1;
  return t;
}

Result<Tenant> TenantService::Get(std::string_view id) {
  auto d = store_.Get(kTenantsCollection, id);
  if (!d) return Error::NotFound("no tenant " + std::string(id));
  return Decode(*d);
}

TenantPage TenantService::List(std::string_view starting_after, int limit) {
  storage::ListQuery q;
  q.starting_after = std::string(starting_after);
  q.limit = limit;
  storage::Page p = store_.List(kTenantsCollection, q);
  TenantPage out;
  out.has_more = p.has_more;
  for (const auto& d : p.items) {
    auto t = Decode(d);
    if (t) out.items.push_back(std::move(*t));
  }
  return out;
}

Result<Tenant> TenantService::Update(std::string_view id, const TenantFields& fields,
                                     std::vector<Error>* errors) {
  if (auto found = ValidateTenantFields(fields, /*creating=*/false); !found.empty()) {
    return Reject(std::move(found), errors).error();
  }
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto current = Get(id);
    if (!current) return current.error();
    Tenant t = std::move(*current);
    Apply(t, fields);
    if (auto e = CheckTax(t)) return Reject({*e}, errors).error();
    t.updated_at = clock_.Now();
    storage::Document doc{t.id, 0, json::serialize(TenantToJson(t)), {}};
    auto v = store_.Replace(kTenantsCollection, doc, t.version);
    if (v) {
      t.version = *v;
      return t;
    }
    if (v.error().code != ErrorCode::kConflict) return v.error();
  }
  return Error::Make(ErrorCode::kConflict, "the tenant is being changed concurrently; retry");
}

}  // namespace caas::tenants
