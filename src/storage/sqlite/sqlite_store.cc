#include "storage/sqlite/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <functional>
#include <map>
#include <utility>

namespace caas::storage {
namespace {

struct Migration {
  int version;
  const char* name;
  const char* sql;
};

// Append only. Never edit a migration that has shipped.
constexpr Migration kMigrations[] = {
    {1, "documents and keys",
     "CREATE TABLE documents ("
     "  collection TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,"
     "  body TEXT NOT NULL, PRIMARY KEY (collection, id)) WITHOUT ROWID;"
     "CREATE TABLE document_keys ("
     "  collection TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, id TEXT NOT NULL,"
     "  is_unique INTEGER NOT NULL, PRIMARY KEY (collection, name, value, id)) WITHOUT ROWID;"
     "CREATE UNIQUE INDEX document_keys_unique ON document_keys (collection, name, value)"
     "  WHERE is_unique = 1;"
     "CREATE INDEX document_keys_by_id ON document_keys (collection, id);"},
};

}  // namespace

// A cached statement in use: reset when it goes out of scope, so that no
// statement is left active (an active statement holds a read snapshot, and on
// the writer connection that blocks every other process's writes).
class Stmt {
 public:
  Stmt() = default;
  explicit Stmt(sqlite3_stmt* s) : s_(s) {}
  Stmt(Stmt&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stmt& operator=(Stmt&& o) noexcept {
    if (s_) sqlite3_reset(s_);
    s_ = std::exchange(o.s_, nullptr);
    return *this;
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() {
    if (s_) sqlite3_reset(s_);
  }
  operator sqlite3_stmt*() const { return s_; }  // NOLINT(google-explicit-constructor)

 private:
  sqlite3_stmt* s_ = nullptr;
};

// One connection and its prepared statements.
class SqliteStore::Conn {
 public:
  explicit Conn(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      db_ = nullptr;
      throw StorageError("cannot open " + path + ": " + msg, false);
    }
    sqlite3_busy_timeout(db_, 10000);
    try {
      Exec("PRAGMA journal_mode=WAL");
      Exec("PRAGMA synchronous=FULL");
      Exec("PRAGMA foreign_keys=ON");
    } catch (...) {  // a damaged file: the destructor will not run
      sqlite3_close(db_);
      throw;
    }
  }
  ~Conn() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close(db_);
  }

  void Exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      throw StorageError("sqlite: " + msg, IsRetryable());
    }
  }

  // Runs one statement without parameters from the cache (BEGIN, SAVEPOINT,
  // COMMIT...): sqlite3_exec would compile it again on every call.
  void Run(const char* sql) {
    auto s = Prepare(sql);
    Step(s);
  }

  // A prepared statement, reset and with bindings cleared, owned by the cache.
  Stmt Prepare(const char* sql) {
    auto it =
        std::find_if(cache_.begin(), cache_.end(), [sql](const auto& e) { return e.first == sql; });
    sqlite3_stmt* stmt;
    if (it != cache_.end()) {
      stmt = it->second;
      sqlite3_reset(stmt);
      sqlite3_clear_bindings(stmt);
    } else {
      if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) !=
          SQLITE_OK) {
        throw StorageError(std::string("sqlite prepare: ") + sqlite3_errmsg(db_), false);
      }
      cache_.emplace_back(sql, stmt);
    }
    return Stmt(stmt);
  }

  void Bind(sqlite3_stmt* s, int i, std::string_view v) {
    sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void Bind(sqlite3_stmt* s, int i, int64_t v) { sqlite3_bind_int64(s, i, v); }

  // Steps a statement; returns SQLITE_ROW, SQLITE_DONE or SQLITE_CONSTRAINT.
  int Step(sqlite3_stmt* s) {
    const int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) return rc;
    if ((rc & 0xFF) == SQLITE_CONSTRAINT) {
      sqlite3_reset(s);
      return SQLITE_CONSTRAINT;
    }
    std::string msg = sqlite3_errmsg(db_);
    sqlite3_reset(s);
    throw StorageError("sqlite: " + msg, IsRetryable());
  }

  int Changes() { return sqlite3_changes(db_); }
  bool IsRetryable() {
    const int rc = sqlite3_errcode(db_) & 0xFF;
    return rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
  }

  static std::string Text(sqlite3_stmt* s, int col) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, col));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s, col))) : std::string();
  }

 private:
  sqlite3* db_ = nullptr;
  std::vector<std::pair<const char*, sqlite3_stmt*>> cache_;
};

