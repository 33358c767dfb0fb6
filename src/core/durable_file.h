// Whole files written atomically and durably, with the directory flushes
// shared.
//
// A file is written under a temporary name, its bytes flushed (fdatasync),
// renamed over its final name, and the directory flushed (fsync), so a crash
// leaves the old file or the new one, never half of one. Month-end writes
// thousands of files into a few directories from several threads at once:
// writers of one FlushGroup share the directory flush. One fsync of the
// directory makes durable every rename made in it before the call, and every
// writer that was waiting when it started returns with it (group commit, as
// the store does for its writes). (syncfs(2) of the whole filesystem was
// tried for the file bytes as well: on this machine it was slower.)
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "core/status.h"

namespace caas {

class FlushGroup {
 public:
  FlushGroup() = default;
  FlushGroup(const FlushGroup&) = delete;
  FlushGroup& operator=(const FlushGroup&) = delete;

  // Returns once every change to directory `dir` made before the call is
  // durable: by a flush started after the call, this caller's or another's.
  Status Flush(const std::string& dir);

  // Flushes made so far (for tests and benchmarks).
  uint64_t flushes() const;

 private:
  struct Dir {
    uint64_t requested = 0;  // tickets handed out
    uint64_t done = 0;       // every ticket up to this one is answered
    uint64_t failed_at = 0;  // tickets up to this one saw `error`
    std::string error;
    bool flushing = false;
  };
  mutable std::mutex mu_;  // guards dirs_, flushes_
  std::condition_variable cv_;
  std::map<std::string, Dir, std::less<>> dirs_;
  uint64_t flushes_ = 0;
};

// Writes `bytes` to `path` atomically and durably (see above); creates the
// parent directory. kUnavailable naming the step and errno on failure, and
// no temporary file is left behind.
Status WriteFileDurably(FlushGroup& group, const std::string& path, std::string_view bytes);

}  // namespace caas
