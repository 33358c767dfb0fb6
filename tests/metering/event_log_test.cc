// The crash-and-corruption suite of the event log, in the way leveldb's
// corruption_test and fault_injection_test work: damage every region of a
// segment, truncate, delete, tear writes and fail them at every step; each
// case either refuses to start with a precise error or recovers exactly the
// acknowledged records. Nothing is ever lost silently.
#include "metering/event_log.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "catalog/catalog.h"
#include "metering/metering.h"
#include "test_dir.h"

namespace caas::metering {
namespace {
namespace fs = std::filesystem;

using caas::testing::TempDir;

// Fails writes (no space left), tears them (a prefix is written, then the
// failure), or fails fdatasync, on the n-th call.
class FaultEnv : public LogEnv {
 public:
  ssize_t Write(int fd, const void* data, size_t n) override {
    const int k = writes_++;
    if (full || k == fail_write_at) {
      if (tear_bytes > 0) (void)LogEnv::Write(fd, data, std::min(tear_bytes, n));
      errno = ENOSPC;
      return -1;
    }
    return LogEnv::Write(fd, data, n);
  }
  int Fdatasync(int fd) override {
    if (syncs_++ == fail_sync_at) {
      errno = EIO;
      return -1;
    }
    return LogEnv::Fdatasync(fd);
  }
  bool full = false;
  int fail_write_at = -1;
  size_t tear_bytes = 0;
  int fail_sync_at = -1;
  int writes() const { return writes_; }

 private:
  int writes_ = 0;
  int syncs_ = 0;
};

std::vector<std::string> Segments(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".log") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x5a));
}

void Append(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::app | std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Writes `groups` groups of `per_group` records ("g.r") and returns them, in
// order. `clean`: close the log (a clean shutdown); else leave as after a crash.
std::vector<std::string> WriteLog(const std::string& dir, int groups, int per_group, bool clean,
                                  uint64_t segment_bytes = 1 << 20) {
  std::vector<std::string> written;
  EventLog log(dir, segment_bytes);
  log.Open([](uint64_t, std::string_view) {});
  for (int g = 0; g < groups; ++g) {
    std::string buf;
    EventLog::StartGroup(&buf);
    for (int r = 0; r < per_group; ++r) {
      written.push_back("record " + std::to_string(g) + "." + std::to_string(r) +
                        std::string(static_cast<size_t>(r % 7) * 11, 'x'));
      EventLog::Frame(&buf, written.back());
    }
    EXPECT_TRUE(log.WriteAndSync(buf).ok());
  }
  if (clean) log.Close();
  return written;
}

std::vector<std::string> ReadLog(const std::string& dir, uint64_t segment_bytes = 1 << 20) {
  std::vector<std::string> got;
  EventLog log(dir, segment_bytes);
  log.Open([&](uint64_t, std::string_view p) { got.emplace_back(p); });
  return got;
}

// Opens and expects the refusal, naming `what`; the files stay as they were.
void ExpectRefused(const std::string& dir, const std::string& what) {
  std::map<std::string, uintmax_t> sizes;
  for (const auto& p : Segments(dir)) sizes[p] = fs::file_size(p);
  try {
    ReadLog(dir);
    ADD_FAILURE() << "opened a damaged log (" << what << ")";
  } catch (const LogCorruption& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("caas-billing doctor"), std::string::npos);
  }
  for (const auto& [p, size] : sizes) EXPECT_EQ(fs::file_size(p), size) << "changed " << p;
}

TEST(EventLog, CleanLogReadsBackAndRecordsReadByLsn) {
  TempDir dir;
  auto written = WriteLog(dir.str(), 20, 5, true, 1024);
  EXPECT_GE(Segments(dir.str()).size(), 3u);
  EventLog log(dir.str(), 1024);
  std::vector<std::pair<uint64_t, std::string>> got;
  log.Open([&](uint64_t lsn, std::string_view p) { got.emplace_back(lsn, std::string(p)); });
  ASSERT_EQ(got.size(), written.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].second, written[i]);
    EXPECT_EQ(log.Read(got[i].first).value(), written[i]);  // across segments
  }
}

