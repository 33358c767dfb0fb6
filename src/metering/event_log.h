// The durable usage-event log: append-only segment files of checksummed
// records, written by one thread with one fdatasync per group of records
// (group commit). A record's LSN is its byte position in the whole log.
//
// Crash safety: a record is durable once WriteAndSync returns. After a crash
// the last segment may end in a partly written record; Open() cuts the log
// back to the last whole record (it was never acknowledged). A bad record
// anywhere else is corruption and stops the start.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace caas::metering {

class LogCorruption : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class EventLog {
 public:
  // Frame overhead: u32 length + u64 checksum (XXH3-64 of the payload).
  static constexpr size_t kHeaderBytes = 12;
  static constexpr size_t kMaxRecordBytes = 64 << 10;

  EventLog(std::string dir, uint64_t segment_bytes = 256ull << 20);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Opens the directory (creating it) and calls `fn` for every whole record
  // in LSN order. Throws LogCorruption or std::system_error.
  void Open(const std::function<void(uint64_t lsn, std::string_view payload)>& fn);

  // Appends one framed record to `buffer` (for a later WriteAndSync).
  static void Frame(std::string* buffer, std::string_view payload);

  // Writes framed records at the end of the log and makes them durable.
  // Single writer. An I/O error here ends the process (after an fsync
  // failure the page cache can no longer be trusted).
  void WriteAndSync(std::string_view framed);

  uint64_t end_lsn() const { return end_lsn_; }
  // The payload of the durable record at `lsn`.
  std::optional<std::string> Read(uint64_t lsn) const;

  const std::string& dir() const { return dir_; }

 private:
  void OpenNewSegment(uint64_t start_lsn);
  [[noreturn]] static void Fatal(const std::string& what);

  std::string dir_;
  uint64_t segment_bytes_;
  uint64_t end_lsn_ = 0;
  int write_fd_ = -1;
  uint64_t write_segment_start_ = 0;
  mutable std::mutex segments_mu_;
  std::map<uint64_t, int> segments_;  // start LSN -> read fd; guarded by segments_mu_
};

}  // namespace caas::metering
