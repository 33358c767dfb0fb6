#include "metering/event_log.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "core/log.h"

namespace caas::metering {
namespace fs = std::filesystem;

namespace {

constexpr char kFileMagic[8] = {'C', 'A', 'A', 'S', 'L', 'O', 'G', '\x02'};
constexpr const char* kManifest = "MANIFEST";

std::string SegmentName(uint64_t start) {
  char name[40];
  std::snprintf(name, sizeof name, "%020llu.log", static_cast<unsigned long long>(start));
  return name;
}

void PutU32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }
void PutU64(char* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t GetU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
uint64_t Hash(const char* p, size_t n) { return XXH3_64bits(p, n); }

// A read-only view of a whole segment file (mmap: no copy, no zero-fill).
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + path);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      throw std::system_error(e, std::generic_category(), "stat " + path);
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int e = errno;
        ::close(fd);
        throw std::system_error(e, std::generic_category(), "mmap " + path);
      }
      ::madvise(p, size_, MADV_SEQUENTIAL);
      map_ = p;
      data_ = static_cast<const char*>(p);
    }
    ::close(fd);
  }
  ~MappedFile() {
    if (map_) ::munmap(map_, size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view view() const { return {data_ ? data_ : "", size_}; }

 private:
  void* map_ = nullptr;  // what mmap returned (munmap takes it back)
  const char* data_ = nullptr;
  size_t size_ = 0;
};

bool HasFileHeader(std::string_view data) {
  return data.size() >= EventLog::kFileHeaderBytes &&
         std::memcmp(data.data(), kFileMagic, sizeof kFileMagic) == 0;
}

// A valid record frame at `pos` (within `end`): its length, or 0.
size_t RecordAt(std::string_view data, size_t pos, size_t end) {
  if (end - pos < EventLog::kRecordHeaderBytes) return 0;
  const uint32_t len = GetU32(data.data() + pos);
  if (len > EventLog::kMaxRecordBytes || end - pos - EventLog::kRecordHeaderBytes < len) return 0;
  if (Hash(data.data() + pos + EventLog::kRecordHeaderBytes, len) !=
      GetU64(data.data() + pos + 4)) {
    return 0;
  }
  return EventLog::kRecordHeaderBytes + len;
}

// A valid group at `pos`: its whole length, or 0; `why` says what failed.
size_t GroupAt(std::string_view data, size_t pos, std::string* why) {
  const size_t left = data.size() - pos;
  if (left < EventLog::kGroupHeaderBytes) {
    if (why) *why = "a partial group header";
    return 0;
  }
  if (GetU32(data.data() + pos) != EventLog::kGroupMagic) {
    if (why) *why = "no group starts here";
    return 0;
  }
  const uint32_t len = GetU32(data.data() + pos + 4);
  if (left - EventLog::kGroupHeaderBytes < len) {
    if (why) *why = "a group longer than the rest of the file";
    return 0;
  }
  const char* body = data.data() + pos + EventLog::kGroupHeaderBytes;
  if (Hash(body, len) != GetU64(data.data() + pos + 8)) {
    if (why) *why = "a group whose checksum does not match";
    return 0;
  }
  // The records inside must tile the body exactly.
  for (size_t r = 0; r < len;) {
    const size_t n = RecordAt(data, pos + EventLog::kGroupHeaderBytes + r,
                              pos + EventLog::kGroupHeaderBytes + len);
    if (n == 0) {
      if (why) *why = "a group whose records do not parse";
      return 0;
    }
    r += n;
  }
  return EventLog::kGroupHeaderBytes + len;
}

struct ScanResult {
  size_t valid_end = 0;          // file offset after the last intact unit
  std::optional<size_t> bad_at;  // the first damage
  std::string what;
  uint64_t intact_after = 0;  // bytes of intact units after the damage
};

// Bytes of intact units (groups, or records in a legacy segment) at or after
// `from`, found by searching every position.
uint64_t IntactAfter(std::string_view data, size_t from, bool legacy) {
  uint64_t total = 0;
  size_t pos = from;
  while (pos < data.size()) {
    size_t n = 0;
    if (legacy) {
      n = RecordAt(data, pos, data.size());
    } else {
      const void* hit = memmem(data.data() + pos, data.size() - pos, &EventLog::kGroupMagic, 4);
      if (hit == nullptr) break;
      pos = static_cast<size_t>(static_cast<const char*>(hit) - data.data());
      n = GroupAt(data, pos, nullptr);
    }
    if (n > 0) {
      total += n;
      pos += n;
    } else {
      ++pos;
    }
  }
  return total;
}

// Walks a segment's intact prefix, calling fn(file offset, payload) for each
// record, and reports the first damage.
ScanResult Scan(std::string_view data, bool legacy,
                const std::function<void(size_t, std::string_view)>& fn) {
  ScanResult r;
  size_t pos = legacy ? 0 : EventLog::kFileHeaderBytes;
  while (pos < data.size()) {
    if (legacy) {
      const size_t n = RecordAt(data, pos, data.size());
      if (n == 0) {
        r.bad_at = pos;
        r.what = "a record that is cut short or whose checksum does not match";
        break;
      }
      if (fn)
        fn(pos, data.substr(pos + EventLog::kRecordHeaderBytes, n - EventLog::kRecordHeaderBytes));
      pos += n;
      continue;
    }
    std::string why;
    const size_t n = GroupAt(data, pos, &why);
    if (n == 0) {
      r.bad_at = pos;
      r.what = why;
      break;
    }
    if (fn) {
      for (size_t q = pos + EventLog::kGroupHeaderBytes; q < pos + n;) {
        const uint32_t len = GetU32(data.data() + q);
        fn(q, data.substr(q + EventLog::kRecordHeaderBytes, len));
        q += EventLog::kRecordHeaderBytes + len;
      }
    }
    pos += n;
  }
  r.valid_end = r.bad_at ? *r.bad_at : pos;
  if (r.bad_at) r.intact_after = IntactAfter(data, *r.bad_at + 1, legacy);
  return r;
}

struct Manifest {
  uint64_t first = 0;
  uint64_t last = 0;
  std::optional<uint64_t> clean_end;  // set by a clean shutdown
};
std::optional<Manifest> ReadManifest(const std::string& dir) {
  std::ifstream in(dir + "/" + kManifest);
  if (!in) return std::nullopt;
  std::string line, key;
  Manifest m;
  bool first = false, last = false;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    unsigned long long v;
    if (!(ls >> key >> v)) continue;
    if (key == "first") m.first = v, first = true;
    if (key == "last") m.last = v, last = true;
    if (key == "clean_end") m.clean_end = v;
  }
  if (!first || !last) throw LogCorruption(dir + "/" + kManifest + " is damaged");
  return m;
}

