// The exact dedupe index of usage events: (tenant, source, id) -> where the
// event is in the log and a fingerprint of what it said.
//
// 256 shards (by the hash's top byte), each an open-addressing table with
// linear probing over 8-byte slots (a 32-bit hash tag and an entry number),
// kept at most half full. Shards grow one at a time, so a resize moves 1/256
// of the index and never stalls ingest for long. Entries keep the full 64-bit
// hash and the key bytes, so a match is always confirmed on the whole key: no
// probabilistic answers. Each entry is stored with its key right behind it
// (one cache miss confirms a match) in an arena of 32 MiB chunks that are
// never moved (no reallocation copies) and are backed by transparent huge pages
// where the kernel allows (fewer page faults at millions of inserts per
// second). The hash is seeded per process (no hash flooding).
// Not thread-safe: the metering engine guards it with its ingest lock.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace caas::metering {

struct Fingerprint {
  uint64_t lo = 0;
  uint64_t hi = 0;
  bool operator==(const Fingerprint&) const = default;
};

// One entry, followed in memory by its key bytes; 8-byte aligned.
struct DedupeEntry {
  uint64_t hash;
  uint64_t lsn;  // the event's record in the log
  Fingerprint fingerprint;
  uint32_t flags;  // kVoided
  uint32_t key_len;
};

// A block of anonymous memory, huge-page backed when possible. Not zeroed by
// us (the kernel hands out zeroed pages).
class Chunk {
 public:
  explicit Chunk(size_t bytes);
  ~Chunk();
  Chunk(Chunk&& other) noexcept;
  Chunk& operator=(Chunk&& other) noexcept;
  Chunk(const Chunk&) = delete;
  char* data() const { return data_; }

 private:
  char* data_;
  size_t bytes_;
};

class DedupeIndex {
 public:
  static constexpr uint32_t kVoided = 1;
  static constexpr uint32_t kNone = 0;

  DedupeIndex();
  // Starts loading the slot `hash` would probe first (software pipelining:
  // call it a few keys ahead of Find/Insert).
  void Prefetch(uint64_t hash) const;
  // The reference of the entry for `key`, or kNone.
  uint32_t Find(uint64_t hash, std::string_view key) const;
  // Adds `key` (which must be absent) and returns its entry's reference.
  uint32_t Insert(uint64_t hash, std::string_view key, uint64_t lsn, Fingerprint fp);
  DedupeEntry& entry(uint32_t ref) { return *At(ref); }
  const DedupeEntry& entry(uint32_t ref) const { return *At(ref); }
  static std::string_view key(const DedupeEntry& e) {
    return {reinterpret_cast<const char*>(&e + 1), e.key_len};
  }
  size_t size() const { return count_; }
  size_t MemoryBytes() const;

 private:
  struct Slot {
    uint32_t tag;
    uint32_t ref;  // the entry's position in the arena / 8; 0: empty
  };
  struct Shard {
    Chunk memory{0};
    Slot* slots = nullptr;
    uint64_t mask = 0;  // slot count - 1
    size_t count = 0;
  };
  static constexpr size_t kChunkBytes = 32 << 20;
  DedupeEntry* At(uint32_t ref) const {
    const uint64_t off = static_cast<uint64_t>(ref) * 8;
    return reinterpret_cast<DedupeEntry*>(chunks_[off / kChunkBytes].data() + off % kChunkBytes);
  }
  void Grow(Shard& shard);

  std::array<Shard, 256> shards_;
  std::vector<Chunk> chunks_;  // the arena: entries and their keys
  size_t chunk_used_;
  size_t count_ = 0;
};

}  // namespace caas::metering
