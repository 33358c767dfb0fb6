#include "app/config.h"

#include <boost/json.hpp>
#include <fstream>
#include <sstream>

extern char** environ;

namespace caas::app {
namespace json = boost::json;

namespace {

Result<int> ParseThreads(const std::string& s, const std::string& where) {
  if (s.empty() || s.size() > 3 || s.find_first_not_of("0123456789") != std::string::npos) {
    return Error::Invalid(where, "must be an integer from 1 to 64");
  }
  const int v = std::stoi(s);
  if (v < 1 || v > 64) return Error::Invalid(where, "must be an integer from 1 to 64");
  return v;
}

Status CheckLevel(const std::string& s, const std::string& where) {
  if (s == "debug" || s == "info" || s == "warn" || s == "error") return Status::Ok();
  return Error::Invalid(where, "must be one of debug, info, warn, error");
}

}  // namespace

std::map<std::string, std::string> ProcessEnvironment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    const size_t eq = kv.find('=');
    if (eq != std::string_view::npos) env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return env;
}

Result<std::pair<std::string, uint16_t>> ParseListen(std::string_view listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Error::Invalid("listen", "must be HOST:PORT like 127.0.0.1:8080");
  }
  std::string host(listen.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const std::string_view port = listen.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string_view::npos ||
      std::stoi(std::string(port)) > 65535) {
    return Error::Invalid("listen", "the port must be a number from 0 to 65535");
  }
  return std::make_pair(host, static_cast<uint16_t>(std::stoi(std::string(port))));
}

