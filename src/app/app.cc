#include "app/app.h"

#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/log.h"
#include "http/idempotency.h"
#include "payments/stripe_gateway.h"
#include "storage/sqlite/sqlite_store.h"

namespace caas::app {

std::vector<storage::CollectionSpec> AllCollections() {
  return {tenants::TenantsCollectionSpec(),
          tenants::ApiKeysCollectionSpec(),
          http::IdempotencyCollectionSpec(),
          events::BillingEventsCollectionSpec(),
          subscriptions::SubscriptionsCollectionSpec(),
          jobs::JobsCollectionSpec(),
          invoices::InvoicesCollectionSpec(),
          invoices::CreditNotesCollectionSpec(),
          invoices::NumbersCollectionSpec(),
          payments::PaymentProfilesCollectionSpec(),
          payments::PaymentAttemptsCollectionSpec(),
          payments::StripeEventsCollectionSpec()};
}

std::string StoreUrl(const Config& config) {
  return config.store.empty() ? std::string("sqlite:") + DataDirectory::kStoreFile : config.store;
}

std::unique_ptr<storage::DocumentStore> OpenStore(const std::string& url,
                                                  const std::string& data_dir) {
  if (url.rfind("sqlite:", 0) == 0) {
    std::string path = url.substr(7);
    if (!path.empty() && path.front() != '/') path = data_dir + "/" + path;
    return std::make_unique<storage::SqliteStore>(path, AllCollections());
  }
  throw storage::StorageError("unknown store " + url, false);
}

App::App(const Config& config, bool migrate, bool metering) {
  data_dir_ = std::make_unique<DataDirectory>(config.data_dir, StoreUrl(config));
  if (metering) data_dir_->Lock();
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
  try {
    store_ = OpenStore(StoreUrl(config), config.data_dir);
    if (migrate) {
      for (const auto& step : store_->Migrate()) {
        Log(LogLevel::kInfo, "store_migrated", {{"store", store_->Describe()}, {"step", step}});
      }
    }
    if (!store_->IsMigrated()) {
      throw storage::StorageError("the store needs migrating: run 'caas-billing migrate'", false);
    }
  } catch (const storage::StorageError& e) {
    throw storage::StorageError(
        "the store " + StoreUrl(config) + ": " + e.what() + " ('caas-billing doctor' checks it)",
        e.retryable());
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
  subscriptions_ =
      std::make_unique<subscriptions::SubscriptionService>(*store_, *clock_, *ids_, *catalog_);
  subscriptions_->SetTenantLookup([this](std::string_view tenant) -> std::optional<Instant> {
    auto t = tenants_->Get(tenant);
    if (!t) return std::nullopt;
    return t->created_at;
  });
  subscriptions_->SetCurrencyLookup([this](std::string_view tenant) -> std::string {
    auto t = tenants_->Get(tenant);
    return t ? t->currency : std::string();
  });
  // One scheduler for everything that happens later. Modules register
  // their job handlers on jobs_ and their due sources here.
  jobs_ = std::make_unique<jobs::JobQueue>(*store_, *clock_, *ids_,
                                           "pid-" + std::to_string(::getpid()));
  idempotency_ = std::make_unique<http::Idempotency>(*store_, *clock_, *ids_);
  scheduler_ =
      std::make_unique<jobs::Scheduler>(*clock_, std::chrono::seconds(5), config.scheduler_workers);
  scheduler_->Add(jobs::Scheduler::Keyed(
      "jobs", [this] { return jobs_->NextDue(); },
      [this](Instant until, size_t limit) { return jobs_->DueIds(until, limit); },
      [this](const std::string& id, Instant until) { return jobs_->Run(id, until); }));
  subscriptions_->RegisterWith(*scheduler_);
  scheduler_->Add(jobs::Scheduler::Source{
      "idempotency.expiry", [this] { return idempotency_->NextExpiry(); },
      [this](Instant until) { return idempotency_->DeleteExpired(until, 100) > 0; }});
  // A change may bring the next due instant closer (a trial started now).
  subscriptions_->AddObserver(
      [this](const subscriptions::TenantSubscriptions&) { scheduler_->Wake(); });
  if (!metering) return;
  metering::MeteringOptions options;
  options.dir = data_dir_->event_log_path();
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
  data_dir_->UseEventLog();
  // Metering rates usage by each tenant's terms timeline: pushed after every
  // change, and once at start for every tenant (a change saved just before a
  // crash reaches the log now; unchanged timelines cost nothing).
  auto push = [this](const subscriptions::TenantSubscriptions& t) {
    Status s = metering_->SetTimeline(t.tenant, {t.doc_version, subscriptions_->TimelineOf(t)});
    if (!s) {  // recorded with the tenant's next event, or at the next start
      Log(LogLevel::kWarn, "timeline_not_recorded",
          {{"tenant", t.tenant}, {"error", s.error().message}});
    }
  };
  subscriptions_->AddObserver(push);
  subscriptions_->ForEachTenant([&push](const subscriptions::TenantSubscriptions& t) {
    push(t);
    return true;
  });
  // Every tenant has its subscription document (a tenant created before
  // they were stored at creation, or whose write failed, gets it now), so
  // every period closes.
  for (std::string after;;) {
    storage::ListQuery q;
    q.starting_after = after;
    q.limit = 1000;
    auto page = store_->List(tenants::kTenantsCollection, q);
    for (const auto& d : page.items) {
      if (store_->Get("subscriptions", d.id)) continue;
      try {
        auto t = tenants_->Get(d.id);
        if (t) (void)subscriptions_->Get(t->id, t->created_at);
      } catch (const storage::CorruptDocument& e) {  // refused when asked for; logged here
        Log(LogLevel::kError, "corrupt_document", {{"error", std::string_view(e.what())}});
      }
    }
    if (!page.has_more || page.items.empty()) break;
    after = page.items.back().id;
  }
  // Invoices rate the usage metering aggregated, period by period.
  invoices::InvoiceOptions io;
  io.grace = std::chrono::seconds(config.invoice_grace_seconds);
  io.late_window = std::chrono::hours(24) * config.late_window_days;
  io.issuer = invoices::Party{config.issuer_name, config.issuer_address, config.issuer_tax_id,
                              config.issuer_email};
  io.pdf.paper = config.invoice_paper == "letter" ? invoices::Paper::kLetter : invoices::Paper::kA4;
  if (!config.issuer_logo.empty()) {
    std::ifstream in(config.issuer_logo, std::ios::binary);
    if (!in) throw std::runtime_error("issuer.logo: cannot read " + config.issuer_logo);
    std::stringstream ss;
    ss << in.rdbuf();
    io.pdf.logo_png = ss.str();
  }
  io.mail_from = config.mail_from;
  io.email_zero = config.email_zero_invoices;
  invoices_ = std::make_unique<invoices::InvoiceService>(
      *store_, *clock_, *ids_, *subscriptions_, *tenants_,
      [this](std::string_view tenant, Instant at) -> Result<invoices::PeriodUsage> {
        auto r = metering_->Usage(tenant, at);
        if (!r) return r.error();
        invoices::PeriodUsage u;
        u.period = r->period.period;
        for (const auto& s : r->slices) {
          u.slices.push_back(invoices::UsageSlice{s.from, s.to, s.terms, s.used, s.billable});
        }
        return u;
      },
      [this](std::string_view tenant, int64_t from_day,
             int64_t to_day) -> Result<std::vector<invoices::DayFigures>> {
        auto r = metering_->Daily(tenant, from_day, to_day);
        if (!r) return r.error();
        std::vector<invoices::DayFigures> out;
        for (const auto& d : *r) {
          out.push_back({d.day, d.messages, d.api_calls, d.active_users, d.storage_bytes});
        }
        return out;
      },
      io);
  invoices_->RegisterWith(*scheduler_);
  blobs_ = std::make_unique<storage::FileBlobStore>(config.data_dir + "/blobs");
  if (config.smtp_url.empty()) {
    mailer_ = mail::MakeEmlMailer(config.data_dir + "/outbox");
  } else {
    mailer_ = mail::MakeSmtpMailer(
        {config.smtp_url, config.smtp_user, config.smtp_password, 30, config.smtp_ca_file});
  }
  invoices_->EnableDelivery(*jobs_, *blobs_, *mailer_);
  Log(LogLevel::kInfo, "invoice_delivery", {{"mailer", mailer_->Describe()}});
  if (config.stripe_secret_key.empty()) {
    gateway_ = payments::MakeManualGateway();
  } else {
    payments::StripeOptions so;
    so.api_base = config.stripe_api_base;
    so.secret_key = config.stripe_secret_key;
    so.timeout = std::chrono::milliseconds(config.stripe_timeout_ms);
    gateway_ = payments::MakeStripeGateway(so);
  }
  payments_ = std::make_unique<payments::PaymentService>(
      *store_, *clock_, *ids_, *tenants_, *invoices_, *gateway_, config.stripe_webhook_secret);
  payments_->EnableCharging(*jobs_);
  // Names the gateway and where it points; never a key or secret.
  Log(LogLevel::kInfo, "payment_gateway",
      {{"gateway", std::string(gateway_->Name())},
       {"api_base", config.stripe_secret_key.empty() ? "" : config.stripe_api_base},
       {"webhooks", config.stripe_webhook_secret.empty() ? "off" : "on"}});
  subscriptions_->AddObserver([this](const subscriptions::TenantSubscriptions& t) {
    if (!t.closings.empty()) scheduler_->Wake();
  });
}

}  // namespace caas::app
