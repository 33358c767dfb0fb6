// Creating, reading, listing and updating tenants.
#pragma once

#include <string>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "storage/document_store.h"
#include "tenants/tenant.h"

namespace caas::tenants {

inline constexpr std::string_view kTenantsCollection = "tenants";
storage::CollectionSpec TenantsCollectionSpec();

struct TenantPage {
  std::vector<Tenant> items;
  bool has_more = false;
};

class TenantService {
 public:
  TenantService(storage::DocumentStore& store, const Clock& clock, IdGenerator& ids)
      : store_(store), clock_(clock), ids_(ids) {}
  TenantService(const TenantService&) = delete;
  TenantService& operator=(const TenantService&) = delete;

  // Validates and stores a new tenant. `id` may be given (an id reserved by an
  // idempotent request); if a tenant with that id exists it is returned as is.
  // kInvalidArgument names the first bad field; all of them are in `errors`.
  Result<Tenant> Create(const TenantFields& fields, std::string id = {},
                        std::vector<Error>* errors = nullptr);
  Result<Tenant> Get(std::string_view id);
  TenantPage List(std::string_view starting_after, int limit);
  // Applies the present fields; retries on a concurrent write.
  Result<Tenant> Update(std::string_view id, const TenantFields& fields,
                        std::vector<Error>* errors = nullptr);

 private:
  storage::DocumentStore& store_;
  const Clock& clock_;
  IdGenerator& ids_;
};

}  // namespace caas::tenants
