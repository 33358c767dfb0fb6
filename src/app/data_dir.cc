#include "app/data_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/clock.h"
#include "core/ids.h"
#include "core/log.h"

namespace caas::app {
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {
void SyncPath(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}
}  // namespace

std::string DataDirectory::store_path() const {
  if (store_.rfind("sqlite:", 0) != 0) return {};
  const std::string p = store_.substr(7);
  return !p.empty() && p.front() == '/' ? p : path_ + "/" + p;
}

DataDirectory::DataDirectory(std::string path, std::string store)
    : path_(std::move(path)), store_(std::move(store)) {
  const bool existed = fs::exists(path_);
  fs::create_directories(path_);
  fs::permissions(path_, fs::perms::owner_all, fs::perm_options::replace);
  const std::string manifest = path_ + "/" + kManifest;
  const bool sqlite = store_.rfind("sqlite:", 0) == 0;
  const bool has_store = !sqlite || fs::exists(store_path());
  const bool has_log = fs::exists(event_log_path());
  if (fs::exists(manifest)) {
    std::ifstream in(manifest);
    std::stringstream ss;
    ss << in.rdbuf();
    json::error_code ec;
    json::value v = json::parse(ss.str(), ec);
    const json::object* o = !ec && v.is_object() ? &v.as_object() : nullptr;
    if (o == nullptr || !o->contains("id") || !o->at("id").is_string() ||
        !o->contains("event_log") || !o->at("event_log").is_bool()) {
      throw DataDirError(manifest + " is damaged: restore it, or the directory, from a backup");
    }
    id_ = std::string(o->at("id").as_string());
    if (const auto* c = o->if_contains("created_at"); c && c->is_string()) {
      created_at_ = std::string(c->as_string());
    }
    event_log_ = o->at("event_log").as_bool();
    // Manifests before stores were named held "billing.db": the default.
    std::string recorded = "sqlite:billing.db";
    if (const auto* st = o->if_contains("store"); st && st->is_string()) {
      recorded = std::string(st->as_string());
      if (recorded == kStoreFile) recorded = "sqlite:billing.db";
    }
    if (recorded != store_) {
      throw DataDirError("the data directory " + id_ + " holds the store " + recorded +
                         ", but the configuration names " + store_ +
                         " (to move an installation, copy the store; see the README)");
    }
    if (!has_store) {
      throw DataDirError("the store " + store_path() + " is missing from the data directory " +
                         id_ + " (" + manifest +
                         " records it). Restore it from a backup; the service does not start on "
                         "a new, empty store in its place.");
    }
    if (event_log_ && !has_log) {
      throw DataDirError("the event log " + event_log_path() +
                         " is missing from the data directory " + id_ + " (" + manifest +
                         " records it). Restore it from a backup; the service does not start "
                         "counting usage from zero.");
    }
    return;
  }
  if (!has_store && has_log) {
    throw DataDirError("the data directory " + path_ + " has an event log but no store (" +
                       store_path() + "): restore the store from a backup");
  }
  // New, or from before manifests (then adopted as it is).
  SystemClock clock;
  IdGenerator ids(clock);
  id_ = ids.Next("dir");
  created_at_ = FormatRfc3339(clock.Now());
  event_log_ = has_log;
  if (existed && has_store) {
    Log(LogLevel::kInfo, "data_directory_adopted", {{"path", path_}, {"id", id_}});
  }
  Write();
}

DataDirectory::~DataDirectory() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void DataDirectory::Write() const {
  const std::string manifest = path_ + "/" + kManifest;
  const std::string tmp = manifest + ".tmp";
  json::object o{{"format", 1},
                 {"id", id_},
                 {"created_at", created_at_},
                 {"store", store_},
                 {"event_log", event_log_}};
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << json::serialize(o) << "\n";
    out.flush();
    if (!out) throw DataDirError("cannot write " + tmp + ": " + std::strerror(errno));
  }
  SyncPath(tmp, false);
  fs::rename(tmp, manifest);
  SyncPath(path_, true);
}

void DataDirectory::Lock() {
  if (lock_fd_ >= 0) return;
  const std::string path = path_ + "/LOCK";
  lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) throw DataDirError("cannot open " + path + ": " + std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd_);
    lock_fd_ = -1;
    throw DataDirError("another caas-billing process holds the data directory " + path_ +
                       " (a running server?); stop it first");
  }
}

void DataDirectory::UseEventLog() {
  if (event_log_) return;
  event_log_ = true;
  Write();
}

}  // namespace caas::app
