// Wiring: the one place that picks adapters and builds the services.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "app/data_dir.h"
#include "catalog/catalog.h"
#include "core/clock.h"
#include "core/ids.h"
#include "events/billing_events.h"
#include "http/idempotency.h"
#include "invoices/invoices.h"
#include "jobs/queue.h"
#include "jobs/scheduler.h"
#include "metering/metering.h"
#include "payments/gateway.h"
#include "payments/payments.h"
#include "storage/document_store.h"
#include "subscriptions/subscriptions.h"
#include "tenants/api_keys.h"
#include "tenants/tenant_service.h"

namespace caas::app {

struct Config {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = "./data";
  // I/O threads. Ingest requests wait for their group commit (0.3 ms and
  // more), so more threads than cores keep the cores busy (measured: 8
  // threads ingest 20% more than 4 on 2 cores).
  int threads = 8;
  int late_window_days = 35;
  // Usage-event keys to reserve memory for at start (0: grow on demand).
  int64_t metering_reserve_events = 0;
  size_t max_body_bytes = 1 << 20;
  std::string log_level = "info";
  std::optional<std::string> admin_key;  // CAAS_BILLING_ADMIN_KEY
  // "system", or "manual" (simulated time for staging and tests: starts at
  // `now` and moves only through POST /v1/clock/advance).
  std::string clock = "system";
  std::optional<std::string> now;
  std::string catalog_file;  // empty: the built-in catalog/plans.json
  // The document store: "sqlite:PATH" (a relative PATH is under data_dir).
  // Empty: sqlite:billing.db in the data directory.
  std::string store;
  // Who issues the invoices (docs/invoices.md, "Issuer"): the config file's
  // "issuer" object, or CAAS_BILLING_ISSUER_NAME / _ADDRESS (lines
  // separated by "|") / _TAX_ID / _EMAIL / _LOGO (a PNG file).
  std::string issuer_name = "CAAS Chat Platform";
  std::vector<std::string> issuer_address;
  std::string issuer_tax_id;
  std::string issuer_email;
  std::string issuer_logo;
  // How long a period's draft waits for late events before it is finalized.
  int invoice_grace_seconds = 3600;
  // Threads that run due work (period closes, finalizations, deliveries,
  // jobs) at once; they mostly wait for commits, which they share.
  int scheduler_workers = 32;
  std::string invoice_paper = "a4";  // or "letter"
  // Invoice e-mail: SMTP when smtp_url is set (CAAS_BILLING_SMTP_URL,
  // _USER, _PASSWORD — the password from the environment only), else .eml
  // files in DATA_DIR/outbox.
  std::string smtp_url;
  std::string smtp_user;
  std::string smtp_password;
  std::string smtp_ca_file;  // CA certificates for STARTTLS (empty: the system's)
  std::string mail_from = "billing@localhost";
  bool email_zero_invoices = false;
  // Card payments through Stripe when a secret key is set (from the
  // environment only: CAAS_BILLING_STRIPE_SECRET_KEY, _WEBHOOK_SECRET,
  // _API_BASE); otherwise the manual gateway (bank transfers recorded by an
  // operator).
  std::string stripe_secret_key;
  std::string stripe_webhook_secret;
  std::string stripe_api_base = "https://api.stripe.com";
  int stripe_timeout_ms = 30000;  // per request, CAAS_BILLING_STRIPE_TIMEOUT_MS
};

// The declared collections of every module.
std::vector<storage::CollectionSpec> AllCollections();

// Opens the store a configuration names (the one place that knows the
// adapters). Throws StorageError.
std::unique_ptr<storage::DocumentStore> OpenStore(const std::string& url,
                                                  const std::string& data_dir);
// The store URL a configuration means, with defaults applied.
std::string StoreUrl(const Config& config);

class App {
 public:
  // Opens (creating) the data directory and the store; migrates when asked.
  // With `metering`, also takes the data directory's lock and replays the
  // usage-event log (only one process may hold it: the server). Throws with
  // a message naming what is missing or damaged.
  App(const Config& config, bool migrate, bool metering = false);

  storage::DocumentStore& store() { return *store_; }
  DataDirectory& data_dir() { return *data_dir_; }
  const Clock& clock() const { return *clock_; }
  IdGenerator& ids() { return *ids_; }
  tenants::TenantService& tenants() { return *tenants_; }
  tenants::ApiKeyService& keys() { return *keys_; }
  events::BillingEventRecorder& billing_events() { return *billing_events_; }
  metering::MeteringEngine& metering() { return *metering_; }
  subscriptions::SubscriptionService& subscriptions() { return *subscriptions_; }
  jobs::JobQueue& jobs() { return *jobs_; }
  // Null unless metering runs (invoices rate metered usage): the server.
  invoices::InvoiceService* invoices() { return invoices_.get(); }
  mail::Mailer* mailer() { return mailer_.get(); }
  payments::PaymentService* payments() { return payments_.get(); }
  // Runs everything that falls due: jobs, subscription transitions, outbox
  // relays, the expiry of idempotency records. The server starts its
  // workers on the system clock; on a manual clock POST /v1/clock/advance
  // drives it.
  jobs::Scheduler& scheduler() { return *scheduler_; }
  const catalog::Catalog& catalog() const { return *catalog_; }
  // Non-null when the clock is manual.
  ManualClock* manual_clock() { return manual_clock_; }

 private:
  std::unique_ptr<DataDirectory> data_dir_;
  std::unique_ptr<Clock> clock_;
  std::unique_ptr<IdGenerator> ids_;
  std::unique_ptr<storage::DocumentStore> store_;
  std::unique_ptr<tenants::TenantService> tenants_;
  std::unique_ptr<tenants::ApiKeyService> keys_;
  std::unique_ptr<events::BillingEventRecorder> billing_events_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<subscriptions::SubscriptionService> subscriptions_;
  std::unique_ptr<jobs::JobQueue> jobs_;
  std::unique_ptr<http::Idempotency> idempotency_;  // for the expiry of records
  ManualClock* manual_clock_ = nullptr;
  std::unique_ptr<metering::MeteringEngine> metering_;
  std::unique_ptr<storage::BlobStore> blobs_;
  std::unique_ptr<mail::Mailer> mailer_;
  std::unique_ptr<invoices::InvoiceService> invoices_;
  std::unique_ptr<payments::PaymentGateway> gateway_;
  std::unique_ptr<payments::PaymentService> payments_;
  std::unique_ptr<jobs::Scheduler> scheduler_;  // destroyed first: its workers use the rest
};

}  // namespace caas::app
