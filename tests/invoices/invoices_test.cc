// Invoices as a service on the storage port: period close, finalization with
// gapless numbers, voids with credit notes; a crash at every write of those
// protocols; a randomized run over many months with restarts.
#include "invoices/invoices.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "catalog/allowance.h"
#include "core/hash.h"
#include "events/billing_events.h"
#include "invoices/codec.h"
#include "storage/fault_store.h"
#include "storage/memory/memory_store.h"
#include "subscriptions/codec.h"
#include "test_seed.h"

namespace caas::invoices {
namespace {

using subscriptions::ChangeRequest;

Instant At(const char* s) { return ParseRfc3339(s).value(); }

std::vector<storage::CollectionSpec> Specs() {
  return {tenants::TenantsCollectionSpec(),
          subscriptions::SubscriptionsCollectionSpec(),
          events::BillingEventsCollectionSpec(),
          InvoicesCollectionSpec(),
          CreditNotesCollectionSpec(),
          NumbersCollectionSpec(),
          jobs::JobsCollectionSpec()};
}

// Messages used per tenant and billing period (by its start), standing in
// for metering.
using UsageBook = std::map<std::string, std::map<int64_t, int64_t>>;

// Blobs and mail that outlive a "process" (a World), like files and a
// mail server do.
class MemoryBlobs final : public storage::BlobStore {
 public:
  Status Put(std::string_view key, std::string_view bytes) override {
    std::lock_guard lock(mu_);
    blobs_[std::string(key)] = std::string(bytes);
    return Status::Ok();
  }
  Result<std::string> Get(std::string_view key) override {
    std::lock_guard lock(mu_);
    auto it = blobs_.find(std::string(key));
    if (it == blobs_.end()) return Error::NotFound("no blob");
    return it->second;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> blobs_;
};
class CountingMailer final : public mail::Mailer {
 public:
  Status Send(const mail::Mail& m) override {
    std::lock_guard lock(mu);
    ++sent[m.subject];
    pdfs[m.subject] = m.attachments.at(0).bytes;
    return Status::Ok();
  }
  std::string Describe() const override { return "counting"; }
  std::mutex mu;
  std::map<std::string, int> sent;  // by subject (it names the number)
  std::map<std::string, std::string> pdfs;
};
struct Outside {
  MemoryBlobs blobs;
  CountingMailer mailer;
};

// The services of one process on a store; a "restart" is a new World.
struct World {
  // `parallelism`: the scheduler's waves, as the server runs them (App:
  // scheduler_workers); 1 keeps a crash at the Nth write deterministic.
  World(storage::DocumentStore& s, ManualClock& c, UsageBook& book, Outside* outside = nullptr,
        int parallelism = 1)
      : store(s),
        clock(c),
        ids(c),
        tenants(s, c, ids),
        subs(s, c, ids, catalog::Catalog::Default()),
        inv(
            s, c, ids, subs, tenants,
            [this, &book](std::string_view tenant, Instant at) -> Result<PeriodUsage> {
              auto vt = subs.TimelineOf(tenant);
              if (!vt) return vt.error();
              const catalog::Timeline& tl = vt->timeline;
              PeriodUsage u;
              u.period = tl.PeriodAt(at).period;
              // Read only (waves call this from several threads at once).
              int64_t used = 0;
              if (auto t = book.find(std::string(tenant)); t != book.end()) {
                auto p = t->second.find(u.period.start.time_since_epoch().count());
                if (p != t->second.end()) used = p->second;
              }
              std::vector<catalog::SliceUse> uses;
              for (const auto& s : tl.SlicesOf(u.period)) {
                UsageSlice us{s.from, s.to, tl.segments()[s.segment].terms, {}, {}};
                u.slices.push_back(us);
              }
              // All of it in the last slice (the terms in force at the end).
              u.slices.back().used[0] = Decimal::FromInt(used);
              for (const auto& s : u.slices)
                uses.push_back({&s.terms.of(catalog::Metric::kMessages), s.used[0]});
              auto billable = catalog::BillableBySlice(uses);
              for (size_t i = 0; i < u.slices.size(); ++i) u.slices[i].billable[0] = billable[i];
              return u;
            },
            nullptr, InvoiceOptions{}),
        jobs(s, c, ids, "test"),
        scheduler(c, std::chrono::seconds(5), parallelism) {
    scheduler.Add(jobs::Scheduler::Keyed(
        "jobs", [this] { return jobs.NextDue(); },
        [this](Instant until, size_t limit) { return jobs.DueIds(until, limit); },
        [this](const std::string& id, Instant until) { return jobs.Run(id, until); }));
    if (outside) inv.EnableDelivery(jobs, outside->blobs, outside->mailer);
    subs.SetTenantLookup([this](std::string_view t) -> std::optional<Instant> {
      auto x = tenants.Get(t);
      if (!x) return std::nullopt;
      return x->created_at;
    });
    subs.RegisterWith(scheduler);
    inv.RegisterWith(scheduler);
  }
  // Runs everything due up to `t`, each at its own instant.
  void RunTo(Instant t) {
    scheduler.RunDue(t, [&](Instant due) {
      if (due > clock.Now()) {
        ASSERT_TRUE(clock.Set(due).ok());
      }
    });
    if (t > clock.Now()) {
      ASSERT_TRUE(clock.Set(t).ok());
    }
  }
  std::string NewTenant(const std::string& id) {
    tenants::TenantFields f;
    f.name = "Tenant " + id;
    f.billing_email = "b@" + id.substr(4) + ".example";
    auto t = tenants.Create(f, id);
    if (t) (void)subs.Get(id, t->created_at);
    return id;
  }