std::vector<uint64_t> ListSegments(const std::string& dir) {
  std::vector<uint64_t> starts;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.size() == 24 && name.ends_with(".log") && name.find_first_not_of("0123456789") == 20) {
      starts.push_back(std::stoull(name.substr(0, 20)));
    }
  }
  std::sort(starts.begin(), starts.end());
  return starts;
}

std::string DoctorHint() {
  return " Run 'caas-billing doctor' to see the damage, and 'caas-billing doctor --salvage' to "
         "keep every intact record.";
}

}  // namespace

EventLog::EventLog(std::string dir, uint64_t segment_bytes, LogEnv& env)
    : dir_(std::move(dir)), segment_bytes_(segment_bytes), env_(env) {}

EventLog::~EventLog() {
  if (write_fd_ >= 0) env_.Close(write_fd_);
  for (auto& [start, s] : segments_) env_.Close(s.fd);
}

void EventLog::StartGroup(std::string* buffer) { buffer->append(kGroupHeaderBytes, '\0'); }

void EventLog::Frame(std::string* buffer, std::string_view payload) {
  char header[kRecordHeaderBytes];
  PutU32(header, static_cast<uint32_t>(payload.size()));
  PutU64(header + 4, Hash(payload.data(), payload.size()));
  buffer->append(header, kRecordHeaderBytes);
  buffer->append(payload);
}