namespace {

// Rolls back unless committed; keeps a failed write from leaving half a change.
class Transaction {
 public:
  explicit Transaction(SqliteStore::Conn& c) : c_(c) { c_.Exec("BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (!done_) {
      try {
        c_.Exec("ROLLBACK");
      } catch (const StorageError&) {
        // The connection is unusable; the next call reports it.
      }
    }
  }
  void Commit() {
    c_.Exec("COMMIT");
    done_ = true;
  }

 private:
  SqliteStore::Conn& c_;
  bool done_ = false;
};

}  // namespace

SqliteStore::SqliteStore(const std::string& path, std::vector<CollectionSpec> specs)
    : path_(path), specs_(std::move(specs)), writer_(std::make_unique<Conn>(path)) {
  for (int i = 0; i < kReaders; ++i) {
    readers_.push_back(std::make_unique<ReaderSlot>());
    readers_.back()->conn = std::make_unique<Conn>(path);
  }
  std::lock_guard lock(write_mu_);
  writer_->Exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
      "name TEXT NOT NULL, applied_at TEXT NOT NULL)");
}

SqliteStore::~SqliteStore() = default;

SqliteStore::ReadLease SqliteStore::Read() {
  for (auto& slot : readers_) {
    std::unique_lock lock(slot->mu, std::try_to_lock);
    if (lock.owns_lock()) return ReadLease(std::move(lock), slot->conn.get());
  }
  // All busy: wait for one, spreading the waiters.
  auto& slot = *readers_[next_reader_.fetch_add(1, std::memory_order_relaxed) % readers_.size()];
  return ReadLease(std::unique_lock(slot.mu), slot.conn.get());
}

int SqliteStore::LatestSchemaVersion() { return std::end(kMigrations)[-1].version; }

int SqliteStore::SchemaVersion() {
  std::lock_guard lock(write_mu_);
  auto s = writer_->Prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  writer_->Step(s);
  return sqlite3_column_int(s, 0);
}

std::vector<std::string> SqliteStore::IntegrityCheck() {
  auto reader = Read();
  auto s = reader->Prepare("PRAGMA integrity_check");
  std::vector<std::string> out;
  while (reader->Step(s) == SQLITE_ROW) {
    std::string line = Conn::Text(s, 0);
    if (line != "ok") out.push_back(std::move(line));
  }
  return out;
}

std::vector<std::string> SqliteStore::Migrate() {
  std::vector<std::string> out;
  for (const auto& m : ApplyMigrations()) {
    out.push_back("migration " + std::to_string(m.version) + ": " + m.name);
  }
  return out;
}

std::vector<MigrationInfo> SqliteStore::ApplyMigrations() {
  const int current = SchemaVersion();
  if (current > LatestSchemaVersion()) {
    throw StorageError("the database has schema version " + std::to_string(current) +
                           " but this binary knows only up to " +
                           std::to_string(LatestSchemaVersion()) + ": upgrade caas-billing",
                       false);
  }
  std::vector<MigrationInfo> applied;
  std::lock_guard lock(write_mu_);
  for (const auto& m : kMigrations) {
    if (m.version <= current) continue;
    Transaction tx(*writer_);
    writer_->Exec(m.sql);
    auto s = writer_->Prepare(
        "INSERT INTO schema_migrations (version, name, applied_at) "
        "VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%SZ','now'))");
    writer_->Bind(s, 1, static_cast<int64_t>(m.version));
    writer_->Bind(s, 2, std::string_view(m.name));
    writer_->Step(s);
    tx.Commit();
    applied.push_back({m.version, m.name});
  }
  return applied;
}

const CollectionSpec& SqliteStore::Spec(std::string_view collection) const {
  for (const auto& s : specs_) {
    if (s.name == collection) return s;
  }
  throw StorageError("undeclared collection " + std::string(collection), false);
}

bool SqliteStore::IsUnique(std::string_view collection, const std::string& key) const {
  for (const auto& k : Spec(collection).keys) {
    if (k.name == key) return k.unique;
  }
  throw StorageError("undeclared key " + key + " in " + std::string(collection), false);
}

Error SqliteStore::MissingOrStale(std::string_view collection, std::string_view id) {
  auto q = writer_->Prepare("SELECT 1 FROM documents WHERE collection=? AND id=?");
  writer_->Bind(q, 1, collection);
  writer_->Bind(q, 2, id);
  const bool exists = writer_->Step(q) == SQLITE_ROW;
  sqlite3_reset(q);
  if (!exists) return Error::NotFound("no such document");
  return Error::Make(ErrorCode::kConflict, "the document was changed concurrently");
}

