// The DocumentStore conformance suite over the in-memory model and SQLite,
// and what is particular to SQLite (migrations).
#include "storage/sqlite/sqlite_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

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

TEST(SqliteStoreTest, UndeclaredCollectionIsAProgrammerError) {
  SqliteFactory f;
  auto s = f.Make();
  EXPECT_THROW((void)s->Get("nope", "a"), StorageError);
}

}  // namespace
}  // namespace caas::storage
