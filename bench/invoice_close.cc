// Month-end close at scale, in process on the embedded store: N tenants on
// Pro with March usage (150,000 messages, 3.2 GB stored, 20 users each) on a
// manual clock; then the clock moves to April 1st 01:00 plus a minute and
// everything that falls due runs: N renewals with their closings, N drafts
// rated from metering, N finalizations with gapless numbers, N PDFs
// rendered and stored, N e-mails written (.eml). Prints the time of that run.
//
//   invoice_close DATA_DIR N [WORKERS]   (WORKERS: scheduler_workers, default 32)
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "app/app.h"
#include "core/log.h"
#include "metering/usage_event.h"
#include "storage/sqlite/sqlite_store.h"

namespace {

// CPU time of the process so far (user + system), in seconds.
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return secs(u.ru_utime) + secs(u.ru_stime);
}

// Bytes this process has caused to be written to storage, and its write
// calls, from /proc/self/io (0 where unavailable).
struct Io {
  unsigned long long bytes = 0, calls = 0;
};
Io ReadIo() {
  Io io;
  if (FILE* f = std::fopen("/proc/self/io", "r")) {
    char key[64];
    unsigned long long v = 0;
    while (std::fscanf(f, "%63s %llu", key, &v) == 2) {
      if (std::strcmp(key, "write_bytes:") == 0) io.bytes = v;
      if (std::strcmp(key, "syscw:") == 0) io.calls = v;
    }
    std::fclose(f);
  }
  return io;
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: invoice_close DATA_DIR N [WORKERS]\n");
    return 2;
  }
  const int n = std::atoi(argv[2]);
  caas::app::Config config;
  config.data_dir = argv[1];
  config.log_level = "warn";
  config.clock = "manual";
  config.now = "2026-03-01T00:00:00Z";
  if (argc == 4) config.scheduler_workers = std::atoi(argv[3]);
  caas::SetMinLogLevel(caas::LogLevel::kWarn);
  caas::app::App app(config, /*migrate=*/true, /*metering=*/true);
  auto& clock = *app.manual_clock();
  auto run_to = [&](const char* when) {
    const caas::Instant to = caas::ParseRfc3339(when).value();
    const int ran = app.scheduler().RunDue(to, [&](caas::Instant due) {
      if (due > clock.Now()) (void)clock.Set(due);
    });
    if (to > clock.Now()) (void)clock.Set(to);
    return ran;
  };

  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    caas::tenants::TenantFields f;
    f.name = "Tenant " + std::to_string(i);
    f.billing_email = "t" + std::to_string(i) + "@bench.example";
    auto t = app.tenants().Create(f);
    caas::subscriptions::ChangeRequest r;
    r.plan = "pro";
    auto c = app.subscriptions().Change(t->id, t->created_at, r, "bench", true);
    if (!t || !c) {
      std::fprintf(stderr, "seeding failed\n");
      return 1;
    }
    (void)app.invoices()->Close(t->id, clock.Now());  // the upgrade's invoice, as the API does
    std::string body = "[";
    auto ev = [&](const std::string& id, const std::string& type, const std::string& rest) {
      if (body.size() > 1) body += ",";
      body += R"({"specversion":"1.0","source":"/bench","id":")" + id + R"(","type":")" + type +
              R"(","time":"2026-03-01T00:00:00Z","tenant":")" + t->id + "\"" + rest + "}";
    };
    ev("m", "message.sent", R"(,"data":{"quantity":150000})");
    ev("s", "media.stored", R"(,"data":{"bytes":3200000000})");
    for (int u = 0; u < 20; ++u) {
      ev("u" + std::to_string(u), "user.active", R"(,"subject":"user-)" + std::to_string(u) + "\"");
    }
    body += "]";
    auto parsed = caas::metering::ParseEventBody(body, caas::metering::BodyFormat::kBatch, {});
    auto out = app.metering().Ingest(*parsed);
    if (!out) {
      std::fprintf(stderr, "ingest failed: %s\n", out.error().message.c_str());
      return 1;
    }
  }
  std::printf("seeded %d Pro tenants with March usage in %.1f s\n", n, Seconds(t0));
  t0 = std::chrono::steady_clock::now();
  int ran = run_to("2026-03-01T00:01:00Z");
  std::printf("delivered the %d upgrade invoices (PDF + .eml): %d items in %.1f s\n", n, ran,
              Seconds(t0));

  t0 = std::chrono::steady_clock::now();
  const double cpu0 = CpuSeconds();
  const Io io0 = ReadIo();
  auto* sqlite = dynamic_cast<caas::storage::SqliteStore*>(&app.store());
  const auto writes0 = sqlite ? sqlite->writes() : 0, commits0 = sqlite ? sqlite->commits() : 0;
  ran = run_to("2026-04-01T01:01:00Z");
  const double close_s = Seconds(t0);
  const double close_cpu = CpuSeconds() - cpu0;
  const Io io1 = ReadIo();
  caas::invoices::InvoiceService::Filter f;
  f.status = caas::invoices::InvoiceStatus::kFinalized;
  int finalized = 0, pdfs = 0, sent = 0;
  std::string after;
  for (;;) {
    auto page = app.invoices()->List(f, after, 1000);
    for (const auto& i : page.items) {
      ++finalized;
      pdfs += i.pdf.has_value();
      sent += i.email.status == "sent";
    }
    if (!page.has_more) break;
    after = page.items.back().id;
  }
  std::printf(
      "month-end close of %d Pro tenants (renew, rate, finalize, number, render + store the PDF, "
      "e-mail): %.1f s, %d items; %d invoices finalized, %d PDFs, %d e-mails in all\n",
      n, close_s, ran, finalized, pdfs, sent);
  if (sqlite) {
    std::printf("store: %llu writes in %llu commits\n",
                static_cast<unsigned long long>(sqlite->writes() - writes0),
                static_cast<unsigned long long>(sqlite->commits() - commits0));
  }
  std::printf("io: %.1f MB written to storage in %llu write calls\n",
              static_cast<double>(io1.bytes - io0.bytes) / 1e6, io1.calls - io0.calls);
  std::printf("close_seconds %.2f cpu_seconds %.2f tenants %d\n", close_s, close_cpu, n);
  return 0;
}