std::optional<std::string> SqliteStore::WriteKeys(Conn& c, std::string_view collection,
                                                  const Document& doc) {
  for (const auto& [name, value] : doc.keys) {
    auto s = c.Prepare(
        "INSERT INTO document_keys (collection, name, value, id, is_unique) VALUES (?,?,?,?,?)");
    c.Bind(s, 1, collection);
    c.Bind(s, 2, name);
    c.Bind(s, 3, value);
    c.Bind(s, 4, doc.id);
    c.Bind(s, 5, static_cast<int64_t>(IsUnique(collection, name) ? 1 : 0));
    if (c.Step(s) == SQLITE_CONSTRAINT) return name;
  }
  return std::nullopt;
}

template <class F>
auto SqliteStore::Writing(F&& f) -> decltype(f()) {
  try {
    auto r = f();
    std::lock_guard lock(health_mu_);
    write_failure_.reset();
    return r;
  } catch (const StorageError& e) {
    std::lock_guard lock(health_mu_);
    write_failure_ = e.what();
    throw;
  }
}

// One write waiting for its batch. `run` performs it on the writer
// connection inside the batch's transaction and says whether it succeeded; a
// failed write (a taken key, a stale version) is rolled back to its savepoint
// and does not disturb the others.
struct SqliteStore::PendingWrite {
  std::function<bool()> run;
  std::exception_ptr error;  // the write did not happen: rethrown to its caller
  bool done = false;
};

template <class R, class F>
R SqliteStore::Write(F&& body) {
  std::optional<R> result;
  PendingWrite w;
  w.run = [&] {
    result.emplace(body());
    return static_cast<bool>(*result);
  };
  Submit(w);
  return std::move(*result);
}

void SqliteStore::Submit(PendingWrite& w) {
  std::unique_lock lock(queue_mu_);
  queue_.push_back(&w);
  queue_cv_.wait(lock, [&] { return w.done || queue_.front() == &w; });
  if (!w.done) {
    // The leader: commit everything queued so far (up to a bound) at once.
    const size_t n = std::min(queue_.size(), kMaxBatch);
    std::vector<PendingWrite*> batch(queue_.begin(), queue_.begin() + static_cast<long>(n));
    lock.unlock();
    RunBatch(batch);
    lock.lock();
    for (size_t i = 0; i < n; ++i) {
      queue_.front()->done = true;
      queue_.pop_front();
    }
    ++batches_;
    writes_ += n;
    queue_cv_.notify_all();
  }
  if (w.error) std::rethrow_exception(w.error);
}

void SqliteStore::RunBatch(const std::vector<PendingWrite*>& batch) {
  std::lock_guard lock(write_mu_);
  auto fail_all = [&](std::exception_ptr e) {
    for (PendingWrite* p : batch) p->error = e;
  };
  try {
    writer_->Run("BEGIN IMMEDIATE");
  } catch (...) {
    fail_all(std::current_exception());
    return;
  }
  try {
    for (PendingWrite* p : batch) {
      writer_->Run("SAVEPOINT w");
      bool ok = false;
      try {
        ok = p->run();
      } catch (...) {  // StorageError, or anything else: it fails this write only
        p->error = std::current_exception();
      }
      if (!ok) writer_->Run("ROLLBACK TO w");
      writer_->Run("RELEASE w");
    }
    writer_->Run("COMMIT");
  } catch (...) {
    // The transaction cannot be finished (the disk is full, the connection
    // broke): nothing of the batch happened, and every caller is told so.
    fail_all(std::current_exception());
    try {
      writer_->Exec("ROLLBACK");
    } catch (const StorageError&) {
      // The connection is unusable; the next call reports it.
    }
  }
}

uint64_t SqliteStore::commits() const {
  std::lock_guard lock(queue_mu_);
  return batches_;
}

uint64_t SqliteStore::writes() const {
  std::lock_guard lock(queue_mu_);
  return writes_;
}

Status SqliteStore::Insert(std::string_view collection, const Document& doc) {
  Spec(collection);
  return Writing([&] { return Write<Status>([&] { return DoInsert(collection, doc); }); });
}

