#include "app/app.h"

#include <filesystem>

#include "http/idempotency.h"

namespace caas::app {

std::vector<storage::CollectionSpec> AllCollections() {
  return {tenants::TenantsCollectionSpec(), tenants::ApiKeysCollectionSpec(),
          http::IdempotencyCollectionSpec()};
}

App::App(const Config& config, bool migrate) {
  std::filesystem::create_directories(config.data_dir);
  std::filesystem::permissions(config.data_dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace);
  clock_ = std::make_unique<SystemClock>();
  ids_ = std::make_unique<IdGenerator>(*clock_);
  store_ =
      std::make_unique<storage::SqliteStore>(config.data_dir + "/billing.db", AllCollections());
  if (migrate) store_->Migrate();
  if (store_->SchemaVersion() != storage::SqliteStore::LatestSchemaVersion()) {
    throw storage::StorageError("the database needs migrating: run 'caas-billing migrate'", false);
  }
  tenants_ = std::make_unique<tenants::TenantService>(*store_, *clock_, *ids_);
  keys_ = std::make_unique<tenants::ApiKeyService>(*store_, *clock_, *ids_);
}

}  // namespace caas::app
