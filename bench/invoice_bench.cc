// Invoice micro-benchmarks: the PDF of a one-page invoice (the layout
// bench/pdfkit/render.js repeats with PDFKit, for the ratio in scripts/bench)
// and the rating of the worked example.
#include <benchmark/benchmark.h>

#include "catalog/catalog.h"
#include "invoices/pdf.h"
#include "invoices/rating.h"

namespace {

using caas::Decimal;
using caas::Instant;
using caas::Money;
using caas::Period;
namespace inv = caas::invoices;

Instant At(const char* s) { return caas::ParseRfc3339(s).value(); }

inv::Invoice Sample() {
  inv::Invoice i;
  i.id = "in_01KN35E00070RV6EXCN0VQFJF6";
  i.status = inv::InvoiceStatus::kFinalized;
  i.number = "INV-2026-000042";
  i.period = Period{At("2026-03-01T00:00:00Z"), At("2026-04-01T00:00:00Z")};
  i.created_at = At("2026-04-01T00:00:00Z");
  i.finalized_at = At("2026-04-01T01:00:00Z");
  i.issuer = {"Chat Cloud Ltd", {"1 Main Street", "Dublin D01", "IE"}, "IE1234567X", ""};
  i.customer = {
      "Acme GmbH", {"Hauptstr. 1", "10115 Berlin", "DE"}, "DE123456789", "billing@acme.example"};
  auto line = [](const char* d, const char* q, const char* p, int64_t a) {
    inv::InvoiceLine l;
    l.description = d;
    l.period = Period{At("2026-03-01T00:00:00Z"), At("2026-04-01T00:00:00Z")};
    l.quantity = Decimal::Parse(q).value();
    l.unit_price = Decimal::Parse(p).value();
    l.amount = Money(a, caas::Currency::Usd());
    return l;
  };
  i.lines = {line("Pro monthly fee, 2026-04-01 to 2026-05-01", "1", "99", 9900),
             line("Messages beyond 100,000 included", "50000", "0.0001", 500),
             line("Monthly active users beyond 10,000 included", "2345", "0.01", 2345),
             line("Media storage (GB-month)", "3.2", "0.1", 32)};
  i.subtotal = i.total = i.amount_due = Money(12777, caas::Currency::Usd());
  i.tax = Money(0, caas::Currency::Usd());
  i.taxes = {inv::TaxLine{"Reverse charge", Decimal(), i.subtotal, i.tax}};
  i.tax_note = "Reverse charge: VAT liability shifted to the customer";
  return i;
}

void BM_RenderPdfOnePage(benchmark::State& state) {
  const inv::Invoice i = Sample();
  size_t bytes = 0;
  for (auto _ : state) {
    auto pdf = inv::RenderPdf(i, {});
    bytes = pdf->size();
    benchmark::DoNotOptimize(pdf);
  }
  state.counters["bytes"] = static_cast<double>(bytes);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RenderPdfOnePage)->Unit(benchmark::kMillisecond);

void BM_RateWorkedExample(benchmark::State& state) {
  const auto pro = caas::catalog::Catalog::Default().Latest("pro")->Terms();
  inv::RatingInput in;
  inv::UsageSlice s{At("2026-03-01T00:00:00Z"), At("2026-04-01T00:00:00Z"), pro, {}, {}};
  s.billable[0] = Decimal::FromInt(50000);
  s.billable[2] = Decimal::FromInt(2345);
  s.billable[3] = Decimal::Parse("3.2").value();
  in.usage = inv::PeriodUsage{Period{s.from, s.to}, {s}};
  in.fixed = {Sample().lines[0]};
  for (auto _ : state) {
    auto r = inv::Rate(in);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RateWorkedExample);

}  // namespace

BENCHMARK_MAIN();