void EventLog::Open(const std::function<void(uint64_t, std::string_view)>& fn) {
  if (!fs::exists(dir_)) {
    fs::create_directories(dir_);
    // The new directory's own entry must be durable too.
    const fs::path parent = fs::absolute(fs::path(dir_)).lexically_normal().parent_path();
    if (env_.SyncDir(parent.string()) != 0) {
      throw std::system_error(errno, std::generic_category(), "fsync " + parent.string());
    }
  }
  const std::optional<Manifest> manifest = ReadManifest(dir_);
  const std::vector<uint64_t> starts = ListSegments(dir_);
  if (manifest) {
    if (starts.empty()) {
      throw LogCorruption("event log " + dir_ + ": every segment is missing (MANIFEST records " +
                          SegmentName(manifest->first) + " to " + SegmentName(manifest->last) +
                          ")." + DoctorHint());
    }
    if (starts.front() != manifest->first) {
      throw LogCorruption("event log " + dir_ + ": segment " + SegmentName(manifest->first) +
                          " is missing (the log starts there, by MANIFEST)." + DoctorHint());
    }
    if (starts.back() < manifest->last) {
      throw LogCorruption("event log " + dir_ + ": segment " + SegmentName(manifest->last) +
                          " is missing (MANIFEST records it)." + DoctorHint());
    }
  }
  first_lsn_ = starts.empty() ? 0 : starts.front();
  end_lsn_ = first_lsn_;
  for (size_t i = 0; i < starts.size(); ++i) {
    const bool last = i + 1 == starts.size();
    const std::string name = SegmentName(starts[i]);
    const std::string path = dir_ + "/" + name;
    if (i > 0 && starts[i] != end_lsn_) {
      throw LogCorruption("event log segment " + path + " does not follow the previous one (it " +
                          "should start at " + std::to_string(end_lsn_) + "): a segment is " +
                          "missing or out of place." + DoctorHint());
    }
    std::optional<MappedFile> mapped;
    mapped.emplace(path);
    std::string_view data = mapped->view();
    bool legacy = !HasFileHeader(data);
    if (legacy && last && data.size() < kFileHeaderBytes &&
        std::memcmp(data.data(), kFileMagic, data.size()) == 0) {
      // A segment whose creation was cut short: nothing was ever written in it.
      Log(LogLevel::kWarn, "event_log_torn_segment_header", {{"segment", path}});
      mapped.reset();
      const int fd = env_.Open(path, O_WRONLY | O_TRUNC, 0600);
      if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + path);
      char header[kFileHeaderBytes];
      std::memcpy(header, kFileMagic, 8);
      PutU64(header + 8, starts[i]);
      const bool ok =
          env_.Write(fd, header, kFileHeaderBytes) == static_cast<ssize_t>(kFileHeaderBytes) &&
          env_.Fdatasync(fd) == 0;
      env_.Close(fd);
      if (!ok) throw std::system_error(errno, std::generic_category(), "rewrite " + path);
      mapped.emplace(path);
      data = mapped->view();
      legacy = false;
    }
    if (!legacy && GetU64(data.data() + 8) != starts[i]) {
      throw LogCorruption("event log segment " + path + " holds the records of LSN " +
                          std::to_string(GetU64(data.data() + 8)) + ", not " +
                          std::to_string(starts[i]) + ": it is out of place." + DoctorHint());
    }
    const uint64_t start = starts[i];
    const size_t hdr = HeaderBytes(legacy);
    ScanResult scan = Scan(data, legacy, [&](size_t offset, std::string_view payload) {
      fn(start + offset - hdr, payload);
    });
    const uint64_t seg_end = start + scan.valid_end - hdr;
    if (last && manifest && manifest->clean_end && seg_end < *manifest->clean_end) {
      // After a clean shutdown nothing may be missing from the end.
      throw LogCorruption(
          "event log segment " + path + " ends at LSN " + std::to_string(seg_end) +
          (scan.bad_at
               ? " (damaged at byte " + std::to_string(*scan.bad_at) + ": " + scan.what + ")"
               : "") +
          ", but the log was shut down cleanly at LSN " + std::to_string(*manifest->clean_end) +
          ": acknowledged records are missing or damaged, so the service does not start." +
          DoctorHint());
    }
    if (scan.bad_at) {
      if (!last || scan.intact_after > 0) {
        throw LogCorruption(
            "event log segment " + path + " is damaged at byte " + std::to_string(*scan.bad_at) +
            " (" + scan.what + "), with " + std::to_string(scan.intact_after) +
            " bytes of intact " + (legacy ? "records" : "groups") + " after it" +
            (last ? "" : ", in an older segment") +
            ": it held acknowledged events, so nothing will be cut off and the service does not "
            "start." +
            DoctorHint());
      }
      // The newest segment's last group, never synced: not acknowledged.
      Log(LogLevel::kWarn, "event_log_torn_tail",
          {{"segment", path},
           {"kept_bytes", static_cast<int64_t>(*scan.bad_at)},
           {"dropped_bytes", static_cast<int64_t>(data.size() - *scan.bad_at)},
           {"reason", scan.what}});
      mapped.reset();  // unmap before cutting the file
      const int fd = env_.Open(path, O_WRONLY, 0600);
      if (fd < 0 || env_.Ftruncate(fd, static_cast<off_t>(*scan.bad_at)) != 0 ||
          env_.Fdatasync(fd) != 0) {
        const int e = errno;
        if (fd >= 0) env_.Close(fd);
        throw std::system_error(e, std::generic_category(), "truncate " + path);
      }
      env_.Close(fd);
    }
    end_lsn_ = start + scan.valid_end - hdr;
    const int fd = env_.Open(path, O_RDONLY, 0);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + path);
    std::lock_guard lock(segments_mu_);
    segments_[start] = Segment{fd, legacy};
  }
  if (starts.empty()) {
    Status s = OpenNewSegment(0);
    if (!s) throw std::runtime_error("event log: " + s.error().message);
    return;
  }
  const bool last_legacy = segments_.rbegin()->second.legacy;
  write_segment_start_ = starts.back();
  write_legacy_ = last_legacy;
  if (!manifest || manifest->clean_end) {
    // A log from before manifests, or one that is open for writing now: the
    // next start must not take a crash for a clean shutdown.
    Status s = WriteManifest(first_lsn_, starts.back());
    if (!s) throw std::runtime_error("event log: " + s.error().message);
  }
  if (!last_legacy) {
    const std::string path = dir_ + "/" + SegmentName(starts.back());
    write_fd_ = env_.Open(path, O_WRONLY | O_APPEND, 0600);
    if (write_fd_ < 0) throw std::system_error(errno, std::generic_category(), "open " + path);
  }
}