Result<Config> LoadConfig(const std::string& config_file, const Overrides& flags,
                          const std::map<std::string, std::string>& env) {
  Config c;
  if (!config_file.empty()) {
    std::ifstream in(config_file);
    if (!in) return Error::Invalid("--config", "cannot read " + config_file);
    std::stringstream ss;
    ss << in.rdbuf();
    json::error_code ec;
    json::value v = json::parse(ss.str(), ec);
    if (ec || !v.is_object()) {
      return Error::Invalid(config_file, "must be a JSON object (" + ec.message() + ")");
    }
    for (const auto& kv : v.as_object()) {
      const std::string key(kv.key());
      const std::string where = config_file + ": " + key;
      if (key == "listen" && kv.value().is_string()) {
        c.listen = std::string(kv.value().as_string());
      } else if (key == "data_dir" && kv.value().is_string()) {
        c.data_dir = std::string(kv.value().as_string());
      } else if (key == "threads" && kv.value().is_int64()) {
        auto t = ParseThreads(std::to_string(kv.value().as_int64()), where);
        if (!t) return t.error();
        c.threads = *t;
      } else if (key == "log_level" && kv.value().is_string()) {
        c.log_level = std::string(kv.value().as_string());
        if (Status s = CheckLevel(c.log_level, where); !s) return s.error();
      } else if (key == "catalog_file" && kv.value().is_string()) {
        c.catalog_file = std::string(kv.value().as_string());
      } else if (key == "store" && kv.value().is_string()) {
        c.store = std::string(kv.value().as_string());
      } else if (key == "issuer" && kv.value().is_object()) {
        for (const auto& ikv : kv.value().as_object()) {
          const std::string ik(ikv.key());
          const json::value& iv = ikv.value();
          if (ik == "address" && iv.is_array()) {
            c.issuer_address.clear();
            for (const auto& line : iv.as_array()) {
              if (!line.is_string()) return Error::Invalid(where + ".address", "must be strings");
              c.issuer_address.emplace_back(line.as_string());
            }
          } else if (iv.is_string() && ik == "name") {
            c.issuer_name = std::string(iv.as_string());
          } else if (iv.is_string() && ik == "tax_id") {
            c.issuer_tax_id = std::string(iv.as_string());
          } else if (iv.is_string() && ik == "email") {
            c.issuer_email = std::string(iv.as_string());
          } else if (iv.is_string() && ik == "logo") {
            c.issuer_logo = std::string(iv.as_string());
          } else {
            return Error::Invalid(where + "." + ik,
                                  "is not an issuer setting (name, address: [lines], tax_id, "
                                  "email, logo)");
          }
        }
      } else if (key == "invoice_paper" && kv.value().is_string()) {
        c.invoice_paper = std::string(kv.value().as_string());
      } else if (key == "smtp_url" && kv.value().is_string()) {
        c.smtp_url = std::string(kv.value().as_string());
      } else if (key == "smtp_user" && kv.value().is_string()) {
        c.smtp_user = std::string(kv.value().as_string());
      } else if (key == "smtp_ca_file" && kv.value().is_string()) {
        c.smtp_ca_file = std::string(kv.value().as_string());
      } else if (key == "mail_from" && kv.value().is_string()) {
        c.mail_from = std::string(kv.value().as_string());
      } else if (key == "email_zero_invoices" && kv.value().is_bool()) {
        c.email_zero_invoices = kv.value().as_bool();
      } else if (key == "invoice_grace_seconds" && kv.value().is_int64() &&
                 kv.value().as_int64() >= 0 && kv.value().as_int64() <= 86400 * 7) {
        c.invoice_grace_seconds = static_cast<int>(kv.value().as_int64());
      } else if (key == "scheduler_workers" && kv.value().is_int64() &&
                 kv.value().as_int64() >= 1 && kv.value().as_int64() <= 64) {
        c.scheduler_workers = static_cast<int>(kv.value().as_int64());
      } else if (key == "late_window_days" && kv.value().is_int64() && kv.value().as_int64() >= 1 &&
                 kv.value().as_int64() <= 400) {
        c.late_window_days = static_cast<int>(kv.value().as_int64());
      } else if (key == "metering_reserve_events" && kv.value().is_int64() &&
                 kv.value().as_int64() >= 0 && kv.value().as_int64() <= 2'000'000'000) {
        c.metering_reserve_events = kv.value().as_int64();
      } else if (key == "max_body_bytes" && kv.value().is_int64() &&
                 kv.value().as_int64() >= 1024 && kv.value().as_int64() <= (64 << 20)) {
        c.max_body_bytes = static_cast<size_t>(kv.value().as_int64());
      } else {
        return Error::Invalid(where,
                              "is not a known setting or has the wrong type "
                              "(listen, data_dir, log_level: strings; threads, "
                              "max_body_bytes, late_window_days (1..400), "
                              "metering_reserve_events, invoice_grace_seconds, "
                              "scheduler_workers (1..64): integers; "
                              "issuer: an object)");
      }
    }
  }
  auto from_env = [&env](const char* name) -> const std::string* {
    auto it = env.find(name);
    return it == env.end() || it->second.empty() ? nullptr : &it->second;
  };
  if (auto* v = from_env("CAAS_BILLING_LISTEN")) c.listen = *v;
  if (auto* v = from_env("CAAS_BILLING_DATA_DIR")) c.data_dir = *v;
  if (auto* v = from_env("CAAS_BILLING_THREADS")) {
    auto t = ParseThreads(*v, "CAAS_BILLING_THREADS");
    if (!t) return t.error();
    c.threads = *t;
  }
  if (auto* v = from_env("CAAS_BILLING_LOG_LEVEL")) {
    if (Status s = CheckLevel(*v, "CAAS_BILLING_LOG_LEVEL"); !s) return s.error();
    c.log_level = *v;
  }
  if (auto* v = from_env("CAAS_BILLING_ADMIN_KEY")) c.admin_key = *v;
  if (auto* v = from_env("CAAS_BILLING_METERING_RESERVE_EVENTS")) {
    char* end = nullptr;
    const long long n = std::strtoll(v->c_str(), &end, 10);
    if (*end != '\0' || n < 0 || n > 2'000'000'000) {
      return Error::Invalid("CAAS_BILLING_METERING_RESERVE_EVENTS",
                            "must be a whole number from 0 to 2000000000");
    }
    c.metering_reserve_events = n;
  }
  if (auto* v = from_env("CAAS_BILLING_LATE_WINDOW_DAYS")) {
    char* end = nullptr;
    const long days = std::strtol(v->c_str(), &end, 10);
    if (*end != '\0' || days < 1 || days > 400) {
      return Error::Invalid("CAAS_BILLING_LATE_WINDOW_DAYS",
                            "must be a whole number from 1 to 400");
    }
    c.late_window_days = static_cast<int>(days);
  }
  if (auto* v = from_env("CAAS_BILLING_ISSUER_NAME")) c.issuer_name = *v;
  if (auto* v = from_env("CAAS_BILLING_ISSUER_ADDRESS")) {
    c.issuer_address.clear();
    std::string_view rest(*v);
    for (;;) {
      const size_t bar = rest.find('|');
      c.issuer_address.emplace_back(rest.substr(0, bar));
      if (bar == std::string_view::npos) break;
      rest.remove_prefix(bar + 1);
    }
  }
  if (auto* v = from_env("CAAS_BILLING_ISSUER_TAX_ID")) c.issuer_tax_id = *v;
  if (auto* v = from_env("CAAS_BILLING_ISSUER_EMAIL")) c.issuer_email = *v;
  if (auto* v = from_env("CAAS_BILLING_ISSUER_LOGO")) c.issuer_logo = *v;
  if (auto* v = from_env("CAAS_BILLING_INVOICE_GRACE_SECONDS")) {
    char* end = nullptr;
    const long secs = std::strtol(v->c_str(), &end, 10);
    if (*end != '\0' || secs < 0 || secs > 86400 * 7) {
      return Error::Invalid("CAAS_BILLING_INVOICE_GRACE_SECONDS",
                            "must be a whole number of seconds from 0 to 604800");
    }
    c.invoice_grace_seconds = static_cast<int>(secs);
  }
  if (auto* v = from_env("CAAS_BILLING_SCHEDULER_WORKERS")) {
    char* end = nullptr;
    const long n = std::strtol(v->c_str(), &end, 10);
    if (*end != '\0' || n < 1 || n > 64) {
      return Error::Invalid("CAAS_BILLING_SCHEDULER_WORKERS",
                            "must be a whole number from 1 to 64");
    }
    c.scheduler_workers = static_cast<int>(n);
  }
  if (auto* v = from_env("CAAS_BILLING_INVOICE_PAPER")) c.invoice_paper = *v;
  if (c.invoice_paper != "a4" && c.invoice_paper != "letter") {
    return Error::Invalid("invoice_paper", "must be a4 or letter");
  }
  if (auto* v = from_env("CAAS_BILLING_SMTP_URL")) c.smtp_url = *v;
  if (auto* v = from_env("CAAS_BILLING_SMTP_USER")) c.smtp_user = *v;
  if (auto* v = from_env("CAAS_BILLING_SMTP_PASSWORD")) c.smtp_password = *v;
  if (auto* v = from_env("CAAS_BILLING_MAIL_FROM")) c.mail_from = *v;
  if (auto* v = from_env("CAAS_BILLING_SMTP_CA_FILE")) c.smtp_ca_file = *v;
  if (!c.smtp_url.empty() && c.smtp_url.rfind("smtp://", 0) != 0 &&
      c.smtp_url.rfind("smtps://", 0) != 0) {
    return Error::Invalid("smtp_url", "must be smtp://HOST:PORT or smtps://HOST:PORT");
  }
  if (auto* v = from_env("CAAS_BILLING_STRIPE_SECRET_KEY")) c.stripe_secret_key = *v;
  if (auto* v = from_env("CAAS_BILLING_STRIPE_WEBHOOK_SECRET")) c.stripe_webhook_secret = *v;
  if (auto* v = from_env("CAAS_BILLING_STRIPE_API_BASE")) c.stripe_api_base = *v;
  if (auto* v = from_env("CAAS_BILLING_STRIPE_TIMEOUT_MS")) {
    char* end = nullptr;
    const long ms = std::strtol(v->c_str(), &end, 10);
    if (*end != '\0' || ms < 100 || ms > 120000) {
      return Error::Invalid("CAAS_BILLING_STRIPE_TIMEOUT_MS",
                            "must be a whole number of milliseconds from 100 to 120000");
    }
    c.stripe_timeout_ms = static_cast<int>(ms);
  }
  if (!c.stripe_secret_key.empty() && c.stripe_secret_key.rfind("sk_", 0) != 0 &&
      c.stripe_secret_key.rfind("rk_", 0) != 0) {
    // The message never repeats the value: it is a secret.
    return Error::Invalid("CAAS_BILLING_STRIPE_SECRET_KEY",
                          "must be a Stripe key (sk_... or rk_...)");
  }
  if (!c.stripe_webhook_secret.empty() && c.stripe_webhook_secret.rfind("whsec_", 0) != 0) {
    return Error::Invalid("CAAS_BILLING_STRIPE_WEBHOOK_SECRET", "must be a whsec_... secret");
  }
  if (c.stripe_api_base.rfind("https://", 0) != 0 && c.stripe_api_base.rfind("http://", 0) != 0) {
    return Error::Invalid("CAAS_BILLING_STRIPE_API_BASE", "must be an http(s):// URL");
  }
  while (!c.stripe_api_base.empty() && c.stripe_api_base.back() == '/')
    c.stripe_api_base.pop_back();
  if (c.issuer_name.empty() || c.issuer_name.size() > 200) {
    return Error::Invalid("issuer.name", "must be 1 to 200 characters");
  }
  if (flags.listen) c.listen = *flags.listen;
  if (flags.data_dir) c.data_dir = *flags.data_dir;
  if (flags.threads) {
    auto t = ParseThreads(std::to_string(*flags.threads), "--threads");
    if (!t) return t.error();
    c.threads = *t;
  }
  if (flags.log_level) {
    if (Status s = CheckLevel(*flags.log_level, "--log-level"); !s) return s.error();
    c.log_level = *flags.log_level;
  }
  if (auto* v = from_env("CAAS_BILLING_STORE")) c.store = *v;
  if (flags.store) c.store = *flags.store;
  if (!c.store.empty() && c.store.rfind("sqlite:", 0) != 0) {
    return Error::Invalid("--store", "must be sqlite:PATH (the embedded store)");
  }
  if (c.store == "sqlite:") return Error::Invalid("--store", "sqlite: needs a path");
  if (auto* v = from_env("CAAS_BILLING_CATALOG")) c.catalog_file = *v;
  if (flags.catalog) c.catalog_file = *flags.catalog;
  if (auto* v = from_env("CAAS_BILLING_CLOCK")) c.clock = *v;
  if (flags.clock) c.clock = *flags.clock;
  if (auto* v = from_env("CAAS_BILLING_NOW")) c.now = *v;
  if (flags.now) c.now = *flags.now;
  if (c.clock != "system" && c.clock != "manual") {
    return Error::Invalid("--clock", "must be system or manual");
  }
  if (c.now) {
    if (c.clock != "manual") return Error::Invalid("--now", "needs --clock manual");
    if (!ParseRfc3339(*c.now)) return Error::Invalid("--now", "must be an RFC 3339 date-time");
  }
  if (auto l = ParseListen(c.listen); !l) return l.error();
  return c;
}

}  // namespace caas::app
