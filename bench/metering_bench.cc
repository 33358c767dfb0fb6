// Micro-benchmarks of metering in process (Google Benchmark): quota checks,
// CloudEvents parsing, and durable ingest through the engine (real fdatasync
// group commits into a temporary directory).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>

#include "catalog/catalog.h"
#include "core/clock.h"
#include "metering/metering.h"

namespace caas::metering {
namespace {

std::string EventJson(const std::string& id, const std::string& time) {
  return R"({"specversion":"1.0","id":")" + id +
         R"(","source":"/bench","type":"message.sent","time":")" + time +
         R"(","tenant":"tnt_01M89HXQ41BQCAKZB50YQMVD02","data":{"quantity":2}})";
}

struct EngineFixture {
  std::filesystem::path dir;
  SystemClock clock;
  std::unique_ptr<MeteringEngine> engine;
  explicit EngineFixture(size_t reserve = 0) {
    static std::atomic<int> n{0};
    dir = std::filesystem::temp_directory_path() /
          ("caas-metering-bench-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    std::filesystem::remove_all(dir);
    MeteringOptions o;
    o.dir = dir.string();
    o.reserve_events = reserve;
    // Every tenant on Free, calendar months, since 2020.
    const Instant start = ParseRfc3339("2020-01-01T00:00:00Z").value();
    catalog::Timeline free({catalog::Segment{start, catalog::Schedule{start, start, true, {}},
                                             catalog::Catalog::Default().Latest("free")->Terms()}});
    engine = std::make_unique<MeteringEngine>(
        o, clock,
        [free](std::string_view) -> Result<VersionedTimeline> {
          return VersionedTimeline{0, free};
        },
        nullptr);
    engine->Open();
  }
  ~EngineFixture() {
    engine.reset();
    std::filesystem::remove_all(dir);
  }
};

void BM_QuotaCheckInProcess(benchmark::State& state) {
  static EngineFixture* f = nullptr;
  if (state.thread_index() == 0) {
    f = new EngineFixture();
    std::vector<ParsedEvent> one(1);
    one[0].event = UsageEvent{"tnt_q", "/s", "e1", "", UsageType::kMessageSent, f->clock.Now(), 5};
    (void)f->engine->Ingest(one);
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(f->engine->CheckCount("tnt_q", Metric::kMessages, 1));
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete f;
    f = nullptr;
  }
}
BENCHMARK(BM_QuotaCheckInProcess)->Threads(1)->Threads(2)->UseRealTime();

void BM_ParseBatch1000(benchmark::State& state) {
  const std::string time =
      FormatRfc3339(std::chrono::time_point_cast<Micros>(std::chrono::system_clock::now()));
  std::string body = "[";
  for (int i = 0; i < 1000; ++i)
    body += (i ? "," : "") + EventJson("id-" + std::to_string(i), time);
  body += "]";
  for (auto _ : state) {
    auto r = ParseEventBody(body, BodyFormat::kBatch, ParseOptions{});
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}
BENCHMARK(BM_ParseBatch1000);

// Durable ingest of distinct events in batches of 1,000 (parsed already),
// several threads sharing each group commit.
void BM_IngestInProcess(benchmark::State& state) {
  static EngineFixture* f = nullptr;
  static std::atomic<uint64_t> next{0};
  if (state.thread_index() == 0) f = new EngineFixture(20'000'000);
  const Instant now = f->clock.Now();
  std::vector<ParsedEvent> batch(1000);
  for (auto _ : state) {
    state.PauseTiming();
    const uint64_t base = next.fetch_add(1000);
    for (size_t i = 0; i < batch.size(); ++i) {
      batch[i].event = UsageEvent{
          "tnt_b", "/bench", "e" + std::to_string(base + i), "", UsageType::kMessageSent, now, 1};
    }
    state.ResumeTiming();
    auto out = f->engine->Ingest(batch);
    if (!out || out->back().kind != OutcomeKind::kAccepted) state.SkipWithError("not accepted");
  }
  state.SetItemsProcessed(state.iterations() * 1000);
  if (state.thread_index() == 0) {
    delete f;
    f = nullptr;
  }
}
BENCHMARK(BM_IngestInProcess)->Threads(4)->UseRealTime()->MinTime(3);

}  // namespace
}  // namespace caas::metering

BENCHMARK_MAIN();
