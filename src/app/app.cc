#include "app/app.h"

#include <boost/json.hpp>
#include <filesystem>

#include "http/idempotency.h"

namespace caas::app {

std::vector<storage::CollectionSpec> AllCollections() {
  return {tenants::TenantsCollectionSpec(), tenants::ApiKeysCollectionSpec(),
          http::IdempotencyCollectionSpec(), events::BillingEventsCollectionSpec(),
          subscriptions::SubscriptionsCollectionSpec()};
}

App::App(const Config& config, bool migrate, bool metering) {
  std::filesystem::create_directories(config.data_dir);
  std::filesystem::permissions(config.data_dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace);
  if (config.clock == "manual") {
    Instant start = std::chrono::time_point_cast<Micros>(std::chrono::system_clock::now());
    if (config.now) start = ParseRfc3339(*config.now).value();  // validated by LoadConfig
    auto manual = std::make_unique<ManualClock>(start);
    manual_clock_ = manual.get();
    clock_ = std::move(manual);
  } else {
    clock_ = std::make_unique<SystemClock>();
  }
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
  if (config.catalog_file.empty()) {
    catalog_ = std::make_unique<catalog::Catalog>(catalog::Catalog::Default());
  } else {
    auto c = catalog::Catalog::Load(config.catalog_file);
    if (!c) throw std::runtime_error(c.error().field + ": " + c.error().message);
    catalog_ = std::make_unique<catalog::Catalog>(std::move(*c));
  }
  subscriptions_ = std::make_unique<subscriptions::SubscriptionService>(
      *store_, *clock_, *ids_, *catalog_,
      [this](const std::string& type, const std::string& tenant, boost::json::object data,
             Instant at, const std::string& dedupe) {
        billing_events_->Record(type, tenant, std::move(data), at, dedupe);
      });
  subscriptions_->SetTenantLookup([this](std::string_view tenant) -> std::optional<Instant> {
    auto t = tenants_->Get(tenant);
    if (!t) return std::nullopt;
    return t->created_at;
  });
  if (!metering) return;
  metering::MeteringOptions options;
  options.dir = config.data_dir + "/events";
  options.late_window = std::chrono::hours(24) * config.late_window_days;
  options.reserve_events = static_cast<size_t>(config.metering_reserve_events);
  metering_ = std::make_unique<metering::MeteringEngine>(
      options, *clock_,
      [this](std::string_view tenant) { return subscriptions_->TimelineOf(tenant); },
      [this](const metering::ThresholdEvent& e) {
        const std::string metric(catalog::MetricName(e.metric));
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
  // Metering rates usage by each tenant's terms timeline: pushed after every
  // change, and once at start for every tenant (a change saved just before a
  // crash reaches the log now; unchanged timelines cost nothing).
  subscriptions_->AddObserver([this](const subscriptions::TenantSubscriptions& t) {
    metering_->SetTimeline(t.tenant, {t.doc_version, subscriptions_->TimelineOf(t)});
  });
  subscriptions_->ForEachTenant([this](const subscriptions::TenantSubscriptions& t) {
    metering_->SetTimeline(t.tenant, {t.doc_version, subscriptions_->TimelineOf(t)});
    return true;
  });
}

}  // namespace caas::app
