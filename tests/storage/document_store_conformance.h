// The one conformance suite of the DocumentStore port. Every adapter
// instantiates it with a factory, in its own test binary:
//
//   struct MyFactory { std::unique_ptr<DocumentStore> Make(); };  // a fresh, migrated store
//   INSTANTIATE_TYPED_TEST_SUITE_P(My, DocumentStoreConformance, ::testing::Types<MyFactory>);
//
// The store must declare conformance::Specs().
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "storage/document_store.h"

namespace caas::storage::conformance {

inline std::vector<CollectionSpec> Specs() {
  return {{"things", {{"email", true}, {"owner", false}, {"due_at", false}}}, {"others", {}}};
}

template <class F>
class DocumentStoreConformance : public ::testing::Test {
 protected:
  F factory_;
  std::unique_ptr<DocumentStore> store_ = factory_.Make();
};

TYPED_TEST_SUITE_P(DocumentStoreConformance);

inline Document Doc(std::string id, std::string body,
                    std::map<std::string, std::string> keys = {}) {
  return Document{std::move(id), 0, std::move(body), std::move(keys)};
}

TYPED_TEST_P(DocumentStoreConformance, AMigratedStoreSaysSoAndMigratingAgainDoesNothing) {
  EXPECT_TRUE(this->store_->IsMigrated());
  EXPECT_GE(this->store_->SchemaVersion(), 1);
  const int version = this->store_->SchemaVersion();
  EXPECT_TRUE(this->store_->Migrate().empty());
  EXPECT_EQ(this->store_->SchemaVersion(), version);
  EXPECT_TRUE(this->store_->IntegrityCheck().empty());
  EXPECT_FALSE(this->store_->Describe().empty());
}

TYPED_TEST_P(DocumentStoreConformance, InsertThenGet) {
  ASSERT_TRUE(this->store_->Insert("things", Doc("a", R"({"x":1})")).ok());
  auto d = this->store_->Get("things", "a");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->body, R"({"x":1})");
  EXPECT_EQ(d->version, 1);
  EXPECT_EQ(this->store_->Get("things", "b").error().code, ErrorCode::kNotFound);
  // Collections are separate namespaces.
  EXPECT_EQ(this->store_->Get("others", "a").error().code, ErrorCode::kNotFound);
}

TYPED_TEST_P(DocumentStoreConformance, DuplicateIdIsRefusedAndChangesNothing) {
  ASSERT_TRUE(this->store_->Insert("things", Doc("a", "1")).ok());
  Status s = this->store_->Insert("things", Doc("a", "2", {{"email", "x@y.z"}}));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(s.error().field, "id");
  EXPECT_EQ(this->store_->Get("things", "a")->body, "1");
  EXPECT_FALSE(this->store_->FindUnique("things", "email", "x@y.z").ok());
}

