// One conformance suite for every DocumentStore adapter. A new adapter (the
// MongoDB one) adds a factory to the type list and must pass all of it.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <thread>

#include "storage/memory/memory_store.h"
#include "storage/sqlite/sqlite_store.h"

namespace caas::storage {
namespace {

std::vector<CollectionSpec> Specs() {
  return {{"things", {{"email", true}, {"owner", false}}}, {"others", {}}};
}

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

template <class F>
class DocumentStoreTest : public ::testing::Test {
 protected:
  F factory_;
  std::unique_ptr<DocumentStore> store_ = factory_.Make();
};

using Factories = ::testing::Types<MemoryFactory, SqliteFactory>;
TYPED_TEST_SUITE(DocumentStoreTest, Factories);

Document Doc(std::string id, std::string body, std::map<std::string, std::string> keys = {}) {
  return Document{std::move(id), 0, std::move(body), std::move(keys)};
}

TYPED_TEST(DocumentStoreTest, InsertThenGet) {
  ASSERT_TRUE(this->store_->Insert("things", Doc("a", R"({"x":1})")).ok());
  auto d = this->store_->Get("things", "a");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->body, R"({"x":1})");
  EXPECT_EQ(d->version, 1);
  EXPECT_EQ(this->store_->Get("things", "b").error().code, ErrorCode::kNotFound);
  // Collections are separate namespaces.
  EXPECT_EQ(this->store_->Get("others", "a").error().code, ErrorCode::kNotFound);
}

TYPED_TEST(DocumentStoreTest, DuplicateIdIsRefusedAndChangesNothing) {
  ASSERT_TRUE(this->store_->Insert("things", Doc("a", "1")).ok());
  Status s = this->store_->Insert("things", Doc("a", "2", {{"email", "x@y.z"}}));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(s.error().field, "id");
  EXPECT_EQ(this->store_->Get("things", "a")->body, "1");
  EXPECT_FALSE(this->store_->FindUnique("things", "email", "x@y.z").ok());
}

TYPED_TEST(DocumentStoreTest, UniqueKeysAreUniqueAndAtomicWithTheDocument) {
  ASSERT_TRUE(this->store_->Insert("things", Doc("a", "1", {{"email", "e"}})).ok());
  Status s = this->store_->Insert("things", Doc("b", "2", {{"email", "e"}}));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(s.error().field, "email");
  EXPECT_EQ(this->store_->Get("things", "b").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(this->store_->FindUnique("things", "email", "e")->id, "a");
  // Non-unique keys may repeat.
  EXPECT_TRUE(this->store_->Insert("things", Doc("c", "3", {{"owner", "o"}})).ok());
  EXPECT_TRUE(this->store_->Insert("things", Doc("d", "4", {{"owner", "o"}})).ok());
}

TYPED_TEST(DocumentStoreTest, ReplaceIsConditionalOnTheVersion) {
  ASSERT_TRUE(this->store_->Insert("things", Doc("a", "1", {{"email", "e1"}})).ok());
  auto v2 = this->store_->Replace("things", Doc("a", "2", {{"email", "e2"}}), 1);
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(*v2, 2);
  auto stale = this->store_->Replace("things", Doc("a", "stale"), 1);
  EXPECT_EQ(stale.error().code, ErrorCode::kConflict);
  EXPECT_EQ(this->store_->Get("things", "a")->body, "2");
  EXPECT_EQ(this->store_->Replace("things", Doc("zz", "x"), 1).error().code, ErrorCode::kNotFound);
  // The old unique value was released, the new one taken.
  EXPECT_FALSE(this->store_->FindUnique("things", "email", "e1").ok());
  EXPECT_EQ(this->store_->FindUnique("things", "email", "e2")->id, "a");
  EXPECT_TRUE(this->store_->Insert("things", Doc("b", "b", {{"email", "e1"}})).ok());
  // Taking another document's unique value fails and changes nothing.
  auto clash = this->store_->Replace("things", Doc("a", "3", {{"email", "e1"}}), 2);
  EXPECT_EQ(clash.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(this->store_->Get("things", "a")->body, "2");
  EXPECT_EQ(this->store_->Get("things", "a")->version, 2);
  EXPECT_EQ(this->store_->FindUnique("things", "email", "e2")->id, "a");
}

TYPED_TEST(DocumentStoreTest, DeleteIsConditional) {
  ASSERT_TRUE(this->store_->Insert("things", Doc("a", "1", {{"email", "e"}})).ok());
  EXPECT_EQ(this->store_->Delete("things", "a", 7).error().code, ErrorCode::kConflict);
  EXPECT_TRUE(this->store_->Delete("things", "a", 1).ok());
  EXPECT_EQ(this->store_->Get("things", "a").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(this->store_->Delete("things", "a", 1).error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(this->store_->Insert("things", Doc("b", "1", {{"email", "e"}})).ok());
}

TYPED_TEST(DocumentStoreTest, ListPagesInIdOrderWithACursor) {
  for (const char* id : {"d", "b", "a", "e", "c"}) {
    ASSERT_TRUE(
        this->store_->Insert("things", Doc(id, id, {{"owner", id < std::string("c") ? "x" : "y"}}))
            .ok());
  }
  ListQuery q;
  q.limit = 2;
  Page p1 = this->store_->List("things", q);
  ASSERT_EQ(p1.items.size(), 2u);
  EXPECT_EQ(p1.items[0].id, "a");
  EXPECT_EQ(p1.items[1].id, "b");
  EXPECT_TRUE(p1.has_more);
  q.starting_after = "b";
  Page p2 = this->store_->List("things", q);
  EXPECT_EQ(p2.items[0].id, "c");
  q.starting_after = "d";
  Page p3 = this->store_->List("things", q);
  ASSERT_EQ(p3.items.size(), 1u);
  EXPECT_EQ(p3.items[0].id, "e");
  EXPECT_FALSE(p3.has_more);
  ListQuery f;
  f.where_key = "owner";
  f.where_value = "y";
  f.limit = 10;
  Page pf = this->store_->List("things", f);
  ASSERT_EQ(pf.items.size(), 3u);
  EXPECT_EQ(pf.items[0].id, "c");
  EXPECT_FALSE(pf.has_more);
}

TYPED_TEST(DocumentStoreTest, ConcurrentCompareAndSetLosesNoUpdate) {
  ASSERT_TRUE(this->store_->Insert("things", Doc("n", "0")).ok());
  constexpr int kThreads = 4, kEach = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this] {
      for (int i = 0; i < kEach; ++i) {
        while (true) {
          auto d = this->store_->Get("things", "n");
          const int n = std::stoi(d->body);
          if (this->store_->Replace("things", Doc("n", std::to_string(n + 1)), d->version).ok()) {
            break;
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  auto d = this->store_->Get("things", "n");
  EXPECT_EQ(d->body, std::to_string(kThreads * kEach));
  EXPECT_EQ(d->version, 1 + kThreads * kEach);
}

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