void EventLog::Close() {
  if (segments_.empty()) return;
  Status s = WriteManifest(first_lsn_, segments_.rbegin()->first, end_lsn_);
  if (!s) Log(LogLevel::kWarn, "event_log_clean_close_failed", {{"error", s.error().message}});
}

Status EventLog::WriteManifest(uint64_t first, uint64_t last, std::optional<uint64_t> clean_end) {
  const std::string tmp = dir_ + "/" + kManifest + ".tmp";
  std::string text = "caas-billing event log\nformat 2\nfirst " + std::to_string(first) +
                     "\nlast " + std::to_string(last) + "\n";
  if (clean_end) text += "clean_end " + std::to_string(*clean_end) + "\n";
  auto code = [](int e) {
    return e == ENOSPC || e == EDQUOT ? ErrorCode::kResourceExhausted : ErrorCode::kUnavailable;
  };
  const int fd = env_.Open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return Error::Make(code(errno), "create " + tmp + ": " + std::strerror(errno));
  const bool ok = env_.Write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  env_.Fdatasync(fd) == 0;
  const int e = errno;
  env_.Close(fd);
  if (!ok) return Error::Make(code(e), "write " + tmp + ": " + std::strerror(e));
  if (env_.Rename(tmp, dir_ + "/" + kManifest) != 0 || env_.SyncDir(dir_) != 0) {
    return Error::Make(ErrorCode::kUnavailable,
                       "install " + dir_ + "/" + kManifest + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

Status EventLog::OpenNewSegment(uint64_t start_lsn) {
  const std::string path = dir_ + "/" + SegmentName(start_lsn);
  const int fd = env_.Open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
  auto fail = [&](const std::string& what) -> Status {
    const int e = errno;
    const std::string msg =
        "the event log cannot be written: " + what + " " + path + ": " + std::strerror(e);
    if (fd >= 0) env_.Close(fd);
    return Error::Make(
        e == ENOSPC || e == EDQUOT ? ErrorCode::kResourceExhausted : ErrorCode::kUnavailable, msg);
  };
  if (fd < 0) return fail("create");
  char header[kFileHeaderBytes];
  std::memcpy(header, kFileMagic, 8);
  PutU64(header + 8, start_lsn);
  if (env_.Write(fd, header, kFileHeaderBytes) != static_cast<ssize_t>(kFileHeaderBytes)) {
    return fail("write");
  }
  if (env_.Fdatasync(fd) != 0) Fatal("fdatasync " + path + ": " + std::strerror(errno));
  if (env_.SyncDir(dir_) != 0) return fail("fsync directory of");
  Status m = WriteManifest(segments_.empty() ? start_lsn : first_lsn_, start_lsn);
  if (!m) {
    env_.Close(fd);
    return m;
  }
  const int rfd = env_.Open(path, O_RDONLY, 0);
  if (rfd < 0) return fail("open");
  if (write_fd_ >= 0) env_.Close(write_fd_);
  write_fd_ = fd;
  write_segment_start_ = start_lsn;
  write_legacy_ = false;
  std::lock_guard lock(segments_mu_);
  if (segments_.empty()) first_lsn_ = start_lsn;
  segments_[start_lsn] = Segment{rfd, false};
  return Status::Ok();
}

void EventLog::Fatal(const std::string& what) {
  Log(LogLevel::kError, "event_log_io_failure", {{"error", what}});
  std::fprintf(stderr, "fatal: event log: %s\n", what.c_str());
  std::abort();
}

Status EventLog::WriteAndSync(std::string& group) {
  if (group.size() <= kGroupHeaderBytes) return Status::Ok();
  const size_t body = group.size() - kGroupHeaderBytes;
  PutU32(group.data(), kGroupMagic);
  PutU32(group.data() + 4, static_cast<uint32_t>(body));
  PutU64(group.data() + 8, Hash(group.data() + kGroupHeaderBytes, body));
  if (write_legacy_ || (end_lsn_ > write_segment_start_ &&
                        end_lsn_ - write_segment_start_ + group.size() > segment_bytes_)) {
    Status s = OpenNewSegment(end_lsn_);
    if (!s) return s;
  }
  const off_t before = static_cast<off_t>(end_lsn_ - write_segment_start_ + kFileHeaderBytes);
  size_t done = 0;
  while (done < group.size()) {
    const ssize_t n = env_.Write(write_fd_, group.data() + done, group.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = n < 0 ? errno : EIO;
      const std::string why = std::strerror(e);
      // Nothing of this group was acknowledged: cut it off, so the next group
      // starts where this one did.
      if (env_.Ftruncate(write_fd_, before) != 0) {
        Fatal("write failed (" + why +
              ") and the partial group could not be cut off: " + std::strerror(errno));
      }
      return Error::Make(
          e == ENOSPC || e == EDQUOT ? ErrorCode::kResourceExhausted : ErrorCode::kUnavailable,
          "the event log cannot be written: " + why);
    }
    done += static_cast<size_t>(n);
  }
  if (env_.Fdatasync(write_fd_) != 0) Fatal(std::string("fdatasync: ") + std::strerror(errno));
  end_lsn_ += group.size();
  return Status::Ok();
}

std::optional<std::string> EventLog::Read(uint64_t lsn) const {
  int fd;
  uint64_t start;
  bool legacy;
  {
    std::lock_guard lock(segments_mu_);
    auto it = segments_.upper_bound(lsn);
    if (it == segments_.begin()) return std::nullopt;
    --it;
    start = it->first;
    fd = it->second.fd;
    legacy = it->second.legacy;
  }
  char header[kRecordHeaderBytes];
  const off_t off = static_cast<off_t>(lsn - start + HeaderBytes(legacy));
  if (env_.PRead(fd, header, kRecordHeaderBytes, off) != static_cast<ssize_t>(kRecordHeaderBytes)) {
    return std::nullopt;
  }
  uint32_t len = GetU32(header);
  if (len > kMaxRecordBytes) return std::nullopt;
  std::string payload(len, '\0');
  if (env_.PRead(fd, payload.data(), len, off + static_cast<off_t>(kRecordHeaderBytes)) !=
      static_cast<ssize_t>(len)) {
    return std::nullopt;
  }
  if (Hash(payload.data(), payload.size()) != GetU64(header + 4)) return std::nullopt;
  return payload;
}

EventLog::Report EventLog::Verify(const std::string& dir) {
  Report report;
  if (!fs::exists(dir)) {
    report.damage.push_back(
        Damage{"", 0, "the event log directory " + dir + " is missing", 0, false});
    return report;
  }
  // Read through a lambda so the optional is initialized once (GCC's
  // -Wmaybe-uninitialized misreads an assignment inside try at -O1).
  const std::optional<Manifest> manifest = [&]() -> std::optional<Manifest> {
    try {
      return ReadManifest(dir);
    } catch (const LogCorruption& e) {
      report.damage.push_back(Damage{kManifest, 0, e.what(), 0, false});
      return std::nullopt;
    }
  }();
  const std::vector<uint64_t> starts = ListSegments(dir);
  if (manifest) {
    if (starts.empty() || starts.front() != manifest->first) {
      report.damage.push_back(Damage{SegmentName(manifest->first), 0,
                                     "missing (MANIFEST: the first segment)", 0, false});
    }
    if (starts.empty() || starts.back() < manifest->last) {
      report.damage.push_back(
          Damage{SegmentName(manifest->last), 0, "missing (MANIFEST: the last segment)", 0, false});
    }
  }
  uint64_t end = starts.empty() ? 0 : starts.front();
  if (!starts.empty()) end = starts.front();
  for (size_t i = 0; i < starts.size(); ++i) {
    const std::string name = SegmentName(starts[i]);
    report.segments.push_back(name);
    if (i > 0 && starts[i] != end) {
      report.damage.push_back(Damage{
          name, 0,
          "does not follow the previous segment (expected start " + std::to_string(end) + ")", 0,
          false});
    }
    MappedFile mapped(dir + "/" + name);
    const std::string_view data = mapped.view();
    const bool legacy = !HasFileHeader(data);
    const size_t hdr = legacy ? 0 : kFileHeaderBytes;
    ScanResult scan = Scan(data, legacy, [&](size_t, std::string_view) { ++report.records; });
    report.bytes += data.size();
    if (scan.bad_at) {
      const bool torn = i + 1 == starts.size() && scan.intact_after == 0;
      report.damage.push_back(Damage{name, *scan.bad_at, scan.what, scan.intact_after, torn});
    }
    end = starts[i] + scan.valid_end - hdr;
  }
  if (manifest && manifest->clean_end && end < *manifest->clean_end) {
    report.damage.push_back(Damage{starts.empty() ? "" : SegmentName(starts.back()), 0,
                                   "the log ends at LSN " + std::to_string(end) +
                                       " but was shut down cleanly at LSN " +
                                       std::to_string(*manifest->clean_end),
                                   0, false});
  }
  return report;
}

void EventLog::ScanIntact(const std::string& dir,
                          const std::function<void(std::string_view payload)>& fn) {
  for (uint64_t start : ListSegments(dir)) {
    MappedFile mapped(dir + "/" + SegmentName(start));
    const std::string_view data = mapped.view();
    const bool legacy = !HasFileHeader(data);
    size_t pos = legacy ? 0 : kFileHeaderBytes;
    while (pos < data.size()) {
      if (!legacy) {
        if (const size_t n = GroupAt(data, pos, nullptr); n > 0) {
          for (size_t q = pos + kGroupHeaderBytes; q < pos + n;) {
            const uint32_t len = GetU32(data.data() + q);
            fn(data.substr(q + kRecordHeaderBytes, len));
            q += kRecordHeaderBytes + len;
          }
          pos += n;
          continue;
        }
        // A damaged group: keep each of its records whose own checksum holds.
        if (data.size() - pos >= kGroupHeaderBytes && GetU32(data.data() + pos) == kGroupMagic) {
          const size_t body_end = std::min<size_t>(
              data.size(), pos + kGroupHeaderBytes + GetU32(data.data() + pos + 4));
          size_t q = pos + kGroupHeaderBytes;
          while (q < body_end) {
            const size_t n = RecordAt(data, q, body_end);
            if (n == 0) {
              ++q;
              continue;
            }
            fn(data.substr(q + kRecordHeaderBytes, n - kRecordHeaderBytes));
            q += n;
          }
          pos = body_end > pos + kGroupHeaderBytes ? body_end : pos + 1;
          continue;
        }
        ++pos;
        continue;
      }
      if (const size_t n = RecordAt(data, pos, data.size()); n > 0) {
        fn(data.substr(pos + kRecordHeaderBytes, n - kRecordHeaderBytes));
        pos += n;
      } else {
        ++pos;
      }
    }
  }
}

}  // namespace caas::metering
