// The data directory: what it holds is recorded when it is created
// (caas-billing.json) and checked at every start, so a missing part is an
// error rather than a fresh, empty store or log. One server holds it at a
// time (the LOCK file); `doctor --salvage` needs it free too.
#pragma once

#include <stdexcept>
#include <string>

namespace caas::app {

class DataDirError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class DataDirectory {
 public:
  static constexpr const char* kManifest = "caas-billing.json";
  static constexpr const char* kStoreFile = "billing.db";
  static constexpr const char* kEventLog = "events";

  // Creates `path` with a new manifest, or checks an existing one against
  // what is there. A directory from before manifests is adopted when it holds
  // a store. Throws DataDirError naming what is wrong.
  // `store`: the store URL the configuration names; the manifest records it,
  // and a directory created with another store is refused.
  DataDirectory(std::string path, std::string store);
  ~DataDirectory();
  DataDirectory(const DataDirectory&) = delete;
  DataDirectory& operator=(const DataDirectory&) = delete;

  // Takes the directory's lock for this process; throws DataDirError when
  // another process (a running server) holds it.
  void Lock();
  // The event log is about to be created or opened: once it exists, the
  // manifest records it, and a start without it fails.
  void UseEventLog();

  const std::string& path() const { return path_; }
  std::string store_path() const;  // the SQLite file, for a sqlite: store
  const std::string& store() const { return store_; }
  std::string event_log_path() const { return path_ + "/" + kEventLog; }
  const std::string& id() const { return id_; }

 private:
  void Write() const;
  std::string path_;
  std::string store_;
  std::string id_;
  std::string created_at_;
  bool event_log_ = false;
  int lock_fd_ = -1;
};

}  // namespace caas::app