TEST(EventLog, ATornTailAfterACrashIsCutAndNothingAcknowledgedIsLost) {
  // Partial groups of every shape at the end of the newest segment.
  for (int cut : {1, 7, 15, 16, 17, 40, 120}) {
    TempDir dir;
    auto written = WriteLog(dir.str(), 5, 4, /*clean=*/false);
    const std::string seg = Segments(dir.str()).back();
    const auto size = fs::file_size(seg);
    // A real group, cut short.
    std::string group;
    EventLog::StartGroup(&group);
    EventLog::Frame(&group, std::string(200, 'z'));
    std::string bytes(group.size(), '\0');
    uint32_t magic = EventLog::kGroupMagic;
    std::memcpy(bytes.data(), &magic, 4);
    uint32_t len = static_cast<uint32_t>(group.size() - 16);
    std::memcpy(bytes.data() + 4, &len, 4);
    Append(seg, bytes.substr(0, static_cast<size_t>(cut)));
    EXPECT_EQ(ReadLog(dir.str()), written) << "cut " << cut;
    EXPECT_EQ(fs::file_size(seg), size) << "cut " << cut;
    // And it takes new groups after the cut.
    EventLog log(dir.str());
    log.Open([](uint64_t, std::string_view) {});
    std::string more;
    EventLog::StartGroup(&more);
    EventLog::Frame(&more, "after");
    ASSERT_TRUE(log.WriteAndSync(more).ok());
    log.Close();
    auto again = ReadLog(dir.str());
    ASSERT_EQ(again.size(), written.size() + 1);
    EXPECT_EQ(again.back(), "after");
  }
}

TEST(EventLog, DamageAnywhereInACleanLogIsRefusedWithSegmentAndOffset) {
  struct Region {
    const char* name;
    uint64_t offset;  // in the last segment
  };
  // File header (magic, start LSN), the first group's header, its first
  // record's header and payload, the middle, the very last byte.
  for (const Region& r : {Region{"magic", 2}, Region{"start lsn", 9}, Region{"group header", 17},
                          Region{"record header", 34}, Region{"first payload", 50},
                          Region{"middle", 400}, Region{"last byte", 0}}) {
    TempDir dir;
    WriteLog(dir.str(), 8, 3, /*clean=*/true);
    const std::string seg = Segments(dir.str()).back();
    const uint64_t at = r.offset ? r.offset : fs::file_size(seg) - 1;
    FlipByte(seg, at);
    ExpectRefused(dir.str(), r.offset == 9 ? "out of place" : "00000000000000000000.log");
  }
}

TEST(EventLog, DamageFollowedByIntactGroupsIsCorruptionEvenAfterACrash) {
  TempDir dir;
  WriteLog(dir.str(), 8, 3, /*clean=*/false);
  const std::string seg = Segments(dir.str()).back();
  FlipByte(seg, 60);  // the first group; seven intact groups follow
  ExpectRefused(dir.str(), "is damaged at byte");
}

TEST(EventLog, OlderSegmentsMissingSegmentsAndTruncationAreRefused) {
  {  // a byte flipped in an older segment
    TempDir dir;
    WriteLog(dir.str(), 30, 4, false, 2048);
    auto segs = Segments(dir.str());
    ASSERT_GE(segs.size(), 3u);
    FlipByte(segs[0], fs::file_size(segs[0]) - 3);
    ExpectRefused(dir.str(), "older segment");
  }
  for (int which : {0, 1, 2}) {  // a deleted first, middle or last segment
    TempDir dir;
    WriteLog(dir.str(), 30, 4, false, 2048);
    auto segs = Segments(dir.str());
    ASSERT_GE(segs.size(), 3u);
    fs::remove(which == 0 ? segs.front() : which == 1 ? segs[1] : segs.back());
    ExpectRefused(dir.str(), which == 1 ? "does not follow" : "missing");
  }
  {  // an older segment cut short
    TempDir dir;
    WriteLog(dir.str(), 30, 4, false, 2048);
    auto segs = Segments(dir.str());
    fs::resize_file(segs[0], fs::file_size(segs[0]) - 20);
    ExpectRefused(dir.str(), "00000000000000000000.log");
  }
  {  // the newest segment cut at a group boundary after a clean shutdown:
     // only the clean-shutdown mark tells
    TempDir dir;
    auto written = WriteLog(dir.str(), 8, 1, true);
    EXPECT_TRUE(EventLog::Verify(dir.str()).damage.empty());
    auto seg = Segments(dir.str()).back();
    const uintmax_t last_group =
        EventLog::kGroupHeaderBytes + EventLog::kRecordHeaderBytes + written.back().size();
    fs::resize_file(seg, fs::file_size(seg) - last_group);
    EXPECT_FALSE(EventLog::Verify(dir.str()).damage.empty());
    ExpectRefused(dir.str(), "shut down cleanly");
  }
  {  // every segment gone
    TempDir dir;
    WriteLog(dir.str(), 3, 3, true);
    for (const auto& s : Segments(dir.str())) fs::remove(s);
    ExpectRefused(dir.str(), "every segment is missing");
  }
}

