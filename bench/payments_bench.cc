// Stripe webhooks: signature verification alone, and the whole processing
// of an event by the service (verify, parse, duplicate check, store) on the
// embedded store, from 16 threads at once as deliveries arrive.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "app/app.h"
#include "core/log.h"
#include "payments/webhook_signature.h"

namespace {

const std::string kSecret = "whsec_bench_0123456789abcdef";

// A typical event (~1.2 KB): a PaymentIntent of another system's, which the
// service records and does not act on.
std::string Event(const std::string& id) {
  std::string pad(900, 'x');
  return R"({"id":")" + id +
         R"(","object":"event","type":"customer.updated","api_version":"2026-07-29.dahlia",)"
         R"("created":1772323200,"livemode":false,"data":{"object":{"id":"cus_bench","object":)"
         R"("customer","description":")" +
         pad + R"("}}})";
}

void BM_VerifyStripeSignature(benchmark::State& state) {
  const std::string body = Event("evt_bench");
  const caas::Instant now = caas::FromUnixSeconds(1772323200);
  const std::string header = caas::payments::StripeSignatureHeader(kSecret, 1772323200, body);
  for (auto _ : state) {
    auto s = caas::payments::VerifyStripeSignature(header, body, kSecret, now);
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VerifyStripeSignature);

std::unique_ptr<caas::app::App> g_app;
std::atomic<long> g_next{0};

void BM_ProcessWebhook(benchmark::State& state) {
  if (state.thread_index() == 0 && !g_app) {
    const auto dir =
        std::filesystem::temp_directory_path() / ("caas-webhook-bench-" + std::to_string(getpid()));
    caas::app::Config config;
    config.data_dir = dir.string();
    config.log_level = "warn";
    config.clock = "manual";
    config.now = "2026-03-01T00:00:00Z";
    config.stripe_secret_key = "sk_test_bench";
    config.stripe_api_base = "http://127.0.0.1:9";  // never called for this event type
    config.stripe_webhook_secret = kSecret;
    caas::SetMinLogLevel(caas::LogLevel::kWarn);
    g_app = std::make_unique<caas::app::App>(config, /*migrate=*/true, /*metering=*/true);
  }
  for (auto _ : state) {
    const std::string body = Event("evt_" + std::to_string(g_next++));
    const std::string header = caas::payments::StripeSignatureHeader(
        kSecret, caas::ToUnixSeconds(g_app->clock().Now()), body);
    auto r = g_app->payments()->HandleWebhook(header, body);
    if (!r || r->duplicate) state.SkipWithError("the event was not taken");
  }
  state.SetItemsProcessed(state.iterations());
}
// Waits for its commits: measured in real time, from 16 threads.
BENCHMARK(BM_ProcessWebhook)->Threads(16)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
