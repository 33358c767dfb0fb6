// The file operations of the event log, behind one seam (leveldb's Env), so
// tests can fail a write, fail an fdatasync or tear a write at any step.
// Every call returns what the POSIX call returns, with errno set on failure.
#pragma once

#include <sys/types.h>

#include <string>

namespace caas::metering {

class LogEnv {
 public:
  virtual ~LogEnv() = default;
  virtual int Open(const std::string& path, int flags, mode_t mode);
  virtual ssize_t Write(int fd, const void* data, size_t n);
  virtual ssize_t PRead(int fd, void* data, size_t n, off_t offset);
  virtual int Fdatasync(int fd);
  virtual int Ftruncate(int fd, off_t length);
  virtual int Close(int fd);
  // fsync of a directory (a new or renamed entry in it becomes durable).
  virtual int SyncDir(const std::string& dir);
  virtual int Rename(const std::string& from, const std::string& to);

  // The real file system.
  static LogEnv& Default();
};

}  // namespace caas::metering