TEST(EventLog, LegacySegmentsAreReadAndNewGroupsGoToANewSegment) {
  TempDir dir;
  fs::create_directories(dir.str());
  // The format before groups: records back to back, no file header.
  std::string legacy;
  for (int i = 0; i < 5; ++i) EventLog::Frame(&legacy, "old " + std::to_string(i));
  Append(dir.str() + "/00000000000000000000.log", legacy);
  {
    EventLog log(dir.str());
    int n = 0;
    log.Open([&](uint64_t, std::string_view) { ++n; });
    EXPECT_EQ(n, 5);
    std::string g;
    EventLog::StartGroup(&g);
    EventLog::Frame(&g, "new");
    ASSERT_TRUE(log.WriteAndSync(g).ok());
    log.Close();
  }
  EXPECT_EQ(Segments(dir.str()).size(), 2u);
  auto all = ReadLog(dir.str());
  ASSERT_EQ(all.size(), 6u);
  EXPECT_EQ(all.front(), "old 0");
  EXPECT_EQ(all.back(), "new");
}

TEST(EventLog, VerifyReportsAndScanIntactSalvagesAroundTheDamage) {
  TempDir dir;
  auto written = WriteLog(dir.str(), 10, 4, true);
  const std::string seg = Segments(dir.str()).back();
  FlipByte(seg, 80);  // inside the first group's second or third record
  EventLog::Report report = EventLog::Verify(dir.str());
  // The damaged group, and (the log was closed cleanly) the missing end.
  ASSERT_EQ(report.damage.size(), 2u);
  EXPECT_NE(report.damage[1].what.find("shut down cleanly"), std::string::npos);
  EXPECT_EQ(report.damage[0].segment, "00000000000000000000.log");
  EXPECT_FALSE(report.damage[0].torn_tail);
  EXPECT_GT(report.damage[0].intact_after, 0u);
  std::vector<std::string> salvaged;
  EventLog::ScanIntact(dir.str(), [&](std::string_view p) { salvaged.emplace_back(p); });
  // Every record but the damaged one.
  ASSERT_EQ(salvaged.size(), written.size() - 1);
  size_t missing = 0;
  for (size_t i = 0, j = 0; i < written.size(); ++i) {
    if (j < salvaged.size() && salvaged[j] == written[i]) {
      ++j;
    } else {
      ++missing;
    }
  }
  EXPECT_EQ(missing, 1u);
}

TEST(EventLog, AFailedWriteLeavesTheLogAsItWasAndTheNextOneSucceeds) {
  for (size_t tear : {size_t{0}, size_t{5}, size_t{30}}) {
    TempDir dir;
    FaultEnv env;
    std::vector<std::string> acked;
    {
      EventLog log(dir.str(), 1 << 20, env);
      log.Open([](uint64_t, std::string_view) {});
      for (int g = 0; g < 6; ++g) {
        std::string buf;
        EventLog::StartGroup(&buf);
        const std::string rec = "group " + std::to_string(g);
        EventLog::Frame(&buf, rec);
        if (g == 3) {
          env.full = true;
          env.tear_bytes = tear;
        }
        if (g == 5) env.full = false;  // space came back
        Status s = log.WriteAndSync(buf);
        if (g == 3 || g == 4) {
          ASSERT_FALSE(s.ok());
          EXPECT_EQ(s.error().code, ErrorCode::kResourceExhausted);
        } else {
          ASSERT_TRUE(s.ok()) << s.error().message;
          acked.push_back(rec);
        }
      }
      log.Close();
    }
    EXPECT_EQ(ReadLog(dir.str()), acked) << "tear " << tear;
  }
}

