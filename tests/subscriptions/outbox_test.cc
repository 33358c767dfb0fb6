// The outbox: a change and the billing events announcing it are one write;
// the relay publishes them once, whatever step a crash or a failure hits.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "events/billing_events.h"
#include "jobs/scheduler.h"
#include "storage/fault_store.h"
#include "storage/memory/memory_store.h"
#include "storage/sqlite/sqlite_store.h"
#include "subscriptions/subscriptions.h"

namespace caas::subscriptions {
namespace {

Instant At(const char* s) { return ParseRfc3339(s).value(); }

std::vector<storage::CollectionSpec> Specs() {
  return {SubscriptionsCollectionSpec(), events::BillingEventsCollectionSpec()};
}

std::vector<events::BillingEvent> Published(storage::DocumentStore& store, const char* tenant) {
  return events::ListBillingEvents(store, tenant, "", 100).items;
}

int Count(const std::vector<events::BillingEvent>& events, std::string_view type) {
  int n = 0;
  for (const auto& e : events) n += e.type == type;
  return n;
}

TEST(SubscriptionOutbox, APreviewWritesAndAnnouncesNothing) {
  storage::MemoryStore store(Specs());
  ManualClock clock(At("2026-03-01T00:00:00Z"));
  IdGenerator ids(clock);
  SubscriptionService svc(store, clock, ids, catalog::Catalog::Default());
  ASSERT_TRUE(svc.Get("tnt_A", clock.Now()).ok());
  const int64_t version = store.Get("subscriptions", "tnt_A")->version;
  ChangeRequest r;
  r.plan = "pro";
  auto p = svc.Preview("tnt_A", clock.Now(), r, true);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->effect, Effect::kUpgraded);
  EXPECT_EQ(p->lines.size(), 1u);
  EXPECT_TRUE(Published(store, "tnt_A").empty());
  EXPECT_EQ(store.Get("subscriptions", "tnt_A")->version, version);
  EXPECT_EQ(svc.Get("tnt_A", clock.Now())->current.plan.id, "free");
}

TEST(SubscriptionOutbox, EveryEventNamesItsActor) {
  storage::MemoryStore store(Specs());
  ManualClock clock(At("2026-03-01T00:00:00Z"));
  IdGenerator ids(clock);
  SubscriptionService svc(store, clock, ids, catalog::Catalog::Default());
  jobs::Scheduler scheduler(clock);
  svc.RegisterWith(scheduler);
  ChangeRequest r;
  r.plan = "pro";
  ASSERT_TRUE(svc.Change("tnt_A", clock.Now(), r, "key_admin", true).ok());
  ASSERT_TRUE(svc.Cancel("tnt_A", clock.Now(), false, "key_tenant").ok());
  ASSERT_TRUE(svc.Reactivate("tnt_A", clock.Now(), "key_admin2").ok());
  ASSERT_TRUE(svc.SetPaymentMethod("tnt_A", clock.Now(), true, "key_pm").ok());
  r.plan = "free";
  ASSERT_TRUE(svc.Change("tnt_A", clock.Now(), r, "key_down", true).ok());  // at period end
  scheduler.RunDue(At("2026-04-01T00:00:00Z"), [&](Instant due) {
    if (due > clock.Now()) {
      ASSERT_TRUE(clock.Set(due).ok());
    }
  });
  std::map<std::string, std::string> actor;
  for (const auto& e : Published(store, "tnt_A")) {
    ASSERT_TRUE(e.data.contains("actor")) << e.type;
    actor[e.type] = std::string(e.data.at("actor").as_string());
  }
  EXPECT_EQ(actor["subscription.upgraded"], "key_admin");
  EXPECT_EQ(actor["subscription.cancel_scheduled"], "key_tenant");
  EXPECT_EQ(actor["subscription.reactivated"], "key_admin2");
  EXPECT_EQ(actor["subscription.payment_method_updated"], "key_pm");
  EXPECT_EQ(actor["subscription.downgrade_scheduled"], "key_down");
  EXPECT_EQ(actor["subscription.plan_changed"], "scheduler");
  EXPECT_EQ(actor["subscription.renewed"], "scheduler");
  // The audit trail names them too.
  auto t = svc.Get("tnt_A", clock.Now()).value();
  std::vector<std::string> audit_actors;
  for (const auto& a : t.audit) audit_actors.push_back(a.actor);
  for (const char* want :
       {"key_admin", "key_tenant", "key_admin2", "key_pm", "key_down", "scheduler"}) {
    EXPECT_NE(std::find(audit_actors.begin(), audit_actors.end(), want), audit_actors.end())
        << want;
  }
}

TEST(SubscriptionOutbox, AFailedRelayIsLeftToTheScheduler) {
  storage::MemoryStore inner(Specs());
  bool fail = true;
  testing::FaultStore store(inner, [&](std::string_view, std::string_view c, std::string_view) {
    return fail && c == "billing_events" ? Status(Error::Make(ErrorCode::kUnavailable, "injected"))
                                         : Status::Ok();
  });
  ManualClock clock(At("2026-03-01T00:00:00Z"));
  IdGenerator ids(clock);
  SubscriptionService svc(store, clock, ids, catalog::Catalog::Default());
  jobs::Scheduler scheduler(clock);
  svc.RegisterWith(scheduler);
  ChangeRequest r;
  r.plan = "pro";
  ASSERT_TRUE(svc.Change("tnt_A", clock.Now(), r, "key_admin", true).ok());  // the change stands
  EXPECT_TRUE(Published(inner, "tnt_A").empty());
  EXPECT_EQ(svc.Get("tnt_A", clock.Now())->outbox.size(), 1u);
  EXPECT_EQ(scheduler.RunDue(clock.Now(), nullptr), 0);  // still failing: no spin, no loss
  fail = false;
  EXPECT_EQ(scheduler.RunDue(clock.Now(), nullptr), 1);
  EXPECT_EQ(Count(Published(inner, "tnt_A"), "subscription.upgraded"), 1);
  EXPECT_TRUE(svc.Get("tnt_A", clock.Now())->outbox.empty());
  EXPECT_EQ(scheduler.RunDue(clock.Now(), nullptr), 0);
}

// A process killed at every write step of an upgrade (the subscription
// write, each event's publication, the outbox's removal): after a restart and
// the scheduler's relay, the tenant is on Pro with exactly one
// "subscription.upgraded", or still on Free with none.
TEST(SubscriptionOutbox, AKillAtAnyWriteOfAChangeAnnouncesItExactlyOnce) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("caas-outbox-crash-" + std::to_string(::getpid()));
  int kills = 0;
  for (int kill_at = 0;; ++kill_at) {
    SCOPED_TRACE("killed before write #" + std::to_string(kill_at));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string path = (dir / "db.sqlite").string();
    const Instant start = At("2026-03-01T00:00:00Z");
    {
      storage::SqliteStore store(path, Specs());
      store.Migrate();
      ManualClock clock(start);
      IdGenerator ids(clock);
      SubscriptionService svc(store, clock, ids, catalog::Catalog::Default());
      ASSERT_TRUE(svc.Get("tnt_A", start).ok());  // the tenant exists, on Free
    }
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      storage::SqliteStore inner(path, Specs());
      int writes = 0;
      testing::FaultStore store(inner, [&](std::string_view, std::string_view, std::string_view) {
        if (writes++ == kill_at) ::_exit(9);  // as sudden as kill -9: no cleanup runs
        return Status::Ok();
      });
      ManualClock clock(start + std::chrono::hours(24));
      IdGenerator ids(clock);
      SubscriptionService svc(store, clock, ids, catalog::Catalog::Default());
      ChangeRequest r;
      r.plan = "pro";
      ::_exit(svc.Change("tnt_A", start, r, "key_admin", true).ok() ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    const bool killed = WEXITSTATUS(status) == 9;
    ASSERT_TRUE(killed || WEXITSTATUS(status) == 0);
    // The restart.
    storage::SqliteStore store(path, Specs());
    ManualClock clock(start + std::chrono::hours(25));
    IdGenerator ids(clock);
    SubscriptionService svc(store, clock, ids, catalog::Catalog::Default());
    jobs::Scheduler scheduler(clock);
    svc.RegisterWith(scheduler);
    scheduler.RunDue(clock.Now(), nullptr);
    scheduler.RunDue(clock.Now(), nullptr);  // a second pass changes nothing
    const auto t = svc.Get("tnt_A", start).value();
    const auto events = Published(store, "tnt_A");
    EXPECT_TRUE(t.outbox.empty());
    if (t.current.plan.id == "pro") {
      EXPECT_EQ(Count(events, "subscription.upgraded"), 1);
    } else {
      EXPECT_TRUE(killed);
      EXPECT_EQ(Count(events, "subscription.upgraded"), 0);
    }
    if (!killed) break;  // the change ran past its last write
    ++kills;
  }
  EXPECT_GE(kills, 3);  // the subscription write, the publication, the outbox's removal
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace caas::subscriptions
