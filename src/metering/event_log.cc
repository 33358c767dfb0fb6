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
#include <optional>
#include <system_error>
#include <vector>

#include "core/log.h"

namespace caas::metering {
namespace fs = std::filesystem;

namespace {

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

void SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + dir);
  int rc = ::fsync(fd);
  int e = errno;
  ::close(fd);
  if (rc != 0) throw std::system_error(e, std::generic_category(), "fsync " + dir);
}

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
      data_ = static_cast<const char*>(p);
    }
    ::close(fd);
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view view() const { return {data_ ? data_ : "", size_}; }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace

EventLog::EventLog(std::string dir, uint64_t segment_bytes)
    : dir_(std::move(dir)), segment_bytes_(segment_bytes) {}

EventLog::~EventLog() {
  if (write_fd_ >= 0) ::close(write_fd_);
  for (auto& [start, fd] : segments_) ::close(fd);
}

void EventLog::Frame(std::string* buffer, std::string_view payload) {
  char header[kHeaderBytes];
  PutU32(header, static_cast<uint32_t>(payload.size()));
  PutU64(header + 4, XXH3_64bits(payload.data(), payload.size()));
  buffer->append(header, kHeaderBytes);
  buffer->append(payload);
}

void EventLog::Open(const std::function<void(uint64_t, std::string_view)>& fn) {
  if (!fs::exists(dir_)) {
    fs::create_directories(dir_);
    // The new directory's own entry must be durable too.
    const fs::path parent = fs::absolute(fs::path(dir_)).lexically_normal().parent_path();
    SyncDir(parent.string());
  }
  std::vector<uint64_t> starts;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    const std::string name = entry.path().filename().string();
    if (name.size() == 24 && name.ends_with(".log")) {
      starts.push_back(std::stoull(name.substr(0, 20)));
    }
  }
  std::sort(starts.begin(), starts.end());
  for (size_t i = 0; i < starts.size(); ++i) {
    const bool last = i + 1 == starts.size();
    const std::string path = dir_ + "/" + SegmentName(starts[i]);
    if (i > 0 && starts[i] != end_lsn_) {
      throw LogCorruption("event log segment " + path + " does not follow the previous one");
    }
    std::optional<MappedFile> mapped;
    mapped.emplace(path);
    std::string_view data = mapped->view();
    size_t pos = 0;
    while (pos < data.size()) {
      bool whole = data.size() - pos >= kHeaderBytes;
      uint32_t len = whole ? GetU32(data.data() + pos) : 0;
      whole = whole && len <= kMaxRecordBytes && data.size() - pos - kHeaderBytes >= len &&
              XXH3_64bits(data.data() + pos + kHeaderBytes, len) == GetU64(data.data() + pos + 4);
      if (!whole) {
        if (!last) {
          throw LogCorruption("event log segment " + path + " has a bad record at byte " +
                              std::to_string(pos));
        }
        Log(LogLevel::kWarn, "event_log_torn_tail",
            {{"segment", path},
             {"kept_bytes", static_cast<int64_t>(pos)},
             {"dropped_bytes", static_cast<int64_t>(data.size() - pos)}});
        data = data.substr(0, pos);
        mapped.reset();  // unmap before cutting the file
        if (::truncate(path.c_str(), static_cast<off_t>(pos)) != 0) {
          throw std::system_error(errno, std::generic_category(), "truncate " + path);
        }
        break;
      }
      fn(starts[i] + pos, std::string_view(data.data() + pos + kHeaderBytes, len));
      pos += kHeaderBytes + len;
    }
    end_lsn_ = starts[i] + data.size();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + path);
    std::lock_guard lock(segments_mu_);
    segments_[starts[i]] = fd;
  }
  if (starts.empty()) {
    OpenNewSegment(0);
  } else {
    const std::string path = dir_ + "/" + SegmentName(starts.back());
    write_fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (write_fd_ < 0) throw std::system_error(errno, std::generic_category(), "open " + path);
    if (::fdatasync(write_fd_) != 0) {  // a truncation above must be durable too
      throw std::system_error(errno, std::generic_category(), "fdatasync " + path);
    }
    write_segment_start_ = starts.back();
  }
}

void EventLog::OpenNewSegment(uint64_t start_lsn) {
  const std::string path = dir_ + "/" + SegmentName(start_lsn);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "create " + path);
  SyncDir(dir_);
  int rfd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (rfd < 0) throw std::system_error(errno, std::generic_category(), "open " + path);
  if (write_fd_ >= 0) ::close(write_fd_);
  write_fd_ = fd;
  write_segment_start_ = start_lsn;
  std::lock_guard lock(segments_mu_);
  segments_[start_lsn] = rfd;
}

void EventLog::Fatal(const std::string& what) {
  Log(LogLevel::kError, "event_log_io_failure", {{"error", what}});
  std::fprintf(stderr, "fatal: event log: %s\n", what.c_str());
  std::abort();
}

void EventLog::WriteAndSync(std::string_view framed) {
  if (framed.empty()) return;
  if (end_lsn_ > write_segment_start_ &&
      end_lsn_ - write_segment_start_ + framed.size() > segment_bytes_) {
    try {
      OpenNewSegment(end_lsn_);
    } catch (const std::exception& e) {
      Fatal(e.what());
    }
  }
  size_t done = 0;
  while (done < framed.size()) {
    ssize_t n = ::write(write_fd_, framed.data() + done, framed.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) Fatal(std::string("write: ") + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  if (::fdatasync(write_fd_) != 0) Fatal(std::string("fdatasync: ") + std::strerror(errno));
  end_lsn_ += framed.size();
}

std::optional<std::string> EventLog::Read(uint64_t lsn) const {
  int fd;
  uint64_t start;
  {
    std::lock_guard lock(segments_mu_);
    auto it = segments_.upper_bound(lsn);
    if (it == segments_.begin()) return std::nullopt;
    --it;
    start = it->first;
    fd = it->second;
  }
  char header[kHeaderBytes];
  const off_t off = static_cast<off_t>(lsn - start);
  if (::pread(fd, header, kHeaderBytes, off) != static_cast<ssize_t>(kHeaderBytes)) {
    return std::nullopt;
  }
  uint32_t len = GetU32(header);
  if (len > kMaxRecordBytes) return std::nullopt;
  std::string payload(len, '\0');
  if (::pread(fd, payload.data(), len, off + static_cast<off_t>(kHeaderBytes)) !=
      static_cast<ssize_t>(len)) {
    return std::nullopt;
  }
  if (XXH3_64bits(payload.data(), payload.size()) != GetU64(header + 4)) return std::nullopt;
  return payload;
}

}  // namespace caas::metering