// ---- The engine on a failing disk ----

const Instant kNow = ParseRfc3339("2026-11-25T12:00:00Z").value();

std::unique_ptr<MeteringEngine> Engine(const std::string& dir, const Clock& clock,
                                       LogEnv* env = nullptr) {
  MeteringOptions o;
  o.dir = dir;
  o.segment_bytes = 8192;
  o.env = env;
  const Instant start = ParseRfc3339("2026-01-01T00:00:00Z").value();
  catalog::Timeline free({catalog::Segment{start, catalog::Schedule{start, start, true, {}},
                                           catalog::Catalog::Default().Latest("free")->Terms()}});
  auto e = std::make_unique<MeteringEngine>(
      o, clock,
      [free](std::string_view t) -> Result<VersionedTimeline> {
        if (t != "tnt_a") return Error::NotFound("no tenant");
        return VersionedTimeline{1, free};
      },
      nullptr);
  e->Open();
  return e;
}

Result<std::vector<Outcome>> SendBatch(MeteringEngine& e, int from, int n) {
  std::vector<ParsedEvent> batch;
  for (int i = from; i < from + n; ++i) {
    ParsedEvent p;
    p.event =
        UsageEvent{"tnt_a", "/f", "e" + std::to_string(i), "", UsageType::kMessageSent, kNow, 1};
    batch.push_back(std::move(p));
  }
  return e.Ingest(batch);
}

int64_t Messages(MeteringEngine& e) {
  return e.Usage("tnt_a", kNow)->metrics[0].used.ToMinorUnitsExact(0).value();
}

TEST(EventLogFaults, DiskFullFailsTheRequestAndReleasesItsClaims) {
  // Fail (or tear) the write of each group commit in turn, then let space
  // come back: exactly the acknowledged events count, and every re-send of a
  // failed one is accepted (never a false duplicate), through a restart.
  for (int step = 0; step < 6; ++step) {
    for (size_t tear : {size_t{0}, size_t{9}}) {
      TempDir dir;
      ManualClock clock(kNow);
      FaultEnv env;
      auto e = Engine(dir.str(), clock, &env);
      std::set<int> acked;
      for (int b = 0; b < 6; ++b) {
        if (b == step) {
          env.full = true;
          env.tear_bytes = tear;
        }
        auto r = SendBatch(*e, b * 10, 10);
        if (b == step) {
          ASSERT_FALSE(r.ok());
          EXPECT_EQ(r.error().code, ErrorCode::kResourceExhausted);
          EXPECT_TRUE(e->WriteError().has_value());
          env.full = false;
        } else {
          ASSERT_TRUE(r.ok()) << r.error().message;
          for (int i = 0; i < 10; ++i) {
            ASSERT_EQ((*r)[static_cast<size_t>(i)].kind, OutcomeKind::kAccepted);
            acked.insert(b * 10 + i);
          }
          EXPECT_FALSE(e->WriteError().has_value());
        }
        // Reads and quota checks keep working.
        EXPECT_EQ(Messages(*e), static_cast<int64_t>(acked.size()));
        EXPECT_TRUE(e->CheckCount("tnt_a", catalog::Metric::kMessages, 1).ok());
      }
      // The failed batch, sent again now that there is space: accepted.
      auto again = SendBatch(*e, step * 10, 10);
      ASSERT_TRUE(again.ok());
      for (const auto& o : *again) EXPECT_EQ(o.kind, OutcomeKind::kAccepted);
      e.reset();
      auto reopened = Engine(dir.str(), clock);
      EXPECT_EQ(Messages(*reopened), 60) << "step " << step << " tear " << tear;
    }
  }
}

