// Wiring: the one place that picks adapters and builds the services.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/clock.h"
#include "core/ids.h"
#include "storage/sqlite/sqlite_store.h"
#include "tenants/api_keys.h"
#include "tenants/tenant_service.h"

namespace caas::app {

struct Config {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = "./data";
  int threads = 2;
  size_t max_body_bytes = 1 << 20;
  std::string log_level = "info";
  std::optional<std::string> admin_key;  // CAAS_BILLING_ADMIN_KEY
};

// The declared collections of every module.
std::vector<storage::CollectionSpec> AllCollections();

class App {
 public:
  // Opens (creating) the data directory and the store; migrates when asked.
  App(const Config& config, bool migrate);

  storage::SqliteStore& store() { return *store_; }
  const Clock& clock() const { return *clock_; }
  IdGenerator& ids() { return *ids_; }
  tenants::TenantService& tenants() { return *tenants_; }
  tenants::ApiKeyService& keys() { return *keys_; }

 private:
  std::unique_ptr<Clock> clock_;
  std::unique_ptr<IdGenerator> ids_;
  std::unique_ptr<storage::SqliteStore> store_;
  std::unique_ptr<tenants::TenantService> tenants_;
  std::unique_ptr<tenants::ApiKeyService> keys_;
};

}  // namespace caas::app
