// Seeds a data directory with N tenants on Pro trials (no traffic) and
// measures one scheduler look at that size: what an idle server pays per
// wake-up. scripts/bench then starts a server on the directory and measures
// its idle CPU.
//
//   scheduler_seed DATA_DIR N
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "app/app.h"
#include "core/log.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: scheduler_seed DATA_DIR N\n");
    return 2;
  }
  const int n = std::atoi(argv[2]);
  caas::app::Config config;
  config.data_dir = argv[1];
  config.log_level = "warn";
  caas::SetMinLogLevel(caas::LogLevel::kWarn);
  caas::app::App app(config, /*migrate=*/true);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    caas::tenants::TenantFields f;
    f.name = "Tenant " + std::to_string(i);
    f.billing_email = "t" + std::to_string(i) + "@bench.example";
    auto t = app.tenants().Create(f);
    if (!t) {
      std::fprintf(stderr, "tenant: %s\n", t.error().message.c_str());
      return 1;
    }
    caas::subscriptions::ChangeRequest r;
    r.plan = "pro";
    r.trial = true;
    auto c = app.subscriptions().Change(t->id, t->created_at, r, "bench", true);
    if (!c) {
      std::fprintf(stderr, "trial: %s\n", c.error().message.c_str());
      return 1;
    }
  }
  const double seed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // One look = what a worker does when it wakes with nothing due: the
  // earliest due instant of every source (an index query each).
  const int looks = 2000;
  const auto l0 = std::chrono::steady_clock::now();
  int ran = 0;
  for (int i = 0; i < looks; ++i) ran += app.scheduler().RunDue(app.clock().Now(), nullptr);
  const double look_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - l0).count() /
      looks;
  std::printf("tenants %d  seeded_in_s %.1f  look_us %.1f  ran %d\n", n, seed_s, look_us, ran);
  return 0;
}
