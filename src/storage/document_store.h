// The storage port for control-plane aggregates (tenants, keys, idempotency
// records; later subscriptions and invoices).
//
// Shaped so that MongoDB can implement it without multi-document
// transactions: one aggregate is one document; every write touches exactly
// one document and is atomic; conditional writes compare a version number;
// uniqueness is enforced by unique keys (MongoDB: unique indexes). Nothing
// SQL leaks through: the body is opaque JSON text owned by the domain module.
//
// Thread safety: every implementation is safe to call from many threads.
// Failures of the infrastructure itself (disk full, database gone) throw
// StorageError; expected outcomes (not found, taken, stale version) are values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/time.h"

namespace caas::storage {

class StorageError : public std::runtime_error {
 public:
  StorageError(const std::string& what, bool retryable)
      : std::runtime_error(what), retryable_(retryable) {}
  // True when the same call may succeed later (busy, timeout, connection lost).
  bool retryable() const { return retryable_; }

 private:
  bool retryable_;
};

// A stored document that its module cannot read: damaged data, not a retry
// away. Names the collection and id; the request that met it is refused
// (500) and the damage logged.
class CorruptDocument : public StorageError {
 public:
  CorruptDocument(std::string_view collection, std::string_view id, const std::string& why)
      : StorageError("the stored document " + std::string(collection) + "/" + std::string(id) +
                         " is damaged (" + why + ")",
                     false) {}
};

struct KeySpec {
  std::string name;  // e.g. "key_hash"
  bool unique;
};

// Collections are declared up front: the adapter creates their indexes.
struct CollectionSpec {
  std::string name;
  std::vector<KeySpec> keys;
};

struct Document {
  std::string id;
  int64_t version = 0;  // 1 after Insert, +1 on every Replace
  std::string body;     // JSON text
  // Values of the collection's declared keys for this document; a key that is
  // absent here is not indexed for it. Write-side only: reads leave it empty.
  std::map<std::string, std::string> keys;
};

struct ListQuery {
  // Only documents whose key `where_key` equals `where_value` (if set).
  std::optional<std::string> where_key;
  std::string where_value;
  std::string starting_after;  // exclusive id cursor; empty = from the start
  int limit = 10;              // 1..1000
};

struct Page {
  std::vector<Document> items;  // ascending by id
  bool has_more = false;
};

// Documents ordered by the value of one declared key (then by id), for work
// found by its due time: `due_at` values are written sortable (SortableTime).
struct KeyRangeQuery {
  std::string key;                     // a declared key
  std::optional<std::string> at_most;  // only values <= at_most
  std::string after_value;             // exclusive cursor: (value, id) > (after_value, after_id)
  std::string after_id;
  int limit = 100;  // 1..1000
};

struct KeyedDocument {
  Document doc;
  std::string value;  // the key's value
};

struct KeyedPage {
  std::vector<KeyedDocument> items;  // ascending by (value, id)
  bool has_more = false;
};

// A time as key text that sorts in time order: 20 digits of microseconds
// since the epoch.
std::string SortableTime(int64_t micros_since_epoch);
// The inverse; nullopt for anything else.
std::optional<int64_t> ParseSortableTime(std::string_view text);

class DocumentStore {
 public:
  virtual ~DocumentStore() = default;

  // Stores a new document with version 1. kAlreadyExists when the id or a
  // unique key value is taken (Error::field names which: "id" or the key);
  // nothing is written then.
  virtual Status Insert(std::string_view collection, const Document& doc) = 0;

  // kNotFound when absent.
  virtual Result<Document> Get(std::string_view collection, std::string_view id) = 0;

  // The document whose unique key `key` equals `value`; kNotFound when none.
  virtual Result<Document> FindUnique(std::string_view collection, std::string_view key,
                                      std::string_view value) = 0;

  // Replaces body and keys if the stored version equals `expected_version`
  // and returns the new version (expected_version + 1). kNotFound when absent,
  // kConflict when the version moved on, kAlreadyExists when a new unique key
  // value is taken by another document. Nothing is written on failure.
  virtual Result<int64_t> Replace(std::string_view collection, const Document& doc,
                                  int64_t expected_version) = 0;

  // Removes the document if its version equals `expected_version`.
  virtual Status Delete(std::string_view collection, std::string_view id,
                        int64_t expected_version) = 0;

  virtual Page List(std::string_view collection, const ListQuery& query) = 0;

  // Documents that have the declared key `query.key`, ascending by its value
  // then by id. Answered from an index: its cost does not grow with the
  // documents past `at_most`.
  virtual KeyedPage ListByKey(std::string_view collection, const KeyRangeQuery& query) = 0;

  // Throws StorageError when the store cannot serve requests.
  virtual void Ping() = 0;

  // Schema: creates what the declared collections need (tables, indexes) and
  // applies missing migrations; returns what it did, in words. Throws
  // StorageError when the store was written by a newer version.
  virtual std::vector<std::string> Migrate() = 0;
  // True when Migrate() has nothing left to do.
  virtual bool IsMigrated() = 0;
  // The number of the last migration applied (0: none).
  virtual int SchemaVersion() = 0;
  // What the store's own integrity check finds wrong (empty: nothing).
  virtual std::vector<std::string> IntegrityCheck() = 0;
  // A word for logs and `doctor`: "sqlite:/path/billing.db".
  virtual std::string Describe() const = 0;
};

// Helpers for due work on a declared key holding SortableTime values (the
// scheduler's sources): the earliest value, and the documents due by `until`.
std::optional<Instant> EarliestTime(DocumentStore& store, std::string_view collection,
                                    const std::string& key);
KeyedPage DueBy(DocumentStore& store, std::string_view collection, const std::string& key,
                Instant until, int limit);
// The ids of those documents, earliest first.
std::vector<std::string> DueIds(DocumentStore& store, std::string_view collection,
                                const std::string& key, Instant until, size_t limit);

}  // namespace caas::storage