TEST(EventLogFaults, ACrashAtAnyPointRecoversExactlyTheAcknowledged) {
  // Snapshot the files while the engine runs (what a crash leaves: only
  // synced groups are whole), add a torn tail of random length, reopen.
  std::mt19937 rng(7);
  for (int round = 0; round < 8; ++round) {
    TempDir dir, copy;
    ManualClock clock(kNow);
    auto e = Engine(dir.str(), clock);
    int acked = 0;
    for (int b = 0; b <= round; ++b) {
      ASSERT_TRUE(SendBatch(*e, b * 50, 50).ok());
      acked += 50;
    }
    fs::create_directories(copy.str());
    for (const auto& p : fs::directory_iterator(dir.str())) {
      fs::copy_file(p.path(), copy.str() + "/" + p.path().filename().string());
    }
    std::string torn(rng() % 300, '\0');
    for (auto& c : torn) c = static_cast<char>(rng());
    if (!torn.empty()) {
      uint32_t magic = EventLog::kGroupMagic;
      std::memcpy(torn.data(), &magic, std::min<size_t>(4, torn.size()));
    }
    Append(Segments(copy.str()).back(), torn);
    e.reset();
    auto recovered = Engine(copy.str(), clock);
    EXPECT_EQ(Messages(*recovered), acked) << "round " << round;
    // And it goes on from there.
    ASSERT_TRUE(SendBatch(*recovered, 10'000, 5).ok());
    EXPECT_EQ(Messages(*recovered), acked + 5);
  }
}

TEST(EventLogFaults, AFailedFdatasyncEndsTheProcessAndTheRestartKeepsTheAcknowledged) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  TempDir dir;
  ManualClock clock(kNow);
  {
    auto e = Engine(dir.str(), clock);
    ASSERT_TRUE(SendBatch(*e, 0, 20).ok());
  }
  EXPECT_DEATH(
      {
        FaultEnv env;
        env.fail_sync_at = 1;  // the open's own sync is #0
        auto e = Engine(dir.str(), clock, &env);
        (void)SendBatch(*e, 100, 20);
      },
      "fdatasync");
  // The 20 acknowledged are there; the 20 in flight may be (they were
  // written, never acknowledged): never anything else.
  auto e = Engine(dir.str(), clock);
  const int64_t n = Messages(*e);
  EXPECT_TRUE(n == 20 || n == 40) << n;
}

// Counts every file operation of the log and, at step `at`, does `action`:
// kill the process before the operation (as kill -9 would), kill it in the
// middle of a write (a torn write), fail a write (ENOSPC), or fail an
// fdatasync (EIO, which ends the process).
class StepEnv : public LogEnv {
 public:
  enum class Action { kCrash, kCrashMidWrite, kFailWrite, kFailSync };
  StepEnv(int at, Action action) : at_(at), action_(action) {}

  int Open(const std::string& path, int flags, mode_t mode) override {
    Step(false);
    return LogEnv::Open(path, flags, mode);
  }
  ssize_t Write(int fd, const void* data, size_t n) override {
    if (Step(true)) {
      if (action_ == Action::kCrashMidWrite) {
        (void)LogEnv::Write(fd, data, n / 2);
        ::_exit(9);
      }
      errno = ENOSPC;
      return -1;
    }
    return LogEnv::Write(fd, data, n);
  }
  int Fdatasync(int fd) override {
    const bool hit = steps_ == at_;
    Step(false);
    if (hit && action_ == Action::kFailSync) {
      errno = EIO;
      return -1;
    }
    return LogEnv::Fdatasync(fd);
  }
  int Ftruncate(int fd, off_t length) override {
    Step(false);
    return LogEnv::Ftruncate(fd, length);
  }
  int SyncDir(const std::string& dir) override {
    Step(false);
    return LogEnv::SyncDir(dir);
  }
  int Rename(const std::string& from, const std::string& to) override {
    Step(false);
    return LogEnv::Rename(from, to);
  }
  int steps() const { return steps_; }

 private:
  // True when this write is to fail (kFailWrite, kCrashMidWrite at a write).
  bool Step(bool is_write) {
    const int k = steps_++;
    if (k != at_) return false;
    if (action_ == Action::kCrash) ::_exit(9);
    if (action_ == Action::kCrashMidWrite) {
      if (!is_write) ::_exit(9);
      return true;
    }
    return action_ == Action::kFailWrite && is_write;
  }
  const int at_;
  const Action action_;
  int steps_ = 0;
};

// The workload: `kBatches` batches of 10 events on 8 KiB segments (so group
// commits rotate segments and rewrite the manifest on the way). Each
// acknowledged batch is reported on `report_fd` (one byte, its number).
constexpr int kBatches = 24;
int RunWorkload(const std::string& dir, LogEnv* env, int report_fd) {
  ManualClock clock(kNow);
  auto e = Engine(dir, clock, env);
  for (int b = 0; b < kBatches; ++b) {
    auto r = SendBatch(*e, b * 10, 10);
    if (!r.ok()) continue;  // a failed write: this batch is not acknowledged
    const char id = static_cast<char>(b);
    if (report_fd >= 0 && ::write(report_fd, &id, 1) != 1) ::_exit(3);
  }
  return 0;
}

// Every step of every group commit (opening the log, rotating segments,
// rewriting the manifest, writing and syncing groups), with each fault: after
// the restart the counted events are exactly the acknowledged ones, plus at
// most the batch in flight; the log goes on, and re-sending everything is
// accepted exactly once (no false duplicate, nothing counted twice).
TEST(EventLogFaults, EveryStepOfAGroupCommitFailsOrCrashesAndTheRestartCountsTheAcknowledged) {
  int steps = 0;
  {
    TempDir dir;
    StepEnv counting(-1, StepEnv::Action::kCrash);
    RunWorkload(dir.str(), &counting, -1);
    steps = counting.steps();
  }
  ASSERT_GT(steps, 3 * kBatches);  // at least a write and a sync per group, and rotations
  int crashed = 0, failed_writes = 0;
  for (auto action : {StepEnv::Action::kCrash, StepEnv::Action::kCrashMidWrite,
                      StepEnv::Action::kFailWrite, StepEnv::Action::kFailSync}) {
    for (int at = 0; at < steps; ++at) {
      SCOPED_TRACE("action " + std::to_string(static_cast<int>(action)) + " at step " +
                   std::to_string(at) + " of " + std::to_string(steps));
      TempDir dir;
      int pipe_fds[2];
      ASSERT_EQ(::pipe(pipe_fds), 0);
      const pid_t pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        ::close(pipe_fds[0]);
        StepEnv env(at, action);
        RunWorkload(dir.str(), &env, pipe_fds[1]);
        ::_exit(0);
      }
      ::close(pipe_fds[1]);
      std::set<int> acked;
      char id = 0;
      while (::read(pipe_fds[0], &id, 1) == 1) acked.insert(id);
      ::close(pipe_fds[0]);
      int status = 0;
      ASSERT_EQ(::waitpid(pid, &status, 0), pid);
      const bool died = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
      crashed += died;
      failed_writes += !died && static_cast<int>(acked.size()) < kBatches;
      ManualClock clock(kNow);
      auto e = Engine(dir.str(), clock);
      const int64_t counted = Messages(*e);
      const int64_t want = static_cast<int64_t>(acked.size()) * 10;
      if (died) {
        // Plus at most the batch in flight (written, never acknowledged).
        EXPECT_TRUE(counted == want || counted == want + 10) << counted << " vs " << want;
      } else {
        EXPECT_EQ(counted, want);  // a failed write leaves nothing behind
      }
      int accepted = 0, duplicates = 0;
      for (int b = 0; b < kBatches; ++b) {
        auto r = SendBatch(*e, b * 10, 10);
        ASSERT_TRUE(r.ok()) << r.error().message;
        for (const auto& o : *r) {
          accepted += o.kind == OutcomeKind::kAccepted;
          duplicates += o.kind == OutcomeKind::kDuplicate;
        }
        if (acked.count(b)) {
          EXPECT_EQ((*r)[0].kind, OutcomeKind::kDuplicate) << "batch " << b;
        }
      }
      EXPECT_EQ(duplicates, counted);
      EXPECT_EQ(Messages(*e), kBatches * 10);
    }
  }
  EXPECT_GT(crashed, 2 * steps);  // crashes (and every failed fdatasync) ended the process
  EXPECT_GT(failed_writes, 0);
}

}  // namespace
}  // namespace caas::metering