TYPED_TEST_P(DocumentStoreConformance, UniqueKeysAreUniqueAndAtomicWithTheDocument) {
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

TYPED_TEST_P(DocumentStoreConformance, ReplaceIsConditionalOnTheVersion) {
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

// A replace that keeps some keys and changes others: the kept ones still
// find the document (a unique one is not "taken" by the document itself),
// the changed ones follow.
TYPED_TEST_P(DocumentStoreConformance, ReplaceKeepsUnchangedKeysAndMovesChangedOnes) {
  ASSERT_TRUE(
      this->store_->Insert("things", Doc("a", "1", {{"email", "e"}, {"due_at", "0100"}})).ok());
  ASSERT_TRUE(
      this->store_->Replace("things", Doc("a", "2", {{"email", "e"}, {"due_at", "0300"}}), 1).ok());
  EXPECT_EQ(this->store_->FindUnique("things", "email", "e")->body, "2");
  KeyRangeQuery q;
  q.key = "due_at";
  q.at_most = "0200";
  EXPECT_TRUE(this->store_->ListByKey("things", q).items.empty());
  q.at_most = "0300";
  ASSERT_EQ(this->store_->ListByKey("things", q).items.size(), 1u);
  // The same keys again, then the unique one dropped and the other kept.
  ASSERT_TRUE(
      this->store_->Replace("things", Doc("a", "3", {{"email", "e"}, {"due_at", "0300"}}), 2).ok());
  ASSERT_TRUE(this->store_->Replace("things", Doc("a", "4", {{"due_at", "0300"}}), 3).ok());
  EXPECT_FALSE(this->store_->FindUnique("things", "email", "e").ok());
  auto due = this->store_->ListByKey("things", q);
  ASSERT_EQ(due.items.size(), 1u);
  EXPECT_EQ(due.items[0].doc.body, "4");
  EXPECT_TRUE(this->store_->Insert("things", Doc("b", "b", {{"email", "e"}})).ok());
}

TYPED_TEST_P(DocumentStoreConformance, DeleteIsConditional) {
  ASSERT_TRUE(this->store_->Insert("things", Doc("a", "1", {{"email", "e"}})).ok());
  EXPECT_EQ(this->store_->Delete("things", "a", 7).error().code, ErrorCode::kConflict);
  EXPECT_TRUE(this->store_->Delete("things", "a", 1).ok());
  EXPECT_EQ(this->store_->Get("things", "a").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(this->store_->Delete("things", "a", 1).error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(this->store_->Insert("things", Doc("b", "1", {{"email", "e"}})).ok());
}

TYPED_TEST_P(DocumentStoreConformance, ListPagesInIdOrderWithACursor) {
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

TYPED_TEST_P(DocumentStoreConformance, ConcurrentCompareAndSetLosesNoUpdate) {
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

TYPED_TEST_P(DocumentStoreConformance, ListByKeyIsOrderedByValueThenIdWithABoundAndACursor) {
  // due_at values out of insertion order, two equal, one document without.
  const std::vector<std::pair<std::string, std::string>> docs = {
      {"e", "0300"}, {"a", "0100"}, {"d", "0200"}, {"c", "0200"}, {"b", "0400"}};
  for (const auto& [id, due] : docs) {
    ASSERT_TRUE(this->store_->Insert("things", Doc(id, "x" + id, {{"due_at", due}})).ok());
  }
  ASSERT_TRUE(this->store_->Insert("things", Doc("z", "no key")).ok());
  KeyRangeQuery q;
  q.key = "due_at";
  q.limit = 10;
  auto all = this->store_->ListByKey("things", q);
  std::vector<std::string> ids, values;
  for (const auto& k : all.items) {
    ids.push_back(k.doc.id);
    values.push_back(k.value);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"a", "c", "d", "e", "b"}));
  EXPECT_EQ(values, (std::vector<std::string>{"0100", "0200", "0200", "0300", "0400"}));
  EXPECT_EQ(all.items[1].doc.body, "xc");
  EXPECT_EQ(all.items[1].doc.version, 1);
  EXPECT_FALSE(all.has_more);
  q.at_most = "0200";  // due by then
  auto due = this->store_->ListByKey("things", q);
  ASSERT_EQ(due.items.size(), 3u);
  EXPECT_EQ(due.items.back().doc.id, "d");
  q.at_most.reset();
  q.limit = 2;
  auto p1 = this->store_->ListByKey("things", q);
  ASSERT_EQ(p1.items.size(), 2u);
  EXPECT_TRUE(p1.has_more);
  q.after_value = p1.items.back().value;  // ("0200", "c")
  q.after_id = p1.items.back().doc.id;
  auto p2 = this->store_->ListByKey("things", q);
  ASSERT_EQ(p2.items.size(), 2u);
  EXPECT_EQ(p2.items[0].doc.id, "d");
  EXPECT_EQ(p2.items[1].doc.id, "e");
}

TYPED_TEST_P(DocumentStoreConformance, ListByKeyFollowsReplacesAndDeletes) {
  ASSERT_TRUE(this->store_->Insert("things", Doc("a", "1", {{"due_at", "0100"}})).ok());
  ASSERT_TRUE(this->store_->Insert("things", Doc("b", "1", {{"due_at", "0200"}})).ok());
  KeyRangeQuery q;
  q.key = "due_at";
  q.at_most = "0150";
  ASSERT_EQ(this->store_->ListByKey("things", q).items.size(), 1u);
  // Moved later: no longer due. The other moved earlier: due.
  ASSERT_TRUE(this->store_->Replace("things", Doc("a", "2", {{"due_at", "0900"}}), 1).ok());
  ASSERT_TRUE(this->store_->Replace("things", Doc("b", "2", {{"due_at", "0050"}}), 1).ok());
  auto due = this->store_->ListByKey("things", q);
  ASSERT_EQ(due.items.size(), 1u);
  EXPECT_EQ(due.items[0].doc.id, "b");
  EXPECT_EQ(due.items[0].doc.body, "2");
  // Without the key: out of the index. Deleted: gone.
  ASSERT_TRUE(this->store_->Replace("things", Doc("b", "3"), 2).ok());
  EXPECT_TRUE(this->store_->ListByKey("things", q).items.empty());
  ASSERT_TRUE(this->store_->Delete("things", "a", 2).ok());
  q.at_most.reset();
  EXPECT_TRUE(this->store_->ListByKey("things", q).items.empty());
  // Sortable times sort as times.
  EXPECT_LT(SortableTime(999), SortableTime(1000));
  EXPECT_EQ(ParseSortableTime(SortableTime(1'764'547'200'000'000)), 1'764'547'200'000'000);
  EXPECT_FALSE(ParseSortableTime("12").has_value());
}

REGISTER_TYPED_TEST_SUITE_P(
    DocumentStoreConformance, AMigratedStoreSaysSoAndMigratingAgainDoesNothing, InsertThenGet,
    DuplicateIdIsRefusedAndChangesNothing, UniqueKeysAreUniqueAndAtomicWithTheDocument,
    ReplaceKeepsUnchangedKeysAndMovesChangedOnes, ReplaceIsConditionalOnTheVersion,
    DeleteIsConditional, ListPagesInIdOrderWithACursor, ConcurrentCompareAndSetLosesNoUpdate,
    ListByKeyIsOrderedByValueThenIdWithABoundAndACursor, ListByKeyFollowsReplacesAndDeletes);

}  // namespace caas::storage::conformance
