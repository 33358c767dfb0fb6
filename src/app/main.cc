// caas-billing: the service and its operator CLI.
#include <CLI/CLI.hpp>
#include <atomic>
#include <boost/json.hpp>
#include <iostream>
#include <thread>

#include "app/app.h"
#include "app/catalog_cli.h"
#include "app/config.h"
#include "app/doctor_cli.h"
#include "app/invoices_cli.h"
#include "app/jobs_cli.h"
#include "app/metering_cli.h"
#include "app/subscriptions_cli.h"
#include "core/log.h"
#include "http/api.h"
#include "http/server.h"
#include "storage/memory/memory_store.h"

#ifndef CAAS_BILLING_VERSION
#define CAAS_BILLING_VERSION "0.0.0-dev"
#endif

namespace caas::app {
namespace {

namespace json = boost::json;

LogLevel LevelFromName(const std::string& s) {
  if (s == "debug") return LogLevel::kDebug;
  if (s == "warn") return LogLevel::kWarn;
  if (s == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}

int Fail(const std::string& what) {
  std::cerr << "caas-billing: " << what << "\n";
  return 2;
}

int Serve(const Config& config) {
  SetMinLogLevel(LevelFromName(config.log_level));
  App app(config, /*migrate=*/true, /*metering=*/true);
  auto admin = app.keys().EnsureAdminKey(config.admin_key);
  if (!admin) return Fail(admin.error().field + " " + admin.error().message);
  if (admin->has_value()) {
    // Printed to the terminal once, never logged: only its hash is stored.
    std::cout << "\ncaas-billing: created the first admin API key. It is shown only now; "
                 "store it safely:\n\n  "
              << **admin << "\n\n"
              << std::flush;
  }
  auto listen = ParseListen(config.listen);
  http::Services services{app.store(),           app.clock(),          app.ids(),
                          app.tenants(),         app.keys(),           &app.metering(),
                          &app.billing_events(), &app.subscriptions(), &app.jobs(),
                          &app.scheduler(),      app.manual_clock(),   app.invoices(),
                          app.payments()};
  http::Api api(services);
  http::ServerOptions opts;
  opts.host = listen->first;
  opts.port = listen->second;
  opts.threads = config.threads;
  opts.max_body_bytes = config.max_body_bytes;
  // Bulk ingest takes up to 10 MiB (metering::kMaxRequestBytes).
  opts.largest_body_bytes = metering::kMaxRequestBytes;
  opts.body_limit_for = [max = config.max_body_bytes](std::string_view target) {
    return target.substr(0, target.find('?')) == "/v1/events" ? metering::kMaxRequestBytes : max;
  };
  opts.stop_on_signals = true;
  http::HttpServer server(
      opts, [&api](http::Request& r) { return api.Handle(r); },
      [&api](int status, const std::string& detail) {
        return api.RenderTransportError(status, detail);
      });
  api.AddMetricsSource([&server] {
    const auto st = server.stats();
    return "# HELP caas_http_connections Open HTTP connections\n# TYPE caas_http_connections "
           "gauge\n"
           "caas_http_connections " +
           std::to_string(st.connections) +
           "\n# HELP caas_http_accept_errors_total Failed accepts (e.g. out of file descriptors)\n"
           "# TYPE caas_http_accept_errors_total counter\ncaas_http_accept_errors_total " +
           std::to_string(st.accept_errors) +
           "\n# HELP caas_http_accept_paused_total Times accepting paused at the connection cap\n"
           "# TYPE caas_http_accept_paused_total counter\ncaas_http_accept_paused_total " +
           std::to_string(st.accept_paused) + "\n";
  });
  server.Listen();
  Log(LogLevel::kInfo, "serving",
      {{"listen", config.listen},
       {"port", static_cast<int64_t>(server.port())},
       {"data_dir", config.data_dir},
       {"store", app.store().Describe()},
       {"clock", config.clock},
       {"threads", static_cast<int64_t>(config.threads)},
       {"version", CAAS_BILLING_VERSION}});
  // On the system clock, the scheduler's workers run what falls due (trial
  // reminders and ends, period ends, outbox relays, jobs). A manual clock
  // runs them in POST /v1/clock/advance instead.
  if (!app.manual_clock()) app.scheduler().Start(config.scheduler_workers);
  server.Run();
  app.scheduler().Stop();
  Log(LogLevel::kInfo, "stopped");
  return 0;
}

void PrintJson(const json::value& v) { std::cout << json::serialize(v) << "\n"; }

}  // namespace

int Main(int argc, char** argv) {
  CLI::App cli{"caas-billing: billing, pricing and subscriptions for a chat platform"};
  cli.require_subcommand(1);
  cli.fallthrough();
  std::string config_file;
  Overrides flags;
  cli.add_option("--config", config_file,
                 "JSON config file (keys: listen, data_dir, threads, "
                 "log_level, max_body_bytes, late_window_days)");
  cli.add_option("--data-dir", flags.data_dir,
                 "data directory [env CAAS_BILLING_DATA_DIR] (./data)");
  cli.add_option("--store", flags.store,
                 "document store: sqlite:PATH, a relative PATH under the data directory "
                 "[env CAAS_BILLING_STORE] (sqlite:billing.db)");

  auto* serve = cli.add_subcommand("serve", "run the HTTP API");
  serve->add_option("--listen", flags.listen,
                    "HOST:PORT [env CAAS_BILLING_LISTEN] (127.0.0.1:8080)");
  serve->add_option("--threads", flags.threads, "I/O threads [env CAAS_BILLING_THREADS] (8)");
  serve->add_option("--clock", flags.clock,
                    "system|manual: manual time moves only by POST /v1/clock/advance "
                    "[env CAAS_BILLING_CLOCK] (system)");
  serve->add_option("--now", flags.now,
                    "start time of a manual clock, RFC 3339 [env CAAS_BILLING_NOW] (now)");
  serve->add_option("--catalog", flags.catalog,
                    "plan catalog JSON file [env CAAS_BILLING_CATALOG] (built in)");
  serve->add_option("--log-level", flags.log_level,
                    "debug|info|warn|error [env CAAS_BILLING_LOG_LEVEL]");

  auto* migrate = cli.add_subcommand("migrate", "apply database migrations");
  bool salvage = false;
  auto* doctor = cli.add_subcommand(
      "doctor", "check the data directory (manifest, store, event log) and report damage");
  doctor->add_flag("--salvage", salvage,
                   "with the server stopped: keep every intact record of a damaged event log in "
                   "a new log, and move the damaged segments aside");
  auto* version = cli.add_subcommand("version", "print the version");
  auto* routes = cli.add_subcommand("routes", "list the HTTP routes (METHOD PATTERN)");

  auto* tenants_cmd = cli.add_subcommand("tenants", "manage tenants");
  tenants_cmd->require_subcommand(1);
  std::string t_name, t_email, t_currency, t_id;
  auto* t_create = tenants_cmd->add_subcommand("create", "create a tenant");
  t_create->add_option("--name", t_name, "company name")->required();
  t_create->add_option("--email", t_email, "billing e-mail")->required();
  t_create->add_option("--currency", t_currency, "ISO 4217 code (USD)");
  auto* t_list = tenants_cmd->add_subcommand("list", "list tenants");
  auto* t_show = tenants_cmd->add_subcommand("show", "show one tenant");
  t_show->add_option("id", t_id, "tenant id")->required();

  // Commands that talk to a running server.
  IngestOptions ingest_opts;
  std::string client_url, client_key, u_tenant;
  bool u_json = false, no_progress = false;
  auto add_client_options = [&](CLI::App* cmd) {
    cmd->add_option("--url", client_url,
                    "server URL [env CAAS_BILLING_URL] (http:// + the configured listen address)");
    cmd->add_option("--key", client_key, "API key [env CAAS_BILLING_API_KEY]");
  };
  auto* ingest = cli.add_subcommand(
      "ingest", "send usage events (NDJSON, one CloudEvent per line) to a running server");
  ingest->add_option("file", ingest_opts.file, "NDJSON file, or - for standard input")->required();
  ingest->add_option("--batch", ingest_opts.batch, "events per request (1..10000, default 5000)");
  ingest->add_flag("--no-progress", no_progress, "no progress line on stderr");
  add_client_options(ingest);
  auto* usage = cli.add_subcommand("usage", "show a tenant's usage in the current period");
  usage->add_option("tenant", u_tenant, "tenant id")->required();
  usage->add_flag("--json", u_json, "print the API's JSON answer");
  add_client_options(usage);

  std::string catalog_file, p_id;
  int p_version = 0;
  auto* plans_cmd = cli.add_subcommand("plans", "the plan catalog");
  plans_cmd->require_subcommand(1);
  plans_cmd->add_option("--catalog", catalog_file,
                        "catalog JSON file [env CAAS_BILLING_CATALOG] (built-in defaults)");
  auto* p_list = plans_cmd->add_subcommand("list", "list every plan version");
  auto* p_show = plans_cmd->add_subcommand("show", "show one plan (latest version by default)");
  p_show->add_option("plan", p_id, "plan id (free, pro, enterprise)")->required();
  p_show->add_option("--version", p_version, "plan version");
  int m_to = 0, m_from = 0;
  auto* p_migrate = plans_cmd->add_subcommand(
      "migrate", "move subscriptions on a plan to another version (on a running server)");
  p_migrate->add_option("plan", p_id, "plan id")->required();
  p_migrate->add_option("--to-version", m_to, "target version")->required();
  p_migrate->add_option("--from-version", m_from, "only subscriptions on this version");

  std::string s_tenant, s_plan, s_at;
  bool s_trial = false, s_preview = false, s_now = false, s_json = false;
  auto* subs_cmd =
      cli.add_subcommand("subscriptions", "a tenant's subscription (on a running server)");
  subs_cmd->require_subcommand(1);
  auto* s_show = subs_cmd->add_subcommand("show", "the current subscription, pending lines");
  s_show->add_option("tenant", s_tenant, "tenant id")->required();
  s_show->add_flag("--json", s_json, "print the API's JSON answer");
  auto* s_change =
      subs_cmd->add_subcommand("change", "change plan (upgrade now, downgrade at period end)");
  s_change->add_option("tenant", s_tenant, "tenant id")->required();
  s_change->add_option("plan", s_plan, "target plan id")->required();
  s_change->add_option("--at", s_at, "now|period_end");
  s_change->add_flag("--trial", s_trial, "start the plan's trial");
  s_change->add_flag("--preview", s_preview, "show the lines without changing anything");
  auto* s_cancel = subs_cmd->add_subcommand("cancel", "cancel at period end (or --now)");
  s_cancel->add_option("tenant", s_tenant, "tenant id")->required();
  s_cancel->add_flag("--now", s_now, "cancel now, with a proration credit");
  auto* jobs_cmd = cli.add_subcommand("jobs", "the durable job queue (on a running server)");
  jobs_cmd->require_subcommand(1);
  std::string j_state, j_type, j_id;
  int j_limit = 20;
  bool j_json = false;
  auto* j_list = jobs_cmd->add_subcommand("list", "jobs, oldest first");
  j_list->add_option("--state", j_state, "queued|running|done|dead");
  j_list->add_option("--type", j_type, "only jobs of this type");
  j_list->add_option("--limit", j_limit, "at most this many (default 20)")
      ->check(CLI::Range(1, 100000));
  j_list->add_flag("--json", j_json, "one JSON object per line");
  auto* j_show = jobs_cmd->add_subcommand("show", "one job, as JSON");
  j_show->add_option("id", j_id, "job id (job_…)")->required();
  auto* j_retry = jobs_cmd->add_subcommand("retry", "put a dead job back in the queue, now");
  j_retry->add_option("id", j_id, "job id (job_…)")->required();
  auto* inv_cmd = cli.add_subcommand("invoices", "invoices (on a running server)");
  inv_cmd->require_subcommand(1);
  std::string i_tenant, i_status, i_id, i_at;
  int i_limit = 20;
  bool i_json = false;
  auto* i_list = inv_cmd->add_subcommand("list", "invoices, oldest first");
  i_list->add_option("--tenant", i_tenant, "only this tenant's");
  i_list->add_option("--status", i_status, "draft|finalized|paid|void|uncollectible");
  i_list->add_option("--limit", i_limit, "at most this many (default 20)")
      ->check(CLI::Range(1, 100000));
  i_list->add_flag("--json", i_json, "one JSON object per line");
  auto* i_show = inv_cmd->add_subcommand("show", "one invoice, its lines and totals");
  i_show->add_option("id", i_id, "invoice id (in_…)")->required();
  i_show->add_flag("--json", i_json, "as JSON");
  std::string i_out;
  auto* i_pdf = inv_cmd->add_subcommand("pdf", "the invoice's PDF");
  i_pdf->add_option("id", i_id, "invoice id (in_…)")->required();
  i_pdf->add_option("-o,--out", i_out, "the file to write (default NUMBER.pdf; - for stdout)");
  auto* i_close = inv_cmd->add_subcommand(
      "close", "invoice every period that ended (by --at, default now) that has none yet");
  i_close->add_option("--tenant", i_tenant, "only this tenant (default: every tenant)");
  i_close->add_option("--at", i_at, "an RFC 3339 instant, not in the future");
  std::string i_amount, i_method = "bank_transfer", i_reference;
  auto* i_pay = inv_cmd->add_subcommand(
      "pay", "record a payment received outside a gateway (a bank transfer, a check)");
  i_pay->add_option("id", i_id, "invoice id (in_…)")->required();
  i_pay->add_option("--amount", i_amount, "in the invoice's currency, e.g. 99.00")->required();
  i_pay->add_option("--method", i_method, "bank_transfer (default), check, cash or other");
  i_pay->add_option("--reference", i_reference, "the bank's reference of the transfer");
  for (auto* cmd : {p_migrate, s_show, s_change, s_cancel, j_list, j_show, j_retry, i_list, i_show,
                    i_close, i_pay}) {
    cmd->add_option("--url", client_url, "server URL [env CAAS_BILLING_URL]");
    cmd->add_option("--key", client_key, "API key [env CAAS_BILLING_API_KEY]");
  }

  auto* keys_cmd = cli.add_subcommand("keys", "manage API keys");
  keys_cmd->require_subcommand(1);
  bool k_admin = false;
  std::string k_tenant, k_name, k_id;
  auto* k_create =
      keys_cmd->add_subcommand("create", "create an API key (the secret is shown once)");
  auto* admin_flag = k_create->add_flag("--admin", k_admin, "an admin (operator) key");
  k_create->add_option("--tenant", k_tenant, "a key scoped to this tenant")->excludes(admin_flag);
  k_create->add_option("--name", k_name, "a label");
  auto* k_revoke = keys_cmd->add_subcommand("revoke", "revoke an API key");
  k_revoke->add_option("id", k_id, "key id (key_…)")->required();

  CLI11_PARSE(cli, argc, argv);

  if (*version) {
    std::cout << "caas-billing " << CAAS_BILLING_VERSION << "\n";
    return 0;
  }
  auto config = LoadConfig(config_file, flags, ProcessEnvironment());
  if (!config) return Fail(config.error().field + " " + config.error().message);

  // Commands that talk to a running server: --url/--key, else the
  // environment, else the configured listen address.
  if (*p_migrate || *subs_cmd || *jobs_cmd || *inv_cmd || *ingest || *usage) {
    const auto env = ProcessEnvironment();
    auto from_env = [&env](const char* name) {
      auto it = env.find(name);
      return it == env.end() ? std::string() : it->second;
    };
    if (client_url.empty()) client_url = from_env("CAAS_BILLING_URL");
    if (client_url.empty()) client_url = "http://" + config->listen;
    if (client_key.empty()) client_key = from_env("CAAS_BILLING_API_KEY");
  }
  if (*inv_cmd) {
    const ClientTarget target{client_url, client_key};
    if (*i_list) return RunInvoicesList(target, i_tenant, i_status, i_limit, i_json);
    if (*i_show) return RunInvoicesShow(target, i_id, i_json);
    if (*i_pdf) return RunInvoicesPdf(target, i_id, i_out.empty() ? i_id + ".pdf" : i_out);
    if (*i_pay) return RunInvoicesPay(target, i_id, i_amount, i_method, i_reference);
    return RunInvoicesClose(target, i_tenant, i_at);
  }
  if (*jobs_cmd) {
    const ClientTarget target{client_url, client_key};
    if (*j_list) return RunJobsList(target, j_state, j_type, j_limit, j_json);
    if (*j_show) return RunJobsShow(target, j_id);
    return RunJobsRetry(target, j_id);
  }
  if (*p_migrate || *subs_cmd) {
    const ClientTarget target{client_url, client_key};
    if (*p_migrate) {
      return RunPlansMigrate(target, p_id, m_to,
                             m_from > 0 ? std::optional<int>(m_from) : std::nullopt);
    }
    if (*s_show) return RunSubscriptionShow(target, s_tenant, s_json);
    if (*s_change) return RunSubscriptionChange(target, s_tenant, s_plan, s_at, s_trial, s_preview);
    return RunSubscriptionCancel(target, s_tenant, s_now);
  }
  if (*plans_cmd) {
    if (catalog_file.empty()) {
      const auto env = ProcessEnvironment();
      if (auto it = env.find("CAAS_BILLING_CATALOG"); it != env.end()) catalog_file = it->second;
    }
    if (*p_list) return RunPlansList(catalog_file);
    return RunPlansShow(catalog_file, p_id, p_version);
  }
  if (*ingest || *usage) {
    if (*usage) return RunUsage(client_url, client_key, u_tenant, u_json);
    ingest_opts.url = client_url;
    ingest_opts.key = client_key;
    ingest_opts.progress = !no_progress;
    return RunIngest(ingest_opts);
  }

  if (*doctor) return RunDoctor(config->data_dir, StoreUrl(*config), salvage);
  try {
    if (*serve) return Serve(*config);
    if (*routes) {
      // Needs no database: the routes are the same whatever the store holds.
      SystemClock clock;
      IdGenerator ids(clock);
      storage::MemoryStore store(AllCollections());
      tenants::TenantService tenants(store, clock, ids);
      tenants::ApiKeyService keys(store, clock, ids);
      http::Api api(http::Services{store, clock, ids, tenants, keys});
      for (const auto& r : api.Routes()) std::cout << r.method << " " << r.pattern << "\n";
      return 0;
    }
    if (*migrate) {
      App app(*config, /*migrate=*/true);
      std::cout << "schema version " << app.store().SchemaVersion() << " (latest)\n";
      return 0;
    }
    App app(*config, /*migrate=*/true);
    if (*t_create) {
      tenants::TenantFields f;
      f.name = t_name;
      f.billing_email = t_email;
      if (!t_currency.empty()) f.currency = t_currency;
      std::vector<Error> errors;
      auto t = app.tenants().Create(f, "", &errors);
      if (!t) {
        for (const auto& e : errors)
          std::cerr << "caas-billing: " << e.field << " " << e.message << "\n";
        return 2;
      }
      PrintJson(tenants::TenantToJson(*t));
      return 0;
    }
    if (*t_list) {
      std::string after;
      while (true) {
        auto page = app.tenants().List(after, 100);
        for (const auto& t : page.items) {
          std::cout << t.id << "  " << t.name << "  " << t.billing_email << "  " << t.currency
                    << "\n";
        }
        if (!page.has_more || page.items.empty()) break;
        after = page.items.back().id;
      }
      return 0;
    }
    if (*t_show) {
      auto t = app.tenants().Get(t_id);
      if (!t) return Fail("no tenant " + t_id);
      PrintJson(tenants::TenantToJson(*t));
      return 0;
    }
    if (*k_create) {
      if (!k_admin && k_tenant.empty()) return Fail("keys create needs --admin or --tenant ID");
      if (!k_admin && !app.tenants().Get(k_tenant)) return Fail("no tenant " + k_tenant);
      auto k = app.keys().Create(k_admin ? tenants::KeyKind::kAdmin : tenants::KeyKind::kTenant,
                                 k_tenant, k_name);
      if (!k) return Fail(k.error().message);
      std::cerr << "key " << k->key.id << " created; the secret is shown only now:\n";
      std::cout << k->secret << "\n";
      return 0;
    }
    if (*k_revoke) {
      auto k = app.keys().Revoke(k_id);
      if (!k) return Fail("no key " + k_id);
      std::cout << "revoked " << k->id
                << "; a running server stops accepting it within 10 s (its authentication "
                   "cache), revoking through the API is immediate\n";
      return 0;
    }
  } catch (const std::exception& e) {
    return Fail(e.what());
  }
  return 0;
}

}  // namespace caas::app

int main(int argc, char** argv) { return caas::app::Main(argc, argv); }
