// A test world: subscriptions and metering wired the way the service wires
// them (app/app.cc), on a manual clock, over an in-memory document store that
// outlives restarts and an event log in a temporary directory.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "catalog/catalog.h"
#include "core/clock.h"
#include "core/ids.h"
#include "events/billing_events.h"
#include "jobs/scheduler.h"
#include "metering/metering.h"
#include "storage/memory/memory_store.h"
#include "subscriptions/subscriptions.h"

namespace caas::billing_test {

class World {
 public:
  explicit World(const char* start, const catalog::Catalog& catalog = catalog::Catalog::Default())
      : clock_(ParseRfc3339(start).value()), ids_(clock_), catalog_(&catalog) {
    static int counter = 0;
    dir_ = (std::filesystem::temp_directory_path() /
            ("caas-billing-world-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)))
               .string();
    std::filesystem::remove_all(dir_);
    Start();
  }
  ~World() {
    metering.reset();
    scheduler.reset();
    subs.reset();
    std::filesystem::remove_all(dir_);
  }
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  // A new process on the same store and log (optionally with another catalog).
  void Restart(const catalog::Catalog* catalog = nullptr) {
    metering.reset();
    scheduler.reset();
    subs.reset();
    if (catalog) catalog_ = catalog;
    Start();
  }

  std::string NewTenant(std::string id) {
    created_[id] = clock_.Now();
    EXPECT_TRUE(subs->Get(id, clock_.Now()).ok());
    return id;
  }
  Instant Created(const std::string& t) const { return created_.at(t); }

  void Change(const std::string& t, const std::string& plan) {
    subscriptions::ChangeRequest r;
    r.plan = plan;
    auto c = subs->Change(t, Created(t), r, "key_test", true);
    ASSERT_TRUE(c.ok()) << c.error().message;
  }

  metering::Outcome SendOutcome(const std::string& t, std::string id, metering::UsageType type,
                                const char* time, int64_t quantity, std::string subject = "") {
    return SendAt(t, std::move(id), type, ParseRfc3339(time).value(), quantity, std::move(subject));
  }
  metering::Outcome SendAt(const std::string& t, std::string id, metering::UsageType type,
                           Instant time, int64_t quantity, std::string subject = "") {
    std::vector<metering::ParsedEvent> one(1);
    one[0].event =
        metering::UsageEvent{t, "/test", std::move(id), std::move(subject), type, time, quantity};
    return metering->Ingest(one).value().front();
  }
  metering::OutcomeKind Send(const std::string& t, std::string id, metering::UsageType type,
                             const char* time, int64_t quantity, std::string subject = "") {
    return SendOutcome(t, std::move(id), type, time, quantity, std::move(subject)).kind;
  }

  metering::UsageReport Usage(const std::string& t, const char* at) {
    return UsageAt(t, ParseRfc3339(at).value());
  }
  metering::UsageReport UsageAt(const std::string& t, Instant at) {
    auto r = metering->Usage(t, at);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : metering::UsageReport{};
  }

  // Runs what falls due, each at its own instant, then sets the clock.
  void AdvanceTo(const char* t) { AdvanceToInstant(ParseRfc3339(t).value()); }
  void AdvanceToInstant(Instant t) {
    scheduler->RunDue(t, [this](Instant due) {
      if (due > clock_.Now()) {
        ASSERT_TRUE(clock_.Set(due).ok());
      }
    });
    ASSERT_TRUE(clock_.Set(t).ok());
  }

  ManualClock& clock() { return clock_; }
  storage::MemoryStore& store() { return store_; }

  std::unique_ptr<subscriptions::SubscriptionService> subs;
  std::unique_ptr<jobs::Scheduler> scheduler;
  std::unique_ptr<metering::MeteringEngine> metering;

 private:
  void Start() {
    subs = std::make_unique<subscriptions::SubscriptionService>(store_, clock_, ids_, *catalog_);
    scheduler = std::make_unique<jobs::Scheduler>(clock_);
    subs->RegisterWith(*scheduler);
    subs->SetTenantLookup([this](std::string_view t) -> std::optional<Instant> {
      auto it = created_.find(std::string(t));
      if (it == created_.end()) return std::nullopt;
      return it->second;
    });
    metering::MeteringOptions o;
    o.dir = dir_;
    o.segment_bytes = 64 << 10;
    metering = std::make_unique<metering::MeteringEngine>(
        o, clock_, [this](std::string_view t) { return subs->TimelineOf(t); }, nullptr);
    metering->Open();
    subs->AddObserver([this](const subscriptions::TenantSubscriptions& t) {
      ASSERT_TRUE(metering->SetTimeline(t.tenant, {t.doc_version, subs->TimelineOf(t)}).ok());
    });
    subs->ForEachTenant([this](const subscriptions::TenantSubscriptions& t) {
      EXPECT_TRUE(metering->SetTimeline(t.tenant, {t.doc_version, subs->TimelineOf(t)}).ok());
      return true;
    });
  }

  ManualClock clock_;
  IdGenerator ids_;
  const catalog::Catalog* catalog_;
  storage::MemoryStore store_{
      {subscriptions::SubscriptionsCollectionSpec(), events::BillingEventsCollectionSpec()}};
  std::string dir_;
  std::map<std::string, Instant> created_;
};

}  // namespace caas::billing_test