  storage::DocumentStore& store;
  ManualClock& clock;
  IdGenerator ids;
  tenants::TenantService tenants;
  subscriptions::SubscriptionService subs;
  InvoiceService inv;
  jobs::JobQueue jobs;
  jobs::Scheduler scheduler;
};

std::vector<Invoice> All(storage::DocumentStore& store, const char* collection) {
  std::vector<Invoice> out;
  storage::ListQuery q;
  q.limit = 1000;
  for (const auto& d : store.List(collection, q).items)
    out.push_back(InvoiceFromJson(d.body).value());
  return out;
}

// What must hold whatever happened: every invoice adds up, one invoice per
// subscription and period, every consumed line is on exactly one invoice,
// numbers are 1..N in each series with no gap, nothing is left reserved.
void CheckInvariants(storage::DocumentStore& store) {
  std::set<std::string> periods, lines;
  std::map<std::string, std::set<int64_t>> series;
  for (const char* c : {"invoices", "credit_notes"}) {
    for (const Invoice& i : All(store, c)) {
      int64_t sum = 0;
      for (const auto& l : i.lines) sum += l.amount.amount_minor();
      EXPECT_EQ(i.subtotal.amount_minor(), sum) << i.id;
      EXPECT_EQ(i.total.amount_minor(), sum + i.tax.amount_minor()) << i.id;
      if (i.doc_kind == DocKind::kInvoice) {
        if (i.period_end && i.period) {
          EXPECT_TRUE(periods.insert(i.subscription + "@" + FormatRfc3339(i.period->start)).second)
              << "two invoices for " << i.subscription << " " << FormatRfc3339(i.period->start);
        }
        for (const auto& l : i.consumed_lines) {
          EXPECT_TRUE(lines.insert(l).second) << l << " on two invoices";
        }
      }
      if (i.status != InvoiceStatus::kDraft) {
        ASSERT_FALSE(i.number.empty()) << i.id;
        const size_t dash = i.number.rfind('-');
        EXPECT_TRUE(
            series[i.number.substr(0, dash)].insert(std::stoll(i.number.substr(dash + 1))).second)
            << i.number << " given twice";
      } else {
        EXPECT_TRUE(i.number.empty());
      }
      EXPECT_TRUE(i.outbox.empty()) << i.id << ": an outbox left unrelayed";
    }
  }
  // Every negative invoice's subtotal is carried, exactly once: as a credit
  // line on a later invoice, or still pending in its tenant's document.
  std::map<std::string, int64_t> negative;  // number -> subtotal
  std::map<std::string, std::vector<int64_t>> carried;
  for (const Invoice& i : All(store, "invoices")) {
    if (i.status != InvoiceStatus::kDraft && i.subtotal.amount_minor() < 0) {
      negative[i.number] = i.subtotal.amount_minor();
      EXPECT_FALSE(i.carry_pending) << i.number;
    }
    for (const auto& l : i.lines) {
      if (l.type == LineType::kCredit) carried[l.description].push_back(l.amount.amount_minor());
    }
  }
  storage::ListQuery q;
  q.limit = 1000;
  for (const auto& d : store.List("subscriptions", q).items) {
    auto t = subscriptions::DecodeDocument(d.body, catalog::Catalog::Default());
    ASSERT_TRUE(t.ok());
    for (const auto& l : t->pending_lines) {
      if (l.kind == subscriptions::LineKind::kCredit) {
        carried[l.description].push_back(l.amount.amount_minor());
      }
    }
  }
  for (const auto& [number, subtotal] : negative) {
    EXPECT_EQ(carried["Credit carried from " + number], std::vector<int64_t>{subtotal}) << number;
  }
  EXPECT_EQ(carried.size(), negative.size());
  for (const auto& [s, numbers] : series) {
    EXPECT_EQ(*numbers.rbegin(), static_cast<int64_t>(numbers.size())) << s << " has a gap";
  }
  EXPECT_FALSE(storage::EarliestTime(store, "invoice_numbers", "reserved").has_value())
      << "a number is still reserved";
}

TEST(Numbers, GaplessAndUniqueUnderConcurrentFinalizations) {
  storage::MemoryStore store(Specs());
  ManualClock clock(At("2026-03-01T00:00:00Z"));
  NumberSeries series(store, clock);
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<int64_t> got;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const std::string doc = "in_" + std::to_string(t) + "_" + std::to_string(i);
        auto n = series.Reserve("INV-2026", doc);
        ASSERT_TRUE(n.ok());
        auto again = series.Reserve("INV-2026", doc);  // a retried step 1
        ASSERT_EQ(*again, *n);
        ASSERT_TRUE(series.Release("INV-2026", doc).ok());
        std::lock_guard lock(mu);
        EXPECT_TRUE(got.insert(*n).second);
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(got.size(), 800u);
  EXPECT_EQ(*got.begin(), 1);
  EXPECT_EQ(*got.rbegin(), 800);
  EXPECT_FALSE(series.EarliestReservation().has_value());
  EXPECT_EQ(NumberSeries::Format("INV-2026", 42), "INV-2026-000042");
}

TEST(Numbers, ANumberNotNeededGoesBackSoNoGapIsLeft) {
  storage::MemoryStore store(Specs());
  ManualClock clock(At("2026-03-01T00:00:00Z"));
  NumberSeries series(store, clock);
  ASSERT_EQ(*series.Reserve("INV-2026", "in_a"), 1);
  ASSERT_TRUE(series.Release("INV-2026", "in_a").ok());
  // A second finalization of in_a that reserved after the first released:
  ASSERT_EQ(*series.Reserve("INV-2026", "in_a"), 2);
  ASSERT_TRUE(series.GiveBack("INV-2026", "in_a").ok());
  EXPECT_EQ(series.Last("INV-2026"), 1);  // the last number went back to `next`
  ASSERT_EQ(*series.Reserve("INV-2026", "in_b"), 2);
  ASSERT_EQ(*series.Reserve("INV-2026", "in_c"), 3);
  ASSERT_TRUE(series.GiveBack("INV-2026", "in_b").ok());  // not the last: free list
  EXPECT_EQ(*series.Reserve("INV-2026", "in_d"), 2);      // taken first
  EXPECT_EQ(*series.Reserve("INV-2026", "in_e"), 4);
}

// The scenario of the crash test, as a client runs it: every step is
// retried until it is done (a crash loses the answer, not the request).
struct Crash {};  // not a std::exception: nothing in the service catches it

void RunScenario(World& w) {
  if (!w.tenants.Get("tnt_A").ok()) w.NewTenant("tnt_A");
  auto s = w.subs.Get("tnt_A", At("2026-03-01T00:00:00Z"));
  ASSERT_TRUE(s.ok());
  if (s->current.plan.id == "free" && w.clock.Now() < At("2026-03-02T00:00:00Z")) {
    ChangeRequest r;
    r.plan = "pro";
    ASSERT_TRUE(w.subs.Change("tnt_A", At("2026-03-01T00:00:00Z"), r, "key", true).ok());
  }
  auto closed = w.inv.Close("tnt_A", w.clock.Now());  // the route closes at once
  ASSERT_TRUE(closed.ok());
  w.RunTo(At("2026-04-01T02:00:00Z"));
  std::vector<Invoice> invoices = All(w.store, "invoices");
  for (const auto& i : invoices) {
    if (i.period_end && i.status == InvoiceStatus::kFinalized) {
      auto v = w.inv.Void(i.id, "key", "wrong address");
      ASSERT_TRUE(v.ok()) << v.error().message;
    } else if (i.period_end && i.status == InvoiceStatus::kVoid && i.credit_pending) {
      ASSERT_TRUE(w.inv.Void(i.id, "key", "again").ok());
    }
  }
  w.RunTo(At("2026-04-01T03:00:00Z"));
}

TEST(InvoiceCrash, AKillAtAnyWriteOfCloseFinalizeNumberOrVoidRecovers) {
  // Count the writes of a clean run, then crash at each in turn.
  int writes = 0;
  {
    Outside outside;
    storage::MemoryStore inner(Specs());
    testing::FaultStore store(inner, [&](auto, auto, auto) {
      ++writes;
      return Status::Ok();
    });
    ManualClock clock(At("2026-03-01T00:00:00Z"));
    UsageBook book;
    book["tnt_A"][At("2026-03-01T00:00:00Z").time_since_epoch().count()] = 150'000;
    World w(store, clock, book, &outside);
    RunScenario(w);
  }
  ASSERT_GT(writes, 20);
  for (int k = 1; k <= writes; ++k) {
    SCOPED_TRACE("crash at write " + std::to_string(k));
    storage::MemoryStore inner(Specs());
    ManualClock clock(At("2026-03-01T00:00:00Z"));
    UsageBook book;
    book["tnt_A"][At("2026-03-01T00:00:00Z").time_since_epoch().count()] = 150'000;
    int n = 0;
    std::string crashed_at;
    Outside outside;
    {
      testing::FaultStore store(
          inner, [&](std::string_view op, std::string_view c, std::string_view id) -> Status {
            if (++n == k) {
              crashed_at = std::string(op) + " " + std::string(c) + "/" + std::string(id);
              throw Crash{};
            }
            return Status::Ok();
          });
      World w(store, clock, book, &outside);
      try {
        RunScenario(w);
      } catch (const Crash&) {
      }
    }
    SCOPED_TRACE(crashed_at);
    World after(inner, clock, book, &outside);  // the restart
    after.RunTo(clock.Now());                   // recovery: every due source
    RunScenario(after);                         // the client retries what it did not see done
    after.RunTo(At("2026-04-01T04:00:00Z"));    // leases of jobs the crash held expire
    CheckInvariants(inner);
    auto invoices = All(inner, "invoices");
    ASSERT_EQ(invoices.size(), 2u);
    auto notes = All(inner, "credit_notes");
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_EQ(notes[0].status, InvoiceStatus::kFinalized);
    EXPECT_EQ(notes[0].number, "CN-2026-000001");
    for (const auto& i : invoices) {
      if (i.period_end) {
        EXPECT_EQ(i.status, InvoiceStatus::kVoid);
        EXPECT_FALSE(i.credit_pending);
        EXPECT_EQ(i.total.amount_minor(), 9900 + 500);  // April's fee + 50,000 messages
        EXPECT_EQ(notes[0].total.amount_minor(), -i.total.amount_minor());
      } else {
        EXPECT_EQ(i.status, InvoiceStatus::kFinalized);
        EXPECT_EQ(i.total.amount_minor(), 9900);
      }
    }
    std::set<std::string> numbers;
    for (const auto& i : invoices) numbers.insert(i.number);
    EXPECT_EQ(numbers, (std::set<std::string>{"INV-2026-000001", "INV-2026-000002"}));
    // Each event announced exactly once.
    std::map<std::string, int> events;
    for (const auto& e : events::ListBillingEvents(inner, "tnt_A", "", 1000).items)
      ++events[e.type];
    EXPECT_EQ(events["invoice.created"], 2);
    EXPECT_EQ(events["invoice.finalized"], 2);
    EXPECT_EQ(events["invoice.voided"], 1);
    EXPECT_EQ(events["credit_note.issued"], 1);
    auto doc = after.subs.Get("tnt_A", At("2026-03-01T00:00:00Z"));
    EXPECT_TRUE(doc->closings.empty());
    EXPECT_TRUE(doc->pending_lines.empty());
    EXPECT_FALSE(after.inv.numbers().EarliestReservation().has_value());
    // Every final document e-mailed at least once (a crash between sending
    // and recording sends it again, with the same Message-ID) and recorded
    // once, with the PDF that is stored.
    for (const char* c : {"invoices", "credit_notes"}) {
      for (const Invoice& i : All(inner, c)) {
        EXPECT_EQ(i.email.status, "sent") << i.id;
        ASSERT_TRUE(i.pdf.has_value()) << i.id;
        int sent = 0;
        for (const auto& [subject, count] : outside.mailer.sent) {
          if (subject.find(i.number) != std::string::npos) {
            sent += count;
            EXPECT_EQ(Sha256Hex(outside.mailer.pdfs[subject]), i.pdf->sha256);
          }
        }
        EXPECT_GE(sent, 1) << i.number;
        EXPECT_LE(sent, 2) << i.number;
      }
    }
  }
}

TEST(Invoices, ClosingTwiceOrTwiceAtOnceMakesOneInvoice) {
  storage::MemoryStore store(Specs());
  ManualClock clock(At("2026-03-01T00:00:00Z"));
  UsageBook book;
  World w1(store, clock, book);
  World w2(store, clock, book);  // a second process on the same store
  w1.NewTenant("tnt_A");
  ASSERT_TRUE(clock.Set(At("2026-04-01T05:00:00Z")).ok());
  std::thread a([&] { (void)w1.inv.Close("tnt_A", clock.Now()); });
  std::thread b([&] { (void)w2.inv.Close("tnt_A", clock.Now()); });
  a.join();
  b.join();
  ASSERT_TRUE(w1.inv.Close("", clock.Now()).ok());
  auto all = All(store, "invoices");
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].total.amount_minor(), 0);  // Free: a $0 invoice for the record
  EXPECT_EQ(all[0].status, InvoiceStatus::kFinalized);
  // The store refuses a second invoice for the same subscription and period.
  Invoice copy = all[0];
  copy.id = "in_01KN00000000000000000000XX";
  copy.number.clear();
  storage::Document d{copy.id, 0, boost::json::serialize(InvoiceToJson(copy, true)), {}};
  d.keys["period_key"] = copy.subscription + "@" +
                         storage::SortableTime(copy.period->start.time_since_epoch().count());
  auto s = store.Insert("invoices", d);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kAlreadyExists);
  CheckInvariants(store);
}

