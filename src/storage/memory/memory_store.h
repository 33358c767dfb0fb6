// An in-memory DocumentStore: for unit tests of domain code and as the
// reference model the conformance suite holds the real adapters to.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "storage/document_store.h"

namespace caas::storage {

class MemoryStore final : public DocumentStore {
 public:
  explicit MemoryStore(std::vector<CollectionSpec> specs);

  Status Insert(std::string_view collection, const Document& doc) override;
  Result<Document> Get(std::string_view collection, std::string_view id) override;
  Result<Document> FindUnique(std::string_view collection, std::string_view key,
                              std::string_view value) override;
  Result<int64_t> Replace(std::string_view collection, const Document& doc,
                          int64_t expected_version) override;
  Status Delete(std::string_view collection, std::string_view id,
                int64_t expected_version) override;
  Page List(std::string_view collection, const ListQuery& query) override;
  KeyedPage ListByKey(std::string_view collection, const KeyRangeQuery& query) override;
  void Ping() override {}
  std::vector<std::string> Migrate() override { return {}; }
  bool IsMigrated() override { return true; }
  int SchemaVersion() override { return 1; }  // nothing to migrate: always the latest
  std::vector<std::string> IntegrityCheck() override { return {}; }
  std::string Describe() const override { return "memory"; }

 private:
  struct Collection {
    CollectionSpec spec;
    std::map<std::string, Document, std::less<>> docs;
  };
  Collection& Find(std::string_view name);
  // The id of another document holding one of doc's unique key values.
  std::optional<std::string> TakenUniqueKey(const Collection& c, const Document& doc);

  std::mutex mu_;                                               // guards collections_
  std::map<std::string, Collection, std::less<>> collections_;  // guarded by mu_
};

}  // namespace caas::storage
