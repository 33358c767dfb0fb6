#include "core/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace caas {
namespace {

Status Fail(const std::string& what, int err) {
  return Error::Make(ErrorCode::kUnavailable, what + ": " + std::strerror(err));
}

}  // namespace

Status FlushGroup::Flush(const std::string& dir) {
  std::unique_lock lock(mu_);
  Dir& d = dirs_[dir];  // std::map: the reference stays valid
  const uint64_t ticket = ++d.requested;
  for (;;) {
    if (d.done >= ticket) {
      if (ticket <= d.failed_at) return Error::Make(ErrorCode::kUnavailable, d.error);
      return Status::Ok();
    }
    if (!d.flushing) break;
    cv_.wait(lock);
  }
  // No flush of this directory under way: this caller flushes for every
  // ticket so far. Those who come after its fsync started wait for the next.
  d.flushing = true;
  const uint64_t covers = d.requested;
  lock.unlock();
  int err = 0;
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    err = errno;
  } else {
    if (::fsync(fd) != 0) err = errno;
    ::close(fd);
  }
  lock.lock();
  d.flushing = false;
  d.done = covers;
  ++flushes_;
  if (err != 0) {
    d.failed_at = covers;
    d.error = "fsync " + dir + ": " + std::strerror(err);
  }
  cv_.notify_all();
  if (err != 0) return Error::Make(ErrorCode::kUnavailable, d.error);
  return Status::Ok();
}

uint64_t FlushGroup::flushes() const {
  std::lock_guard lock(mu_);
  return flushes_;
}

Status WriteFileDurably(FlushGroup& group, const std::string& path, std::string_view bytes) {
  const std::filesystem::path p(path);
  std::error_code ec;
  const std::string dir = p.has_parent_path() ? p.parent_path().string() : std::string(".");
  if (!std::filesystem::is_directory(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return Error::Make(ErrorCode::kUnavailable, "mkdir " + dir + ": " + ec.message());
    // The new directory's own name is durable too.
    const std::filesystem::path parent = std::filesystem::path(dir).parent_path();
    if (!parent.empty()) {
      if (Status s = group.Flush(parent.string()); !s) return s;
    }
  }
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return Fail("open " + tmp, errno);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = Fail("write " + tmp, errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    done += static_cast<size_t>(n);
  }
  // The bytes are durable before the name points at them...
  if (::fdatasync(fd) != 0) {
    Status s = Fail("fdatasync " + tmp, errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  if (::close(fd) != 0) {
    Status s = Fail("close " + tmp, errno);
    ::unlink(tmp.c_str());
    return s;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = Fail("rename " + tmp, errno);
    ::unlink(tmp.c_str());
    return s;
  }
  // ...and the name is durable before the caller records it.
  return group.Flush(dir);
}

}  // namespace caas
