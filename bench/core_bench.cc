// Micro-benchmarks of the foundation's hot pieces (Google Benchmark).
#include <benchmark/benchmark.h>

#include <filesystem>

#include "core/clock.h"
#include "core/decimal.h"
#include "core/ids.h"
#include "http/json_input.h"
#include "storage/sqlite/sqlite_store.h"
#include "tenants/api_keys.h"
#include "tenants/tenant_service.h"

namespace caas {
namespace {

void BM_DecimalLineAmount(benchmark::State& state) {
  const Decimal price = *Decimal::Parse("0.0001");
  const Decimal qty = *Decimal::Parse("123456789");
  for (auto _ : state) benchmark::DoNotOptimize(Decimal::MultiplyToMinorUnits(price, qty, 2));
}
BENCHMARK(BM_DecimalLineAmount);

void BM_IdNext(benchmark::State& state) {
  SystemClock clock;
  IdGenerator ids(clock);
  for (auto _ : state) benchmark::DoNotOptimize(ids.Next("tnt"));
}
BENCHMARK(BM_IdNext);

void BM_ParseTenantBody(benchmark::State& state) {
  const std::string body =
      R"({"name":"Acme GmbH","billing_email":"billing@acme.example","currency":"EUR",)"
      R"("address":{"line1":"Hauptstr. 1","city":"Berlin","country":"DE"}})";
  for (auto _ : state) benchmark::DoNotOptimize(http::ParseJsonObject(body));
}
BENCHMARK(BM_ParseTenantBody);

struct SqliteFixture {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / "caas-bench";
  SystemClock clock;
  IdGenerator ids{clock};
  std::unique_ptr<storage::SqliteStore> store;
  SqliteFixture() {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    store = std::make_unique<storage::SqliteStore>(
        (dir / "b.db").string(),
        std::vector<storage::CollectionSpec>{tenants::TenantsCollectionSpec(),
                                             tenants::ApiKeysCollectionSpec()});
    store->Migrate();
  }
  ~SqliteFixture() { std::filesystem::remove_all(dir); }
};

void BM_AuthenticateCached(benchmark::State& state) {
  SqliteFixture f;
  tenants::ApiKeyService keys(*f.store, f.clock, f.ids);
  auto k = keys.Create(tenants::KeyKind::kAdmin, "", "bench");
  for (auto _ : state) benchmark::DoNotOptimize(keys.Authenticate(k->secret));
}
BENCHMARK(BM_AuthenticateCached);

void BM_TenantCreateDurable(benchmark::State& state) {
  SqliteFixture f;
  tenants::TenantService tenants(*f.store, f.clock, f.ids);
  tenants::TenantFields fields;
  fields.name = "Acme";
  fields.billing_email = "b@acme.example";
  for (auto _ : state) benchmark::DoNotOptimize(tenants.Create(fields));
}
BENCHMARK(BM_TenantCreateDurable)->Unit(benchmark::kMicrosecond);

void BM_TenantGet(benchmark::State& state) {
  SqliteFixture f;
  tenants::TenantService tenants(*f.store, f.clock, f.ids);
  tenants::TenantFields fields;
  fields.name = "Acme";
  fields.billing_email = "b@acme.example";
  auto t = tenants.Create(fields);
  for (auto _ : state) benchmark::DoNotOptimize(tenants.Get(t->id));
}
BENCHMARK(BM_TenantGet)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace caas

BENCHMARK_MAIN();
