#include "app/app.h"

#include <boost/json.hpp>
#include <filesystem>

#include "http/idempotency.h"

namespace caas::app {

std::vector<storage::CollectionSpec> AllCollections() {
  return {tenants::TenantsCollectionSpec(), tenants::ApiKeysCollectionSpec(),
          http::IdempotencyCollectionSpec(), events::BillingEventsCollectionSpec()};
}

App::App(const Config& config, bool migrate, bool metering) {
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
  billing_events_ = std::make_unique<events::BillingEventRecorder>(*store_, *clock_, *ids_);
  plans_ = std::make_unique<metering::DefaultPlanDirectory>();
  if (!metering) return;
  metering::MeteringOptions options;
  options.dir = config.data_dir + "/events";
  options.late_window = std::chrono::hours(24) * config.late_window_days;
  options.reserve_events = static_cast<size_t>(config.metering_reserve_events);
  metering_ = std::make_unique<metering::MeteringEngine>(
      options, *clock_, *plans_,
      [this](std::string_view tenant) { return tenants_->Get(tenant).ok(); },
      [this](const metering::ThresholdEvent& e) {
        const std::string metric(metering::MetricName(e.metric));
        const std::string period_start = FormatRfc3339(e.period.start);
        billing_events_->Record("usage.threshold_reached", e.tenant,
                                boost::json::object{{"metric", metric},
                                                    {"percent", e.percent},
                                                    {"used", e.used},
                                                    {"included", e.included},
                                                    {"period_start", period_start},
                                                    {"period_end", FormatRfc3339(e.period.end)}},
                                e.event_time,
                                "threshold:" + e.tenant + ":" + metric + ":" + period_start + ":" +
                                    std::to_string(e.percent));
      });
  metering_->Open();
}

}  // namespace caas::app