Status SqliteStore::DoInsert(std::string_view collection, const Document& doc) {
  auto s =
      writer_->Prepare("INSERT INTO documents (collection, id, version, body) VALUES (?, ?, 1, ?)");
  writer_->Bind(s, 1, collection);
  writer_->Bind(s, 2, doc.id);
  writer_->Bind(s, 3, doc.body);
  if (writer_->Step(s) == SQLITE_CONSTRAINT) {
    return Error{ErrorCode::kAlreadyExists, "id is taken", "id"};
  }
  if (auto key = WriteKeys(*writer_, collection, doc)) {
    return Error{ErrorCode::kAlreadyExists, *key + " is taken", *key};
  }
  return Status::Ok();
}

Result<Document> SqliteStore::Get(std::string_view collection, std::string_view id) {
  Spec(collection);
  auto reader = Read();
  auto s = reader->Prepare("SELECT version, body FROM documents WHERE collection=? AND id=?");
  reader->Bind(s, 1, collection);
  reader->Bind(s, 2, id);
  if (reader->Step(s) != SQLITE_ROW) return Error::NotFound("no such document");
  Document d{std::string(id), sqlite3_column_int64(s, 0), Conn::Text(s, 1), {}};
  sqlite3_reset(s);
  return d;
}

Result<Document> SqliteStore::FindUnique(std::string_view collection, std::string_view key,
                                         std::string_view value) {
  if (!IsUnique(collection, std::string(key))) {
    throw StorageError("FindUnique on a non-unique key " + std::string(key), false);
  }
  auto reader = Read();
  auto s = reader->Prepare(
      "SELECT d.id, d.version, d.body FROM document_keys k JOIN documents d "
      "ON d.collection = k.collection AND d.id = k.id "
      "WHERE k.collection=? AND k.name=? AND k.value=? AND k.is_unique=1");
  reader->Bind(s, 1, collection);
  reader->Bind(s, 2, key);
  reader->Bind(s, 3, value);
  if (reader->Step(s) != SQLITE_ROW) return Error::NotFound("no such document");
  Document d{Conn::Text(s, 0), sqlite3_column_int64(s, 1), Conn::Text(s, 2), {}};
  sqlite3_reset(s);
  return d;
}

Result<int64_t> SqliteStore::Replace(std::string_view collection, const Document& doc,
                                     int64_t expected_version) {
  Spec(collection);
  return Writing([&] {
    return Write<Result<int64_t>>([&] { return DoReplace(collection, doc, expected_version); });
  });
}

Result<int64_t> SqliteStore::DoReplace(std::string_view collection, const Document& doc,
                                       int64_t expected_version) {
  auto s = writer_->Prepare(
      "UPDATE documents SET body=?, version=version+1 "
      "WHERE collection=? AND id=? AND version=?");
  writer_->Bind(s, 1, doc.body);
  writer_->Bind(s, 2, collection);
  writer_->Bind(s, 3, doc.id);
  writer_->Bind(s, 4, expected_version);
  writer_->Step(s);
  if (writer_->Changes() == 0) return MissingOrStale(collection, doc.id);
  // Only the keys that change are touched: an index entry left as it was
  // dirties no page, and every dirty page is written to the WAL at commit.
  std::map<std::string, std::string> stored;
  {
    auto q = writer_->Prepare("SELECT name, value FROM document_keys WHERE collection=? AND id=?");
    writer_->Bind(q, 1, collection);
    writer_->Bind(q, 2, doc.id);
    while (writer_->Step(q) == SQLITE_ROW) stored.emplace(Conn::Text(q, 0), Conn::Text(q, 1));
  }
  for (const auto& [name, value] : stored) {
    auto it = doc.keys.find(name);
    if (it != doc.keys.end() && it->second == value) continue;
    auto del = writer_->Prepare(
        "DELETE FROM document_keys WHERE collection=? AND name=? AND value=? AND id=?");
    writer_->Bind(del, 1, collection);
    writer_->Bind(del, 2, name);
    writer_->Bind(del, 3, value);
    writer_->Bind(del, 4, doc.id);
    writer_->Step(del);
  }
  Document changed{doc.id, 0, {}, {}};
  for (const auto& [name, value] : doc.keys) {
    auto it = stored.find(name);
    if (it == stored.end() || it->second != value) changed.keys.emplace(name, value);
  }
  if (auto key = WriteKeys(*writer_, collection, changed)) {
    return Error{ErrorCode::kAlreadyExists, *key + " is taken", *key};
  }
  return expected_version + 1;
}

Status SqliteStore::Delete(std::string_view collection, std::string_view id,
                           int64_t expected_version) {
  Spec(collection);
  return Writing(
      [&] { return Write<Status>([&] { return DoDelete(collection, id, expected_version); }); });
}

