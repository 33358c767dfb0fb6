// A DocumentStore that forwards to another and calls a hook before every
// write (insert, replace, delete): tests use it to fail a write or to kill
// the process at an exact step.
#pragma once

#include <functional>
#include <string_view>

#include "storage/document_store.h"

namespace caas::testing {

class FaultStore final : public storage::DocumentStore {
 public:
  // `before(op, collection, id)`: op is "insert", "replace" or "delete". A
  // returned error is the write's answer (nothing is written).
  using Hook =
      std::function<Status(std::string_view op, std::string_view collection, std::string_view id)>;
  FaultStore(storage::DocumentStore& inner, Hook before)
      : inner_(inner), before_(std::move(before)) {}

  Status Insert(std::string_view c, const storage::Document& d) override {
    if (Status s = before_("insert", c, d.id); !s) return s;
    return inner_.Insert(c, d);
  }
  Result<storage::Document> Get(std::string_view c, std::string_view id) override {
    return inner_.Get(c, id);
  }
  Result<storage::Document> FindUnique(std::string_view c, std::string_view k,
                                       std::string_view v) override {
    return inner_.FindUnique(c, k, v);
  }
  Result<int64_t> Replace(std::string_view c, const storage::Document& d, int64_t v) override {
    if (Status s = before_("replace", c, d.id); !s) return s.error();
    return inner_.Replace(c, d, v);
  }
  Status Delete(std::string_view c, std::string_view id, int64_t v) override {
    if (Status s = before_("delete", c, id); !s) return s;
    return inner_.Delete(c, id, v);
  }
  storage::Page List(std::string_view c, const storage::ListQuery& q) override {
    return inner_.List(c, q);
  }
  storage::KeyedPage ListByKey(std::string_view c, const storage::KeyRangeQuery& q) override {
    return inner_.ListByKey(c, q);
  }
  void Ping() override { inner_.Ping(); }
  std::vector<std::string> Migrate() override { return inner_.Migrate(); }
  bool IsMigrated() override { return inner_.IsMigrated(); }
  int SchemaVersion() override { return inner_.SchemaVersion(); }
  std::vector<std::string> IntegrityCheck() override { return inner_.IntegrityCheck(); }
  std::string Describe() const override { return "fault:" + inner_.Describe(); }

 private:
  storage::DocumentStore& inner_;
  Hook before_;
};

}  // namespace caas::testing
