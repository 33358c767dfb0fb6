// The DocumentStore conformance suite over the in-memory model and SQLite,
// and what is particular to SQLite (migrations).
#include "storage/sqlite/sqlite_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "storage/document_store_conformance.h"
#include "storage/memory/memory_store.h"

namespace caas::storage {
namespace {

using conformance::Doc;
using conformance::Specs;

struct MemoryFactory {
  std::unique_ptr<DocumentStore> Make() { return std::make_unique<MemoryStore>(Specs()); }
};

struct SqliteFactory {
  std::filesystem::path dir;
  SqliteFactory() {
    dir = std::filesystem::temp_directory_path() /
          ("caas-conformance-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  ~SqliteFactory() { std::filesystem::remove_all(dir); }
  std::unique_ptr<DocumentStore> Make() {
    auto s = std::make_unique<SqliteStore>((dir / "db.sqlite").string(), Specs());
    s->Migrate();
    return s;
  }
  static inline int counter = 0;
};

}  // namespace

namespace conformance {
INSTANTIATE_TYPED_TEST_SUITE_P(Memory, DocumentStoreConformance, ::testing::Types<MemoryFactory>);
INSTANTIATE_TYPED_TEST_SUITE_P(Sqlite, DocumentStoreConformance, ::testing::Types<SqliteFactory>);
}  // namespace conformance

namespace {

TEST(SqliteStoreTest, SurvivesReopenAndMigratesOnce) {
  SqliteFactory f;
  {
    auto s = f.Make();
    ASSERT_TRUE(s->Insert("things", Doc("a", "kept", {{"email", "e"}})).ok());
  }
  SqliteStore reopened((f.dir / "db.sqlite").string(), Specs());
  EXPECT_TRUE(reopened.Migrate().empty());
  EXPECT_EQ(reopened.SchemaVersion(), SqliteStore::LatestSchemaVersion());
  EXPECT_EQ(reopened.Get("things", "a")->body, "kept");
  EXPECT_EQ(reopened.FindUnique("things", "email", "e")->id, "a");
}

TEST(SqliteStoreTest, RefusesADatabaseFromANewerBinary) {
  SqliteFactory f;
  { auto s = f.Make(); }
  {
    SqliteStore s((f.dir / "db.sqlite").string(), Specs());
    // Pretend a newer binary migrated further.
    ASSERT_TRUE(s.Insert("things", Doc("x", "y")).ok());
  }
  std::string cmd = "sqlite3 " + (f.dir / "db.sqlite").string() +
                    " \"INSERT INTO schema_migrations VALUES (999, 'future', 'now')\"";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  SqliteStore s((f.dir / "db.sqlite").string(), Specs());
  EXPECT_THROW(s.Migrate(), StorageError);
}

// Group commit: concurrent writers share commits, and each write still
// succeeds or fails on its own. A taken unique key, a duplicate id and a
// stale version fail only their own write; everything acknowledged is there
// after a reopen.
TEST(SqliteStoreTest, ConcurrentWritesShareCommitsAndFailAlone) {
  SqliteFactory f;
  constexpr int kThreads = 8, kEach = 60;
  {
    SqliteStore s((f.dir / "db.sqlite").string(), Specs());
    s.Migrate();
    ASSERT_TRUE(s.Insert("things", Doc("shared", "0")).ok());
    const uint64_t commits_before = s.commits();
    std::atomic<int> ok_inserts{0}, taken{0}, dup_ids{0}, conflicts{0}, bumps{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
          // Every fourth write claims an e-mail another thread also claims.
          std::map<std::string, std::string> keys{{"owner", std::to_string(t)}};
          if (i % 4 == 0) keys["email"] = "shared-" + std::to_string(i);
          Status st = s.Insert("things", Doc(id, "body " + id, keys));
          if (st) {
            ++ok_inserts;
          } else {
            EXPECT_EQ(st.error().code, ErrorCode::kAlreadyExists);
            ++taken;
          }
          // The id is taken now only if the first insert happened: a refused
          // insert left nothing behind (its savepoint was rolled back).
          Status again = s.Insert("things", Doc(id, "again"));
          EXPECT_EQ(again.ok(), !st.ok()) << id;
          if (!again.ok()) ++dup_ids;
          auto cur = s.Get("things", "shared");
          ASSERT_TRUE(cur.ok());
          Document next{"shared", 0, std::to_string(std::stoi(cur->body) + 1), {}};
          auto r = s.Replace("things", next, cur->version);
          if (r) {
            ++bumps;
          } else {
            EXPECT_EQ(r.error().code, ErrorCode::kConflict);
            ++conflicts;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    // Each e-mail went to exactly one thread; every other insert succeeded.
    EXPECT_EQ(taken.load(), (kThreads - 1) * (kEach / 4));
    EXPECT_EQ(ok_inserts.load(), kThreads * kEach - taken.load());
    EXPECT_EQ(dup_ids.load(), ok_inserts.load());
    EXPECT_EQ(s.Get("things", "shared")->body, std::to_string(bumps.load()));
    const uint64_t writes = static_cast<uint64_t>(kThreads * kEach * 3);
    const uint64_t commits = s.commits() - commits_before;
    EXPECT_LT(commits, writes) << "no two writes ever shared a commit";
    std::printf("%llu writes in %llu commits\n", static_cast<unsigned long long>(writes),
                static_cast<unsigned long long>(commits));
  }
  SqliteStore reopened((f.dir / "db.sqlite").string(), Specs());
  int found = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kEach; ++i) {
      const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
      auto d = reopened.Get("things", id);
      ASSERT_TRUE(d.ok()) << id;
      found += d->body == "body " + id;
    }
  }
  EXPECT_EQ(found, kThreads * kEach - (kThreads - 1) * (kEach / 4));
  for (int i = 0; i < kEach; i += 4) {
    EXPECT_TRUE(reopened.FindUnique("things", "email", "shared-" + std::to_string(i)).ok());
  }
}

TEST(SqliteStoreTest, UndeclaredCollectionIsAProgrammerError) {
  SqliteFactory f;
  auto s = f.Make();
  EXPECT_THROW((void)s->Get("nope", "a"), StorageError);
}

}  // namespace
}  // namespace caas::storage