TEST(Invoices, AFinalizedInvoiceIsNotVoidedAsADraftNorFinalizedTwice) {
  storage::MemoryStore store(Specs());
  ManualClock clock(At("2026-03-01T00:00:00Z"));
  UsageBook book;
  World w(store, clock, book);
  w.NewTenant("tnt_A");
  ASSERT_TRUE(clock.Set(At("2026-04-01T00:10:00Z")).ok());
  auto made = w.inv.Close("tnt_A", clock.Now());
  ASSERT_TRUE(made.ok());
  ASSERT_EQ(made->size(), 1u);
  EXPECT_EQ((*made)[0].status, InvoiceStatus::kDraft);  // within its 1 h grace
  auto v = w.inv.Void((*made)[0].id, "key", "");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().code, ErrorCode::kFailedPrecondition);
  auto f1 = w.inv.Finalize((*made)[0].id, "key");
  auto f2 = w.inv.Finalize((*made)[0].id, "key");
  ASSERT_TRUE(f1.ok() && f2.ok());
  EXPECT_EQ(f1->number, "INV-2026-000001");
  EXPECT_EQ(f2->number, f1->number);
  EXPECT_EQ(boost::json::serialize(InvoiceToJson(*f1, false)),
            boost::json::serialize(InvoiceToJson(*f2, false)));
}

