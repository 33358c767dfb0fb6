#include "metering/metering.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "catalog/catalog.h"
#include "test_dir.h"
#include "test_seed.h"

namespace caas::metering {
namespace {
namespace fs = std::filesystem;

Instant At(const char* text) { return ParseRfc3339(text).value(); }

using caas::testing::TempDir;

UsageEvent Ev(std::string tenant, std::string id, UsageType type, Instant time,
              int64_t quantity = 1, std::string subject = "") {
  UsageEvent e;
  e.tenant = std::move(tenant);
  e.source = "/chat";
  e.id = std::move(id);
  e.type = type;
  e.time = time;
  e.quantity = quantity;
  e.subject = std::move(subject);
  return e;
}

catalog::Terms FreeTerms() { return catalog::Catalog::Default().Latest("free")->Terms(); }
catalog::Terms ProTerms() { return catalog::Catalog::Default().Latest("pro")->Terms(); }
catalog::Terms EnterpriseTerms() {
  return catalog::Catalog::Default().Latest("enterprise")->Terms();
}

// Tenants on one terms segment from 2026-01-01, calendar months.
const Instant kStart = At("2026-01-01T00:00:00Z");
catalog::Timeline OneSegment(const catalog::Terms& terms, Instant start = kStart) {
  return catalog::Timeline(
      {catalog::Segment{start, catalog::Schedule{start, start, true, std::nullopt}, terms}});
}

class Harness {
 public:
  explicit Harness(std::string dir, Instant now = At("2026-11-25T12:00:00Z"))
      : dir_(std::move(dir)), clock_(now) {
    for (const char* t : {"tnt_a", "tnt_b", "tnt_c"}) timelines[t] = {1, OneSegment(FreeTerms())};
    Reopen();
  }
  void Reopen() {
    engine_.reset();
    MeteringOptions o;
    o.dir = dir_;
    o.segment_bytes = segment_bytes;
    engine_ = std::make_unique<MeteringEngine>(
        o, clock_,
        [this](std::string_view t) -> Result<VersionedTimeline> {
          auto it = timelines.find(std::string(t));
          if (it == timelines.end()) return Error::NotFound("no tenant");
          return it->second;
        },
        [this](const ThresholdEvent& e) { thresholds.push_back(e); });
    engine_->Open();
  }
  // Puts the tenant on `terms` for its whole history (a new version).
  void SetTerms(const std::string& tenant, const catalog::Terms& terms) {
    auto& v = timelines[tenant];
    v = VersionedTimeline{v.version + 1, OneSegment(terms)};
    ASSERT_TRUE(engine_->SetTimeline(tenant, v).ok());
  }
  std::vector<Outcome> Send(std::vector<UsageEvent> events) {
    std::vector<ParsedEvent> parsed;
    for (auto& e : events) parsed.push_back(ParsedEvent{std::move(e), "", ""});
    return engine_->Ingest(parsed).value();
  }
  OutcomeKind SendOne(UsageEvent e) { return Send({std::move(e)}).front().kind; }

  MeteringEngine& engine() { return *engine_; }
  ManualClock& clock() { return clock_; }

  std::map<std::string, VersionedTimeline> timelines;
  std::vector<ThresholdEvent> thresholds;
  uint64_t segment_bytes = 256ull << 20;

