// The exact dedupe index of usage events: (tenant, source, id) -> where the
// event is in the log and a fingerprint of what it said.
//
// Open addressing with linear probing over 8-byte slots (a 32-bit hash tag
// and an entry number); entries keep the full 64-bit hash and the key bytes
// (in an arena), so that a match is always confirmed on the whole key: no
// probabilistic answers. The hash is seeded per process (no hash flooding).
// Not thread-safe: the metering engine guards it with its ingest lock.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace caas::metering {

struct Fingerprint {
  uint64_t lo = 0;
  uint64_t hi = 0;
  bool operator==(const Fingerprint&) const = default;
};

struct DedupeEntry {
  uint64_t hash;
  uint64_t lsn;  // the event's record in the log
  Fingerprint fingerprint;
  uint64_t key_ref;  // arena position
  uint32_t key_len;
  uint32_t flags;  // kVoided
};

class DedupeIndex {
 public:
  static constexpr uint32_t kVoided = 1;
  static constexpr uint32_t kNone = UINT32_MAX;

  DedupeIndex();
  // The entry number for `key`, or kNone.
  uint32_t Find(uint64_t hash, std::string_view key) const;
  // Adds `key` (which must be absent) and returns its entry number.
  uint32_t Insert(uint64_t hash, std::string_view key, uint64_t lsn, Fingerprint fp);
  DedupeEntry& entry(uint32_t n) { return entries_[n]; }
  const DedupeEntry& entry(uint32_t n) const { return entries_[n]; }
  std::string_view key(const DedupeEntry& e) const;
  size_t size() const { return entries_.size(); }
  size_t MemoryBytes() const;

 private:
  struct Slot {
    uint32_t tag;
    uint32_t entry_plus1;  // 0: empty
  };
  void Grow();
  uint64_t StoreKey(std::string_view key);

  std::vector<Slot> slots_;
  uint64_t mask_;
  std::vector<DedupeEntry> entries_;
  std::vector<std::unique_ptr<char[]>> chunks_;
  size_t chunk_used_;
};

}  // namespace caas::metering
