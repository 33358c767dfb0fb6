// The durable usage-event log: append-only segment files, written by one
// thread in groups, one fdatasync per group (group commit). A record's LSN is
// its position in the log's byte space (segment file headers are outside it).
//
// Format (docs/metering.md, "The log"):
//   segment file  = file header (16 bytes: "CAASLOG" 0x02, u64 start LSN),
//                   then groups
//   group         = u32 magic, u32 body length, u64 XXH3-64 of the body, body
//   body          = records: u32 length, u64 XXH3-64 of the payload, payload
// Segments written before groups existed (no file header, records back to
// back) are still read.
//
// Crash safety. A group is written only after the previous group's fdatasync
// returned, so everything before the last group in the newest segment was
// durable. On Open():
// - a damaged last group of the newest segment, with no intact group after
//   it, was never acknowledged (a torn tail): it is cut off, with a warning;
// - damage anywhere else (an intact group after it, or in an older segment),
//   a missing segment, or a segment out of place is corruption: Open() throws
//   LogCorruption naming the segment and the byte offset, and nothing is
//   changed. `caas-billing doctor` reports it and can salvage every intact
//   record (log_doctor.h).
// `events/MANIFEST` records the first and the last segment ever created, so a
// deleted segment is detected too; after a clean shutdown (Close()) it also
// records where the log ends, so then even damage to the last group, or a
// cut-off tail, is corruption rather than a torn write.
//
// Writes: a failed write (no space left) is cut back off the file and
// reported to the caller; nothing of it was acknowledged. A failed fdatasync
// ends the process: the page cache can no longer be trusted, and a restart
// recovers from what is on disk.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "metering/log_env.h"

namespace caas::metering {

class LogCorruption : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class EventLog {
 public:
  // Record frame: u32 length + u64 checksum (XXH3-64 of the payload).
  static constexpr size_t kRecordHeaderBytes = 12;
  static constexpr size_t kGroupHeaderBytes = 16;
  static constexpr size_t kFileHeaderBytes = 16;
  static constexpr size_t kMaxRecordBytes = 64 << 10;
  static constexpr uint32_t kGroupMagic = 0xC4A5'6201;

  explicit EventLog(std::string dir, uint64_t segment_bytes = 256ull << 20,
                    LogEnv& env = LogEnv::Default());
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Opens the directory (creating it) and calls `fn` for every record in LSN
  // order. Throws LogCorruption or std::system_error.
  void Open(const std::function<void(uint64_t lsn, std::string_view payload)>& fn);

  // A group is built in a buffer: StartGroup() reserves its header (which
  // takes LSN space), Frame() appends records, WriteAndSync() fills the header
  // in and writes.
  static void StartGroup(std::string* buffer);
  static void Frame(std::string* buffer, std::string_view payload);

  // Writes one group at the end of the log and makes it durable. Single
  // writer. A failed write leaves the log as it was and returns the error
  // (kUnavailable); a failed fdatasync ends the process.
  Status WriteAndSync(std::string& group);

  // Records that the log ends at end_lsn(), all of it durable (a clean
  // shutdown). The next Open() holds the log to it.
  void Close();

  uint64_t end_lsn() const { return end_lsn_; }
  // The payload of the durable record at `lsn`.
  std::optional<std::string> Read(uint64_t lsn) const;

  const std::string& dir() const { return dir_; }

  // What is damaged in a log, without changing anything (doctor).
  struct Damage {
    std::string segment;        // file name
    uint64_t offset = 0;        // byte offset in the file
    std::string what;           // which check failed
    uint64_t intact_after = 0;  // bytes of intact groups/records found after it
    bool torn_tail = false;     // the newest segment's last group, nothing intact after
  };
  struct Report {
    std::vector<std::string> segments;
    uint64_t records = 0;
    uint64_t bytes = 0;
    std::vector<Damage> damage;  // includes missing or misplaced segments
  };
  static Report Verify(const std::string& dir);
  // Every intact record of every segment, in order, whatever the damage
  // around it (doctor --salvage).
  static void ScanIntact(const std::string& dir,
                         const std::function<void(std::string_view payload)>& fn);

 private:
  struct Segment {
    int fd = -1;          // read descriptor
    bool legacy = false;  // no file header, no groups
  };
  Status OpenNewSegment(uint64_t start_lsn);
  Status WriteManifest(uint64_t first, uint64_t last, std::optional<uint64_t> clean_end = {});
  [[noreturn]] static void Fatal(const std::string& what);
  size_t HeaderBytes(bool legacy) const { return legacy ? 0 : kFileHeaderBytes; }

  std::string dir_;
  uint64_t segment_bytes_;
  LogEnv& env_;
  uint64_t end_lsn_ = 0;
  uint64_t first_lsn_ = 0;  // start of the first segment
  int write_fd_ = -1;
  uint64_t write_segment_start_ = 0;
  bool write_legacy_ = true;              // the last segment cannot take groups: start a new one
  mutable std::mutex segments_mu_;        // guards segments_
  std::map<uint64_t, Segment> segments_;  // by start LSN; guarded by segments_mu_
};

}  // namespace caas::metering
