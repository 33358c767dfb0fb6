#include "payments/stripe_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <mutex>
#include <random>
#include <thread>

namespace caas::payments {
namespace {

constexpr size_t kMaxAnswer = 4 << 20;  // a Stripe answer larger than this is refused

struct Exchange {
  std::string body;
  std::string request_id;
  std::optional<bool> should_retry;
  bool replayed = false;
  bool too_large = false;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  if (ex->body.size() + size * n > kMaxAnswer) {
    ex->too_large = true;
    return 0;
  }
  ex->body.append(data, size * n);
  return size * n;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return std::string(s);
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  const std::string_view line(data, size * n);
  const size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    const std::string name = Lower(line.substr(0, colon));
    const std::string value = Trim(line.substr(colon + 1));
    if (name == "request-id") ex->request_id = value.substr(0, 200);
    if (name == "stripe-should-retry") ex->should_retry = value == "true";
    if (name == "idempotent-replayed") ex->replayed = value == "true";
  }
  return size * n;
}

std::string Str(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// Fills the error fields from Stripe's error body and names the outcome.
void ReadError(const std::string& body, StripeResult& r) {
  boost::system::error_code ec;
  const auto v = boost::json::parse(body, ec);
  if (!ec && v.is_object()) {
    if (const auto* e = v.as_object().if_contains("error"); e && e->is_object()) {
      const auto& err = e->as_object();
      r.type = Str(err, "type");
      r.code = Str(err, "code");
      r.decline_code = Str(err, "decline_code");
      r.advice_code = Str(err, "advice_code");
      r.param = Str(err, "param");
      r.message = Str(err, "message").substr(0, 500);
      if (const auto* pi = err.if_contains("payment_intent"); pi && pi->is_object()) {
        r.payment_intent_id = Str(pi->as_object(), "id");
      }
    }
  }
  const int s = r.http_status;
  if (r.type == "idempotency_error") {
    r.outcome = StripeOutcome::kIdempotencyError;
  } else if (r.code == "authentication_required") {
    r.outcome = StripeOutcome::kAuthenticationRequired;
  } else if (s == 402 || r.type == "card_error") {
    r.outcome = StripeOutcome::kDeclined;
  } else if (s == 401 || s == 403) {
    r.outcome = StripeOutcome::kAuthentication;
  } else if (s == 429) {
    r.outcome = StripeOutcome::kRateLimited;
  } else if (s >= 500) {
    r.outcome = StripeOutcome::kUnavailable;
  } else if (s == 409) {
    r.outcome = StripeOutcome::kUnknown;  // still in flight under this key
  } else {
    r.outcome = StripeOutcome::kInvalidRequest;
  }
}

double Jitter() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

std::string_view StripeOutcomeName(StripeOutcome o) {
  switch (o) {
    case StripeOutcome::kOk:
      return "ok";
    case StripeOutcome::kDeclined:
      return "declined";
    case StripeOutcome::kAuthenticationRequired:
      return "authentication_required";
    case StripeOutcome::kInvalidRequest:
      return "invalid_request";
    case StripeOutcome::kIdempotencyError:
      return "idempotency_error";
    case StripeOutcome::kRateLimited:
      return "rate_limited";
    case StripeOutcome::kAuthentication:
      return "authentication";
    case StripeOutcome::kUnavailable:
      return "unavailable";
    case StripeOutcome::kUnknown:
      return "unknown";
  }
  return "unknown";
}

bool ShouldRetryStripe(int http_status, std::optional<bool> should_retry,
                       std::string_view error_code) {
  if (http_status == 0) return true;  // no answer: the same key replays or runs it once
  if (should_retry) return *should_retry;
  if (http_status == 409) return true;
  if (http_status == 429) return error_code == "lock_timeout";
  return http_status >= 500;
}

std::chrono::milliseconds StripeRetryDelay(const StripeOptions& o, int n, double jitter) {
  const auto base = o.base_delay.count();
  const long long exp = base * (1LL << std::min(n, 20));
  const long long capped = std::min<long long>(exp, o.max_delay.count());
  const auto d = static_cast<long long>(static_cast<double>(capped) * (0.5 + 0.5 * jitter));
  return std::chrono::milliseconds(std::max<long long>(d, base));
}

StripeClient::StripeClient(StripeOptions options,
                           std::function<void(std::chrono::milliseconds)> sleep)
    : o_(std::move(options)), sleep_(std::move(sleep)) {
  if (!sleep_) sleep_ = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

StripeResult StripeClient::Post(std::string_view path, const FormParams& params,
                                std::string_view idempotency_key) {
  return Call("POST", path, FormEncode(params), idempotency_key);
}

StripeResult StripeClient::Get(std::string_view path, const FormParams& query) {
  std::string p(path);
  if (!query.empty()) p += "?" + FormEncode(query);
  return Call("GET", p, {}, {});
}

StripeResult StripeClient::Call(const char* method, std::string_view path, const std::string& body,
                                std::string_view idempotency_key) {
  const bool post = std::string_view(method) == "POST";
  const std::string url = o_.api_base + std::string(path);
  const std::string auth = "Authorization: Bearer " + o_.secret_key;
  const std::string version = "Stripe-Version: " + o_.api_version;
  const std::string key = "Idempotency-Key: " + std::string(idempotency_key);
  StripeResult r;
  for (int attempt = 0;; ++attempt) {
    Exchange ex;
    CURL* c = curl_easy_init();
    if (!c) {
      r.outcome = StripeOutcome::kUnknown;
      r.message = "cannot start an HTTP request";
      return r;
    }
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, auth.c_str());
    headers = curl_slist_append(headers, version.c_str());
    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, "User-Agent: caas-billing");
    if (post) {
      headers = curl_slist_append(headers, key.c_str());
      headers = curl_slist_append(headers, "Content-Type: application/x-www-form-urlencoded");
      curl_easy_setopt(c, CURLOPT_POST, 1L);
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    }
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(o_.timeout.count()));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o_.connect_timeout.count()));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &ex);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &ex);
    if (!o_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, o_.ca_file.c_str());
    const CURLcode rc = curl_easy_perform(c);
    long status = 0;
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);

    r = StripeResult{};
    r.attempts = attempt + 1;
    r.request_id = ex.request_id;
    r.replayed = ex.replayed;
    r.http_status = rc == CURLE_OK ? static_cast<int>(status) : 0;
    if (rc != CURLE_OK) {
      r.outcome = StripeOutcome::kUnknown;
      r.message = ex.too_large ? "the answer was too large" : curl_easy_strerror(rc);
    } else if (r.http_status >= 200 && r.http_status < 300) {
      boost::system::error_code ec;
      auto v = boost::json::parse(ex.body, ec);
      if (ec || !v.is_object()) {
        // Stripe said yes but the answer is unreadable: what happened is unknown.
        r.outcome = StripeOutcome::kUnknown;
        r.message = "unreadable answer";
      } else {
        r.outcome = StripeOutcome::kOk;
        r.object = std::move(v.as_object());
      }
      return r;
    } else {
      ReadError(ex.body, r);
    }
    if (attempt >= o_.max_retries || !ShouldRetryStripe(r.http_status, ex.should_retry, r.code)) {
      return r;
    }
    sleep_(StripeRetryDelay(o_, attempt, Jitter()));
  }
}

}  // namespace caas::payments

namespace caas::payments {

std::string ChargeIdempotencyKey(std::string_view invoice_id, int attempt) {
  return "charge:" + std::string(invoice_id) + ":" + std::to_string(attempt);
}

StripeResult CreateOffSessionPaymentIntent(StripeClient& client, const OffSessionCharge& c) {
  std::string currency = c.currency;
  std::transform(currency.begin(), currency.end(), currency.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  const FormParams params = {
      {"amount", std::to_string(c.amount_minor)},
      {"currency", currency},
      {"customer", c.customer},
      {"payment_method", c.payment_method},
      {"off_session", "true"},
      {"confirm", "true"},
      {"metadata[invoice_id]", c.invoice_id},
      {"metadata[attempt]", std::to_string(c.attempt)},
  };
  return client.Post("/v1/payment_intents", params, ChargeIdempotencyKey(c.invoice_id, c.attempt));
}

}  // namespace caas::payments
