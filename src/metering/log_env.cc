#include "metering/log_env.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace caas::metering {

int LogEnv::Open(const std::string& path, int flags, mode_t mode) {
  return ::open(path.c_str(), flags | O_CLOEXEC, mode);
}
ssize_t LogEnv::Write(int fd, const void* data, size_t n) { return ::write(fd, data, n); }
ssize_t LogEnv::PRead(int fd, void* data, size_t n, off_t offset) {
  return ::pread(fd, data, n, offset);
}
int LogEnv::Fdatasync(int fd) { return ::fdatasync(fd); }
int LogEnv::Ftruncate(int fd, off_t length) { return ::ftruncate(fd, length); }
int LogEnv::Close(int fd) { return ::close(fd); }
int LogEnv::SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  const int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  errno = e;
  return rc;
}
int LogEnv::Rename(const std::string& from, const std::string& to) {
  return std::rename(from.c_str(), to.c_str());
}

LogEnv& LogEnv::Default() {
  static LogEnv env;
  return env;
}

}  // namespace caas::metering