 private:
  std::string dir_;
  ManualClock clock_;
  std::unique_ptr<MeteringEngine> engine_;
};

const Instant kNow = At("2026-11-25T12:00:00Z");

TEST(Metering, AcceptDuplicateConflictReject) {
  TempDir dir;
  Harness h(dir.str());
  auto e = Ev("tnt_a", "e1", UsageType::kMessageSent, kNow, 3);
  EXPECT_EQ(h.SendOne(e), OutcomeKind::kAccepted);
  EXPECT_EQ(h.SendOne(e), OutcomeKind::kDuplicate);
  auto changed = e;
  changed.quantity = 4;
  auto out = h.Send({changed});
  EXPECT_EQ(out[0].kind, OutcomeKind::kConflict);
  EXPECT_EQ(out[0].field, "id");
  // Same id from another source or tenant is another event.
  auto other_source = e;
  other_source.source = "/other";
  EXPECT_EQ(h.SendOne(other_source), OutcomeKind::kAccepted);
  auto other_tenant = e;
  other_tenant.tenant = "tnt_b";
  EXPECT_EQ(h.SendOne(other_tenant), OutcomeKind::kAccepted);
  // Unknown tenant, too late, too far in the future.
  out = h.Send({Ev("tnt_nope", "x", UsageType::kMessageSent, kNow),
                Ev("tnt_a", "late", UsageType::kMessageSent, kNow - std::chrono::hours(24 * 36)),
                Ev("tnt_a", "future", UsageType::kMessageSent, kNow + std::chrono::minutes(6)),
                Ev("tnt_a", "ok-late", UsageType::kMessageSent, kNow - std::chrono::hours(24 * 34)),
                Ev("tnt_a", "ok-future", UsageType::kMessageSent, kNow + std::chrono::minutes(4))});
  EXPECT_EQ(out[0].kind, OutcomeKind::kRejected);
  EXPECT_EQ(out[0].field, "tenant");
  EXPECT_EQ(out[1].kind, OutcomeKind::kRejected);
  EXPECT_EQ(out[1].field, "time");
  EXPECT_NE(out[1].reason.find("35 days"), std::string::npos);
  EXPECT_EQ(out[2].kind, OutcomeKind::kRejected);
  EXPECT_EQ(out[2].field, "time");
  EXPECT_EQ(out[3].kind, OutcomeKind::kAccepted);
  EXPECT_EQ(out[4].kind, OutcomeKind::kAccepted);
  auto usage = h.engine().Usage("tnt_a", kNow).value();
  EXPECT_EQ(usage.metrics[0].used, Decimal::FromInt(3 + 3 + 1));  // e1, other source, ok-future
  EXPECT_EQ(h.engine().Stats().events, 5u);
}

TEST(Metering, DuplicatesInsideOneBatch) {
  TempDir dir;
  Harness h(dir.str());
  auto e = Ev("tnt_a", "e1", UsageType::kApiCall, kNow);
  auto out = h.Send({e, e, e});
  EXPECT_EQ(out[0].kind, OutcomeKind::kAccepted);
  EXPECT_EQ(out[1].kind, OutcomeKind::kDuplicate);
  EXPECT_EQ(out[2].kind, OutcomeKind::kDuplicate);
  EXPECT_EQ(h.engine().Usage("tnt_a", kNow)->metrics[1].used, Decimal::FromInt(1));
}

TEST(Metering, DedupeAndAggregatesSurviveRestart) {
  TempDir dir;
  Harness h(dir.str());
  auto e = Ev("tnt_a", "e1", UsageType::kMessageSent, kNow, 5);
  ASSERT_EQ(h.SendOne(e), OutcomeKind::kAccepted);
  ASSERT_EQ(h.SendOne(Ev("tnt_a", "u1", UsageType::kUserActive, kNow, 1, "alice")),
            OutcomeKind::kAccepted);
  const std::string before = h.engine().DebugSnapshot();
  h.Reopen();
  EXPECT_EQ(h.engine().DebugSnapshot(), before);
  EXPECT_EQ(h.SendOne(e), OutcomeKind::kDuplicate);
  auto changed = e;
  changed.time += std::chrono::seconds(1);
  EXPECT_EQ(h.SendOne(changed), OutcomeKind::kConflict);
}

TEST(Metering, VoidRemovesFromAggregatesAndKeepsTheIdTaken) {
  TempDir dir;
  Harness h(dir.str());
  ASSERT_EQ(h.SendOne(Ev("tnt_a", "m1", UsageType::kMessageSent, kNow, 10)),
            OutcomeKind::kAccepted);
  ASSERT_EQ(h.SendOne(Ev("tnt_a", "u1", UsageType::kUserActive, kNow, 1, "alice")),
            OutcomeKind::kAccepted);
  auto v = h.engine().Void("tnt_a", "/chat", "m1", "key_admin", "test traffic");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->quantity, 10);
  EXPECT_EQ(v->actor, "key_admin");
  EXPECT_EQ(h.engine().Usage("tnt_a", kNow)->metrics[0].used, Decimal());
  EXPECT_EQ(h.engine().Void("tnt_a", "/chat", "m1", "k", "again").error().code,
            ErrorCode::kConflict);
  EXPECT_EQ(h.engine().Void("tnt_a", "/chat", "nope", "k", "r").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(h.SendOne(Ev("tnt_a", "m1", UsageType::kMessageSent, kNow, 10)),
            OutcomeKind::kDuplicate);
  ASSERT_TRUE(h.engine().Void("tnt_a", "/chat", "u1", "k", "bot").ok());
  EXPECT_EQ(h.engine().Usage("tnt_a", kNow)->metrics[2].used, Decimal());
  h.Reopen();
  EXPECT_EQ(h.engine().Usage("tnt_a", kNow)->metrics[0].used, Decimal());
  EXPECT_EQ(h.engine().Usage("tnt_a", kNow)->metrics[2].used, Decimal());
  ASSERT_EQ(h.engine().Voids("tnt_a").size(), 2u);
  EXPECT_EQ(h.engine().Voids("tnt_a")[0].reason, "test traffic");
  EXPECT_EQ(h.engine().Void("tnt_a", "/chat", "m1", "k", "again").error().code,
            ErrorCode::kConflict);
}

TEST(Metering, MauCountsDistinctUsersPerPeriod) {
  TempDir dir;
  Harness h(dir.str());
  // November: alice twice, bob once; October: alice.
  ASSERT_EQ(
      h.SendOne(Ev("tnt_a", "1", UsageType::kUserActive, At("2026-11-02T00:00:00Z"), 1, "alice")),
      OutcomeKind::kAccepted);
  ASSERT_EQ(
      h.SendOne(Ev("tnt_a", "2", UsageType::kUserActive, At("2026-11-20T00:00:00Z"), 1, "alice")),
      OutcomeKind::kAccepted);
  ASSERT_EQ(
      h.SendOne(Ev("tnt_a", "3", UsageType::kUserActive, At("2026-11-20T00:00:00Z"), 1, "bob")),
      OutcomeKind::kAccepted);
  ASSERT_EQ(
      h.SendOne(Ev("tnt_a", "4", UsageType::kUserActive, At("2026-10-31T23:59:59Z"), 1, "alice")),
      OutcomeKind::kAccepted);
  EXPECT_EQ(h.engine().Usage("tnt_a", kNow)->metrics[2].used, Decimal::FromInt(2));
  EXPECT_EQ(h.engine().Usage("tnt_a", At("2026-10-15T00:00:00Z"))->metrics[2].used,
            Decimal::FromInt(1));
  auto days = h.engine().Daily(
      "tnt_a", (At("2026-11-20T00:00:00Z").time_since_epoch() / std::chrono::hours(24)),
      At("2026-11-20T00:00:00Z").time_since_epoch() / std::chrono::hours(24));
  ASSERT_TRUE(days.ok());
  EXPECT_EQ(days->at(0).active_users, 2);
  // Voiding one of alice's two November events keeps her active.
  ASSERT_TRUE(h.engine().Void("tnt_a", "/chat", "1", "k", "r").ok());
  EXPECT_EQ(h.engine().Usage("tnt_a", kNow)->metrics[2].used, Decimal::FromInt(2));
  EXPECT_TRUE(h.engine().IsActive("tnt_a", "alice"));
  EXPECT_FALSE(h.engine().IsActive("tnt_a", "carol"));
}

TEST(Metering, StorageIsTimeWeightedGbMonths) {
  TempDir dir;
  // November has 30 days. Clock at the period end so the whole month counts.
  Harness h(dir.str(), At("2026-11-30T23:59:59Z"));
  const Decimal gb = Decimal::FromInt(1);
  // 3 GB stored from Nov 1 00:00, 3 GB removed at Nov 16 00:00 (half the month): 1.5 GB-month
  // (measured up to the clock, 1 s short of the end, so compare at the end of the period).
  ASSERT_EQ(h.SendOne(Ev("tnt_a", "s1", UsageType::kMediaStored, At("2026-11-01T00:00:00Z"),
                         3'000'000'000)),
            OutcomeKind::kAccepted);
  ASSERT_EQ(h.SendOne(Ev("tnt_a", "s2", UsageType::kMediaStored, At("2026-11-16T00:00:00Z"),
                         -3'000'000'000)),
            OutcomeKind::kAccepted);
  h.clock().Advance(std::chrono::seconds(1));  // Dec 1 00:00: November is over
  auto nov = h.engine().Usage("tnt_a", At("2026-11-10T00:00:00Z")).value();
  EXPECT_EQ(nov.metrics[3].used.ToString(), "1.5");
  // 1 GB kept for one day of a 30-day month = 1/30 GB-month = 0.033333333333 (12 decimals,
  // half away from zero).
  TempDir dir2;
  Harness h2(dir2.str(), At("2026-11-30T23:59:59Z"));
  ASSERT_EQ(h2.SendOne(Ev("tnt_a", "s1", UsageType::kMediaStored, At("2026-11-10T00:00:00Z"),
                          1'000'000'000)),
            OutcomeKind::kAccepted);
  ASSERT_EQ(h2.SendOne(Ev("tnt_a", "s2", UsageType::kMediaStored, At("2026-11-11T00:00:00Z"),
                          -1'000'000'000)),
            OutcomeKind::kAccepted);
  EXPECT_EQ(h2.engine().Usage("tnt_a", At("2026-11-10T00:00:00Z"))->metrics[3].used.ToString(),
            "0.033333333333");
  // Storage carried over from October counts in November: 2 GB the whole month = 2 GB-month.
  TempDir dir3;
  Harness h3(dir3.str(), At("2026-11-15T00:00:00Z"));
  ASSERT_EQ(h3.SendOne(Ev("tnt_a", "s1", UsageType::kMediaStored, At("2026-10-20T00:00:00Z"),
                          2'000'000'000)),
            OutcomeKind::kAccepted);
  // Mid-month, the accrued part: 14 days of 30 at 2 GB = 0.933333333333.
  EXPECT_EQ(h3.engine().Usage("tnt_a", h3.clock().Now())->metrics[3].used.ToString(),
            "0.933333333333");
  h3.clock().Advance(std::chrono::hours(24 * 16));
  EXPECT_EQ(h3.engine().Usage("tnt_a", At("2026-11-15T00:00:00Z"))->metrics[3].used.ToString(),
            "2");
  // October: 12 days of 31 at 2 GB = 24/31 = 0.774193548387.
  EXPECT_EQ(h3.engine().Usage("tnt_a", At("2026-10-15T00:00:00Z"))->metrics[3].used.ToString(),
            "0.774193548387");
  (void)gb;
}

TEST(Metering, QuotasFreeHardProSoftEnterpriseNone) {
  TempDir dir;
  Harness h(dir.str());
  h.SetTerms("tnt_b", ProTerms());
  h.SetTerms("tnt_c", EnterpriseTerms());
  std::vector<UsageEvent> batch;
  for (const char* t : {"tnt_a", "tnt_b", "tnt_c"}) {
    batch.push_back(Ev(t, "big", UsageType::kMessageSent, kNow, 9'999));
  }
  h.Send(batch);
  auto a = h.engine().CheckCount("tnt_a", Metric::kMessages, 1).value();
  EXPECT_TRUE(a.allowed);
  EXPECT_EQ(a.used, Decimal::FromInt(9'999));
  EXPECT_EQ(*a.limit, Decimal::FromInt(10'000));
  EXPECT_EQ(*a.remaining, Decimal::FromInt(1));
  EXPECT_FALSE(h.engine().CheckCount("tnt_a", Metric::kMessages, 2)->allowed);
  auto b = h.engine().CheckCount("tnt_b", Metric::kMessages, 1'000'000).value();
  EXPECT_TRUE(b.allowed);
  EXPECT_FALSE(b.limit);
  EXPECT_EQ(*b.remaining, Decimal::FromInt(90'001));
  auto c = h.engine().CheckCount("tnt_c", Metric::kMessages, 1'000'000'000).value();
  EXPECT_TRUE(c.allowed);
  EXPECT_FALSE(c.limit);
  EXPECT_FALSE(c.remaining);
  EXPECT_EQ(h.engine().CheckCount("tnt_zzz", Metric::kMessages, 1).error().code,
            ErrorCode::kNotFound);
  // Visible immediately after Ingest returns.
  h.SendOne(Ev("tnt_a", "one-more", UsageType::kMessageSent, kNow, 1));
  EXPECT_FALSE(h.engine().CheckCount("tnt_a", Metric::kMessages, 1)->allowed);
  // A new month starts from zero.
  h.clock().Set(At("2026-12-01T00:00:00Z")).ok();
  EXPECT_EQ(h.engine().CheckCount("tnt_a", Metric::kMessages, 1)->used, Decimal());
  // Pro overage in the usage report: 9,999 + 100,002 - 100,000 included.
  h.SetTerms("tnt_b", ProTerms());
  auto rep = h.engine().Usage("tnt_b", kNow).value();
  EXPECT_EQ(rep.plan, "pro");
  EXPECT_EQ(rep.metrics[0].overage, Decimal());
  h.SendOne(Ev("tnt_b", "big-2", UsageType::kMessageSent, kNow, 90'003));
  rep = h.engine().Usage("tnt_b", kNow).value();
  EXPECT_EQ(rep.metrics[0].used, Decimal::FromInt(100'002));
  EXPECT_EQ(rep.metrics[0].overage, Decimal::FromInt(2));
}

TEST(Metering, ThresholdsOncePerPeriod) {
  TempDir dir;
  Harness h(dir.str());
  h.SendOne(Ev("tnt_a", "1", UsageType::kMessageSent, kNow, 7'999));
  EXPECT_TRUE(h.thresholds.empty());
  h.SendOne(Ev("tnt_a", "2", UsageType::kMessageSent, kNow, 1));
  ASSERT_EQ(h.thresholds.size(), 1u);
  EXPECT_EQ(h.thresholds[0].percent, 80);
  EXPECT_EQ(h.thresholds[0].metric, Metric::kMessages);
  EXPECT_EQ(h.thresholds[0].used, 8'000);
  h.SendOne(Ev("tnt_a", "3", UsageType::kMessageSent, kNow, 5'000));
  ASSERT_EQ(h.thresholds.size(), 2u);
  EXPECT_EQ(h.thresholds[1].percent, 100);
  ASSERT_TRUE(h.engine().Void("tnt_a", "/chat", "3", "k", "r").ok());
  h.SendOne(Ev("tnt_a", "4", UsageType::kMessageSent, kNow, 5'000));
  EXPECT_EQ(h.thresholds.size(), 2u);  // once per period
}

// Torn tails, corruption and write faults: tests/metering/event_log_test.cc.

TEST(Metering, SegmentsRotateAndReplayInOrder) {
  TempDir dir;
  Harness h(dir.str());
  h.segment_bytes = 4096;
  h.Reopen();
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(h.SendOne(Ev("tnt_a", "e" + std::to_string(i), UsageType::kApiCall, kNow, 1)),
              OutcomeKind::kAccepted);
  }
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.str())) ++files;
  EXPECT_GE(files, 3u);
  ASSERT_TRUE(h.engine().Void("tnt_a", "/chat", "e3", "k", "r").ok());  // reads an old segment
  h.Reopen();
  EXPECT_EQ(h.engine().Usage("tnt_a", kNow)->metrics[1].used, Decimal::FromInt(199));
}

// Calendar months by libc (gmtime_r/timegm), not by core/time.cc.
std::pair<int64_t, int64_t> LibcCalendarMonth(int64_t us) {
  const time_t secs = static_cast<time_t>(us >= 0 ? us / 1'000'000 : (us - 999'999) / 1'000'000);
  tm m{};
  gmtime_r(&secs, &m);
  tm first{};
  first.tm_year = m.tm_year;
  first.tm_mon = m.tm_mon;
  first.tm_mday = 1;
  tm next = first;
  next.tm_mon += 1;
  return {static_cast<int64_t>(timegm(&first)) * 1'000'000,
          static_cast<int64_t>(timegm(&next)) * 1'000'000};
}

// An independent model of what the aggregates must be.
struct Oracle {
  struct P {
    int64_t messages = 0, api = 0;
    std::map<std::string, int> users;
  };
  struct D {
    int64_t messages = 0, api = 0;
    std::map<std::string, int> users;
  };
  struct T {
    std::map<int64_t, P> periods;
    std::map<int64_t, D> days;
    std::map<int64_t, int64_t> storage;
  };
  std::map<std::string, T> tenants;

  void Apply(const UsageEvent& e, int sign) {
    T& t = tenants[e.tenant];
    const int64_t ps = LibcCalendarMonth(e.time.time_since_epoch().count()).first;
    const int64_t day = e.time.time_since_epoch().count() / 86'400'000'000;
    switch (e.type) {
      case UsageType::kMessageSent:
        t.periods[ps].messages += sign * e.quantity;
        t.days[day].messages += sign * e.quantity;
        break;
      case UsageType::kApiCall:
        t.periods[ps].api += sign * e.quantity;
        t.days[day].api += sign * e.quantity;
        break;
      case UsageType::kUserActive:
        if ((t.periods[ps].users[e.subject] += sign) == 0) t.periods[ps].users.erase(e.subject);
        if ((t.days[day].users[e.subject] += sign) == 0) t.days[day].users.erase(e.subject);
        break;
      case UsageType::kMediaStored: {
        const int64_t at = e.time.time_since_epoch().count();
        if ((t.storage[at] += sign * e.quantity) == 0) t.storage.erase(at);
        break;
      }
    }
  }
  // GB-month of [from, to) in a month `full_us` long: the bytes stored,
  // level by level in time order and never below zero, over 10^9 × month.
  static std::string GbMonths(const std::map<int64_t, int64_t>& storage, int64_t from, int64_t to,
                              int64_t full_us) {
    std::vector<std::pair<int64_t, __int128>> levels;  // (from this time, level)
    __int128 level = 0;
    for (const auto& [at, delta] : storage) {
      level = std::max<__int128>(0, level + delta);
      levels.emplace_back(at, level);
    }
    __int128 total = 0;
    for (size_t i = 0; i < levels.size(); ++i) {
      const int64_t a = std::max(from, levels[i].first);
      const int64_t b = std::min(to, i + 1 < levels.size() ? levels[i + 1].first : to);
      if (b > a) total += levels[i].second * (b - a);
    }
    // 12 decimals, half away from zero.
    const __int128 num = total * 1000;
    __int128 q = num / full_us;
    if ((num % full_us) * 2 >= full_us) ++q;
    return Decimal::FromRaw(q).ToString();
  }

  std::string Snapshot() const {
    std::ostringstream os;
    for (const auto& [id, t] : tenants) {
      for (const auto& [start, p] : t.periods) {
        if (p.messages == 0 && p.api == 0 && p.users.empty()) continue;
        os << id << " period " << start << " messages=" << p.messages << " api_calls=" << p.api
           << " mau=" << p.users.size() << " users=";
        for (const auto& [u, c] : p.users) os << u << ',';
        os << '\n';
      }
      for (const auto& [day, d] : t.days) {
        if (d.messages == 0 && d.api == 0 && d.users.empty()) continue;
        os << id << " day " << day << " messages=" << d.messages << " api_calls=" << d.api
           << " active=" << d.users.size() << '\n';
      }
      for (const auto& [at, delta] : t.storage)
        os << id << " storage " << at << ' ' << delta << '\n';
    }
    return os.str();
  }
};

TEST(Metering, RandomTrafficMatchesOracleAndRebuild) {
  const uint64_t seed = caas::testing::TestSeed();
  CAAS_SEED_TRACE(seed);
  std::mt19937_64 rng(seed);
  TempDir dir;
  Harness h(dir.str());
  h.segment_bytes = 64 << 10;
  h.Reopen();
  Oracle oracle;
  std::vector<UsageEvent> sent;  // accepted, not voided
  std::map<std::string, UsageEvent> by_key;
  std::set<std::string> voided;
  auto key = [](const UsageEvent& e) { return e.tenant + "|" + e.source + "|" + e.id; };
  const std::vector<std::string> tenants = {"tnt_a", "tnt_b", "tnt_c"};
  for (int round = 0; round < 12; ++round) {
    std::vector<UsageEvent> batch;
    for (int i = 0; i < 400; ++i) {
      if (!by_key.empty() && rng() % 10 < 3) {
        auto it = by_key.begin();
        std::advance(it, static_cast<long>(rng() % std::min<size_t>(by_key.size(), 50)));
        batch.push_back(it->second);  // an exact re-send
        continue;
      }
      UsageEvent e;
      e.tenant = tenants[rng() % tenants.size()];
      e.source = rng() % 2 ? "/chat" : "/api";
      e.id = "id-" + std::to_string(rng() % 100000);
      e.type = static_cast<UsageType>(1 + rng() % 4);
      e.time = kNow - std::chrono::seconds(static_cast<int64_t>(rng() % (34 * 86400)));
      e.quantity =
          e.type == UsageType::kMediaStored
              ? static_cast<int64_t>(rng() % 2000) - 900
              : (e.type == UsageType::kUserActive ? 1 : 1 + static_cast<int64_t>(rng() % 5));
      if (e.quantity == 0) e.quantity = 1;
      if (e.type == UsageType::kUserActive) e.subject = "user-" + std::to_string(rng() % 300);
      batch.push_back(e);
    }
    auto out = h.Send(batch);
    for (size_t i = 0; i < batch.size(); ++i) {
      const std::string k = key(batch[i]);
      auto it = by_key.find(k);
      if (it == by_key.end()) {
        ASSERT_EQ(out[i].kind, OutcomeKind::kAccepted) << k;
        by_key[k] = batch[i];
        oracle.Apply(batch[i], 1);
      } else if (it->second == batch[i]) {
        ASSERT_EQ(out[i].kind, OutcomeKind::kDuplicate) << k;
      } else {
        ASSERT_EQ(out[i].kind, OutcomeKind::kConflict) << k;
      }
    }
    // Void a few.
    for (int v = 0; v < 5; ++v) {
      auto it = by_key.begin();
      std::advance(it, static_cast<long>(rng() % by_key.size()));
      auto r = h.engine().Void(it->second.tenant, it->second.source, it->second.id, "k", "r");
      if (voided.count(it->first)) {
        ASSERT_FALSE(r.ok());
      } else {
        ASSERT_TRUE(r.ok());
        voided.insert(it->first);
        oracle.Apply(it->second, -1);
      }
    }
    if (round % 4 == 3) h.Reopen();
    ASSERT_EQ(h.engine().DebugSnapshot(), oracle.Snapshot()) << "round " << round;
    // The answers, not only the raw aggregates: usage of every period,
    // every day, and quota decisions, against the oracle's own arithmetic.
    const int64_t now_us = kNow.time_since_epoch().count();
    for (const auto& tenant : tenants) {
      const Oracle::T& ot = oracle.tenants[tenant];
      for (int64_t back = 0; back <= 1; ++back) {
        const auto month = LibcCalendarMonth(now_us - back * 32LL * 86'400'000'000);
        const auto u = h.engine().Usage(tenant, Instant(Micros(month.first))).value();
        ASSERT_EQ(u.period.period.start.time_since_epoch().count(), month.first);
        ASSERT_EQ(u.period.period.end.time_since_epoch().count(), month.second);
        auto it = ot.periods.find(month.first);
        const Oracle::P none;
        const Oracle::P& p = it == ot.periods.end() ? none : it->second;
        ASSERT_EQ(u.metrics[0].used, Decimal::FromInt(p.messages)) << tenant;
        ASSERT_EQ(u.metrics[1].used, Decimal::FromInt(p.api)) << tenant;
        ASSERT_EQ(u.metrics[2].used, Decimal::FromInt(static_cast<int64_t>(p.users.size())));
        ASSERT_EQ(u.metrics[3].used.ToString(),
                  Oracle::GbMonths(ot.storage, month.first, std::min(month.second, now_us),
                                   month.second - month.first))
            << tenant << " month " << month.first;
        if (back == 0) {  // the current period's quota view
          const int64_t q = static_cast<int64_t>(rng() % 12'000);
          auto d = h.engine().CheckCount(tenant, Metric::kMessages, q).value();
          ASSERT_EQ(d.used, Decimal::FromInt(p.messages));
          ASSERT_EQ(d.allowed, p.messages + q <= 10'000) << tenant;
          auto mau = h.engine().CheckCount(tenant, Metric::kMau, 1).value();
          ASSERT_EQ(mau.used, Decimal::FromInt(static_cast<int64_t>(p.users.size())));
        }
      }
      // Every day of the window.
      const int64_t last = now_us / 86'400'000'000, first = last - 40;
      auto days = h.engine().Daily(tenant, first, last).value();
      ASSERT_EQ(days.size(), static_cast<size_t>(last - first + 1));
      __int128 level = 0;
      auto st = ot.storage.begin();
      for (const auto& d : days) {
        auto od = ot.days.find(d.day);
        ASSERT_EQ(d.messages, od == ot.days.end() ? 0 : od->second.messages);
        ASSERT_EQ(d.api_calls, od == ot.days.end() ? 0 : od->second.api);
        ASSERT_EQ(d.active_users,
                  od == ot.days.end() ? 0 : static_cast<int64_t>(od->second.users.size()));
        for (; st != ot.storage.end() && st->first < (d.day + 1) * 86'400'000'000; ++st) {
          level = std::max<__int128>(0, level + st->second);
        }
        ASSERT_EQ(d.storage_bytes, static_cast<int64_t>(level)) << "day " << d.day;
      }
    }
  }
  const std::string live = h.engine().DebugSnapshot();
  h.Reopen();
  EXPECT_EQ(h.engine().DebugSnapshot(), live);
  EXPECT_EQ(h.engine().Stats().events, by_key.size());
}

TEST(Metering, ConcurrentIngestCountsEachEventOnce) {
  TempDir dir;
  Harness h(dir.str());
  std::vector<std::thread> threads;
  std::atomic<int> accepted{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 50; ++round) {
        std::vector<UsageEvent> batch;
        // Every thread sends the same 100 ids per round, plus 100 of its own.
        for (int i = 0; i < 100; ++i) {
          batch.push_back(Ev("tnt_a", "shared-" + std::to_string(round * 100 + i),
                             UsageType::kMessageSent, kNow, 1));
          batch.push_back(Ev("tnt_a",
                             "own-" + std::to_string(t) + "-" + std::to_string(round * 100 + i),
                             UsageType::kMessageSent, kNow, 1));
        }
        for (const auto& o : h.Send(batch)) {
          if (o.kind == OutcomeKind::kAccepted) ++accepted;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(accepted.load(), 5000 + 4 * 5000);
  EXPECT_EQ(h.engine().Usage("tnt_a", kNow)->metrics[0].used, Decimal::FromInt(25'000));
}

}  // namespace
}  // namespace caas::metering