Status SqliteStore::DoDelete(std::string_view collection, std::string_view id,
                             int64_t expected_version) {
  auto s = writer_->Prepare("DELETE FROM documents WHERE collection=? AND id=? AND version=?");
  writer_->Bind(s, 1, collection);
  writer_->Bind(s, 2, id);
  writer_->Bind(s, 3, expected_version);
  writer_->Step(s);
  if (writer_->Changes() == 0) return MissingOrStale(collection, id);
  auto del = writer_->Prepare("DELETE FROM document_keys WHERE collection=? AND id=?");
  writer_->Bind(del, 1, collection);
  writer_->Bind(del, 2, id);
  writer_->Step(del);
  return Status::Ok();
}

Page SqliteStore::List(std::string_view collection, const ListQuery& query) {
  Spec(collection);
  const int limit = std::clamp(query.limit, 1, 1000);
  auto reader = Read();
  Stmt s;
  if (query.where_key) {
    s = reader->Prepare(
        "SELECT d.id, d.version, d.body FROM document_keys k JOIN documents d "
        "ON d.collection = k.collection AND d.id = k.id "
        "WHERE k.collection=? AND k.name=? AND k.value=? AND k.id>? ORDER BY k.id LIMIT ?");
    reader->Bind(s, 1, collection);
    reader->Bind(s, 2, *query.where_key);
    reader->Bind(s, 3, query.where_value);
    reader->Bind(s, 4, query.starting_after);
    reader->Bind(s, 5, static_cast<int64_t>(limit + 1));
  } else {
    s = reader->Prepare(
        "SELECT id, version, body FROM documents WHERE collection=? AND id>? "
        "ORDER BY id LIMIT ?");
    reader->Bind(s, 1, collection);
    reader->Bind(s, 2, query.starting_after);
    reader->Bind(s, 3, static_cast<int64_t>(limit + 1));
  }
  Page page;
  while (reader->Step(s) == SQLITE_ROW) {
    if (static_cast<int>(page.items.size()) == limit) {
      page.has_more = true;
      break;
    }
    page.items.push_back(
        Document{Conn::Text(s, 0), sqlite3_column_int64(s, 1), Conn::Text(s, 2), {}});
  }
  sqlite3_reset(s);
  return page;
}

KeyedPage SqliteStore::ListByKey(std::string_view collection, const KeyRangeQuery& query) {
  Spec(collection);
  const int limit = std::clamp(query.limit, 1, 1000);
  auto reader = Read();
  // The primary key of document_keys, (collection, name, value, id), is the
  // index this walks.
  Stmt s;
  int i = 1;
  if (query.at_most) {
    s = reader->Prepare(
        "SELECT d.id, d.version, d.body, k.value FROM document_keys k JOIN documents d "
        "ON d.collection = k.collection AND d.id = k.id "
        "WHERE k.collection=? AND k.name=? AND k.value <= ? "
        "AND (k.value > ? OR (k.value = ? AND k.id > ?)) ORDER BY k.value, k.id LIMIT ?");
  } else {
    s = reader->Prepare(
        "SELECT d.id, d.version, d.body, k.value FROM document_keys k JOIN documents d "
        "ON d.collection = k.collection AND d.id = k.id "
        "WHERE k.collection=? AND k.name=? "
        "AND (k.value > ? OR (k.value = ? AND k.id > ?)) ORDER BY k.value, k.id LIMIT ?");
  }
  reader->Bind(s, i++, collection);
  reader->Bind(s, i++, query.key);
  if (query.at_most) reader->Bind(s, i++, *query.at_most);
  reader->Bind(s, i++, query.after_value);
  reader->Bind(s, i++, query.after_value);
  reader->Bind(s, i++, query.after_id);
  reader->Bind(s, i++, static_cast<int64_t>(limit + 1));
  KeyedPage page;
  while (reader->Step(s) == SQLITE_ROW) {
    if (static_cast<int>(page.items.size()) == limit) {
      page.has_more = true;
      break;
    }
    page.items.push_back(
        KeyedDocument{Document{Conn::Text(s, 0), sqlite3_column_int64(s, 1), Conn::Text(s, 2), {}},
                      Conn::Text(s, 3)});
  }
  return page;
}

void SqliteStore::Ping() {
  {
    std::lock_guard lock(health_mu_);
    if (write_failure_) throw StorageError("writes fail: " + *write_failure_, true);
  }
  auto reader = Read();
  auto s = reader->Prepare("SELECT COUNT(*) FROM schema_migrations");
  reader->Step(s);
  sqlite3_reset(s);
}

}  // namespace caas::storage