// Payments from several threads at once on one invoice: they add up, never
// past what is owed; the one that covers the rest makes it paid, once.
TEST(InvoicePayments, ConcurrentPaymentsNeverExceedWhatIsOwed) {
  storage::MemoryStore store(Specs());
  ManualClock clock(At("2026-03-01T00:00:00Z"));
  UsageBook book;
  World w(store, clock, book);
  w.NewTenant("tnt_A");
  ChangeRequest r;
  r.plan = "pro";
  ASSERT_TRUE(w.subs.Change("tnt_A", At("2026-03-01T00:00:00Z"), r, "key", true).ok());
  auto made = w.inv.Close("tnt_A", clock.Now());
  ASSERT_TRUE(made.ok());
  ASSERT_EQ(made->size(), 1u);
  const Invoice& upgrade = (*made)[0];
  ASSERT_EQ(upgrade.status, InvoiceStatus::kFinalized);
  ASSERT_EQ(upgrade.amount_due.amount_minor(), 9900);
  // 8 threads pay 30.00 each: three fit in 99.00, the others are refused.
  std::atomic<int> accepted{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto p = w.inv.RecordPayment(
          upgrade.id, {Money(3000, Currency::Usd()), "bank_transfer", "T" + std::to_string(t)},
          "key");
      if (p) {
        ++accepted;
      } else {
        EXPECT_EQ(p.error().code, ErrorCode::kInvalidArgument) << p.error().message;
        EXPECT_EQ(p.error().field, "amount");
        ++refused;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(accepted.load(), 3);
  EXPECT_EQ(refused.load(), 5);
  auto now = w.inv.Get(upgrade.id);
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->amount_paid.amount_minor(), 9000);
  EXPECT_EQ(now->status, InvoiceStatus::kFinalized);
  // The rest, in another currency, refused; then in USD, paid.
  auto eur =
      w.inv.RecordPayment(upgrade.id, {Money(900, *Currency::Find("EUR")), "cash", ""}, "key");
  ASSERT_FALSE(eur.ok());
  EXPECT_EQ(eur.error().field, "amount");
  auto last = w.inv.RecordPayment(upgrade.id, {Money(900, Currency::Usd()), "cash", ""}, "key");
  ASSERT_TRUE(last.ok()) << last.error().message;
  EXPECT_EQ(last->status, InvoiceStatus::kPaid);
  EXPECT_EQ(last->paid_at, clock.Now());
  int64_t sum = 0;
  for (const auto& p : last->payments) sum += p.amount.amount_minor();
  EXPECT_EQ(sum, 9900);
  EXPECT_EQ(last->amount_paid.amount_minor(), 9900);
  // Its figures are as finalized, and a stored copy reads back the same.
  EXPECT_EQ(last->total.amount_minor(), upgrade.total.amount_minor());
  EXPECT_EQ(last->number, upgrade.number);
  auto again = InvoiceFromJson(boost::json::serialize(InvoiceToJson(*last, true)));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(boost::json::serialize(InvoiceToJson(*again, true)),
            boost::json::serialize(InvoiceToJson(*last, true)));
  auto more = w.inv.RecordPayment(upgrade.id, {Money(1, Currency::Usd()), "cash", ""}, "key");
  ASSERT_FALSE(more.ok());
  EXPECT_EQ(more.error().code, ErrorCode::kFailedPrecondition);
  // Announced: three plus one payments, one invoice.paid.
  int payments = 0, paid = 0;
  storage::ListQuery q;
  q.limit = 1000;
  for (const auto& d : store.List("billing_events", q).items) {
    payments += d.body.find("\"payment.succeeded\"") != std::string::npos;
    paid += d.body.find("\"invoice.paid\"") != std::string::npos;
  }
  EXPECT_EQ(payments, 4);
  EXPECT_EQ(paid, 1);
}

// Many generated months: random plan changes, usage (some of it late),
// voids and restarts, against what must always hold.
TEST(InvoicesRandomized, ManyMonthsOfChangesUsageVoidsAndRestarts) {
  const uint64_t seed = caas::testing::TestSeed();
  CAAS_SEED_TRACE(seed);
  std::mt19937_64 rng(seed);
  storage::MemoryStore store(Specs());
  ManualClock clock(At("2026-01-01T00:00:00Z"));
  UsageBook book;
  // Tenants closing at one instant run in parallel waves, as in the server.
  auto w = std::make_unique<World>(store, clock, book, nullptr, 4);
  const std::vector<std::string> tenants = {"tnt_A", "tnt_B", "tnt_C"};
  for (const auto& t : tenants) w->NewTenant(t);
  std::map<std::string, std::string> frozen;  // finalized invoice id -> its figures then
  auto figures = [](const Invoice& i) {
    boost::json::object o = InvoiceToJson(i, false);
    o.erase("status");
    o.erase("voided_at");
    o.erase("credit_note");
    return boost::json::serialize(o);
  };
  Instant t = clock.Now();
  for (int step = 0; step < 160; ++step) {
    t += std::chrono::hours(1 + static_cast<int64_t>(rng() % (24 * 6)));
    w->RunTo(t);
    const std::string& tenant = tenants[rng() % tenants.size()];
    auto doc = w->subs.Get(tenant, At("2026-01-01T00:00:00Z"));
    ASSERT_TRUE(doc.ok());
    switch (rng() % 8) {
      case 0:
      case 1: {  // usage in the current period, or late for the one before
        Period p = doc->current.period;
        if (rng() % 4 == 0 && !doc->previous.empty()) p = doc->previous.back().period;
        book[tenant][p.start.time_since_epoch().count()] += static_cast<int64_t>(rng() % 120'000);
        break;
      }
      case 2: {
        ChangeRequest r;
        r.plan = std::vector<std::string>{"free", "pro"}[rng() % 2];
        (void)w->subs.Change(tenant, At("2026-01-01T00:00:00Z"), r, "key", true);
        (void)w->inv.Close(tenant, clock.Now());
        break;
      }
      case 3:
        (void)w->subs.Cancel(tenant, At("2026-01-01T00:00:00Z"), rng() % 2 == 0, "key");
        (void)w->inv.Close(tenant, clock.Now());
        break;
      case 4: {  // void a finalized invoice now and then
        auto all = All(store, "invoices");
        if (!all.empty() && rng() % 3 == 0) {
          const Invoice& i = all[rng() % all.size()];
          if (i.status == InvoiceStatus::kFinalized) {
            ASSERT_TRUE(w->inv.Void(i.id, "key", "").ok());
          }
        }
        break;
      }
      case 5:
        w = std::make_unique<World>(store, clock, book, nullptr, 4);  // a restart
        break;
      default:
        break;
    }
    for (const auto& i : All(store, "invoices")) {
      if (i.status == InvoiceStatus::kDraft) continue;
      auto [it, fresh] = frozen.emplace(i.id, figures(i));
      if (!fresh) {
        EXPECT_EQ(it->second, figures(i)) << "finalized invoice " << i.id << " changed";
      }
    }
  }
  w->RunTo(t + std::chrono::hours(24 * 40));
  CheckInvariants(store);
  // Prorations never exceed the fees held: per subscription, what was
  // credited is at most what was charged.
  std::map<std::string, int64_t> charged, credited;
  for (const auto& i : All(store, "invoices")) {
    for (const auto& l : i.lines) {
      if (l.type == LineType::kProrationCredit) credited[i.subscription] -= l.amount.amount_minor();
      if (l.type == LineType::kBaseFee || l.type == LineType::kProrationCharge) {
        charged[i.subscription] += l.amount.amount_minor();
      }
    }
  }
  for (const auto& [sub, c] : credited) EXPECT_LE(c, charged[sub]) << sub;
  EXPECT_GT(All(store, "invoices").size(), 10u);
}

}  // namespace
}  // namespace caas::invoices
