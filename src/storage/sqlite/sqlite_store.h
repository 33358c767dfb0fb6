// The SQLite adapter of the DocumentStore port: the embedded default.
//
// One file (WAL mode, synchronous=FULL: a write that returned is on disk and
// survives a crash of the process or the machine). One writer connection and
// a few reader connections: reads never wait for a write's fsync.
//
// Group commit: writes that arrive while a commit is on its way to disk wait,
// and the next commit takes all of them (up to kMaxBatch) in one transaction,
// each in its own savepoint, so concurrent writers share one fsync. A write
// is still all or nothing and returns only once its commit is durable; a
// write that fails (a taken key, a stale version) is rolled back to its
// savepoint and fails alone; a commit that fails fails every write in it.
//
// Schema changes are versioned migrations kept in sqlite_store.cc; Migrate()
// applies the missing ones in order, each in its own transaction.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "storage/document_store.h"

struct sqlite3;

namespace caas::storage {

struct MigrationInfo {
  int version;
  std::string name;
};

class SqliteStore final : public DocumentStore {
 public:
  // Opens (creating if needed) the database at `path`. Throws StorageError
  // when it cannot be opened. Does not migrate: call Migrate() (the server
  // does at start) or `caas-billing migrate`.
  SqliteStore(const std::string& path, std::vector<CollectionSpec> specs);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // Applies missing migrations; returns those it applied. Throws StorageError
  // if the database was written by a newer binary (unknown version).
  std::vector<MigrationInfo> ApplyMigrations();
  int SchemaVersion() override;
  static int LatestSchemaVersion();

  std::vector<std::string> Migrate() override;
  bool IsMigrated() override { return SchemaVersion() == LatestSchemaVersion(); }
  // What SQLite's integrity check finds wrong (empty: nothing).
  std::vector<std::string> IntegrityCheck() override;
  std::string Describe() const override { return "sqlite:" + path_; }

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
  // Throws StorageError when reads fail, or when the last write failed and
  // none has succeeded since (so readiness reflects a store that cannot be
  // written, e.g. locked by another process or out of disk).
  void Ping() override;

  // Commits so far (each one fsync of the log); at most one per write.
  uint64_t commits() const;
  // Writes so far (inserts, replaces, deletes that reached a commit).
  uint64_t writes() const;

  class Conn;  // one connection with its statement cache (sqlite_store.cc)

 private:
  bool IsUnique(std::string_view collection, const std::string& key) const;
  const CollectionSpec& Spec(std::string_view collection) const;
  // Why a conditional write changed no row: the document is missing (kNotFound)
  // or its version moved on (kConflict). Caller holds write_mu_.
  Error MissingOrStale(std::string_view collection, std::string_view id);
  // Writes doc's keys; returns the name of a unique key already taken.
  std::optional<std::string> WriteKeys(Conn& c, std::string_view collection, const Document& doc);

  Status DoInsert(std::string_view collection, const Document& doc);
  Result<int64_t> DoReplace(std::string_view collection, const Document& doc,
                            int64_t expected_version);
  Status DoDelete(std::string_view collection, std::string_view id, int64_t expected_version);
  // Runs a write, remembering whether the store can be written.
  template <class F>
  auto Writing(F&& f) -> decltype(f());
  // Runs `body` (one of the Do* writes) in the next group commit.
  template <class R, class F>
  R Write(F&& body);
  struct PendingWrite;
  // A reader connection, held until the lease goes out of scope.
  class ReadLease {
   public:
    ReadLease(std::unique_lock<std::mutex> lock, Conn* conn)
        : lock_(std::move(lock)), conn_(conn) {}
    Conn* operator->() const { return conn_; }
    Conn& operator*() const { return *conn_; }

   private:
    std::unique_lock<std::mutex> lock_;
    Conn* conn_;
  };
  ReadLease Read();
  void Submit(PendingWrite& w);
  void RunBatch(const std::vector<PendingWrite*>& batch);
  static constexpr size_t kMaxBatch = 256;

  std::string path_;
  std::vector<CollectionSpec> specs_;
  std::mutex health_mu_;                      // guards write_failure_
  std::optional<std::string> write_failure_;  // guarded by health_mu_
  mutable std::mutex queue_mu_;               // guards queue_, batches_, writes_
  std::condition_variable queue_cv_;          // a batch is done
  std::deque<PendingWrite*> queue_;           // writes waiting; the front one leads
  uint64_t batches_ = 0;
  uint64_t writes_ = 0;
  std::mutex write_mu_;           // guards writer_ (one writer connection)
  std::unique_ptr<Conn> writer_;  // guarded by write_mu_
  struct ReaderSlot {
    std::mutex mu;               // guards conn
    std::unique_ptr<Conn> conn;  // guarded by mu
  };
  static constexpr int kReaders = 4;
  std::vector<std::unique_ptr<ReaderSlot>> readers_;  // set up in the constructor
  std::atomic<size_t> next_reader_{0};
};

}  // namespace caas::storage
