// The exact dedupe index of usage events: (tenant, source, id) -> where the
// event is in the log and a fingerprint of what it said.
//
// - 32 shards (by the hash's top bits), each an open-addressing table with
//   linear probing over 8-byte slots (a 32-bit hash tag and an entry
//   reference), kept at most half full and grown incrementally (see Shard).
// - Exact: entries keep the full 64-bit hash and the key bytes, so a match is
//   always confirmed on the whole key; no probabilistic answers.
// - Each entry is stored with its key right behind it (one cache miss
//   confirms a match) in an arena of 32 MiB chunks that never move.
// - Memory is backed by transparent huge pages where the kernel allows: every
//   lookup of a new key is a random access, and without huge pages each one
//   also misses the TLB (measured: ingest fell from 1.1M to 0.7M events/s as
//   the index grew).
// - A background thread faults in the next chunks and tables ahead of need
//   (see PrefaultLoop), so first-touch page faults stay out of the ingest
//   lock.
// - The hash is seeded per process (no hash flooding).
// Not thread-safe: the metering engine guards it with its ingest lock.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string_view>
#include <thread>
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
  // `populate`: fault every page in now (MAP_POPULATE), so that first use
  // costs no page faults.
  explicit Chunk(size_t bytes, bool populate = false);
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
  // A claim whose record was never written (the write failed): treated as
  // absent; the next insert of its key takes the entry over.
  static constexpr uint32_t kFailed = 2;
  static constexpr uint32_t kNone = 0;

  DedupeIndex();
  ~DedupeIndex();
  DedupeIndex(const DedupeIndex&) = delete;
  DedupeIndex& operator=(const DedupeIndex&) = delete;
  // Sizes the tables and pre-faults the memory for `events` keys of about
  // `key_bytes` each, so that ingesting them later neither grows a table nor
  // takes page faults (on a VM, first-touch faults cost the ingest path up
  // to a fifth of its CPU). Call before the first Insert.
  void Reserve(size_t events, size_t key_bytes);
  // Starts loading the slot `hash` would probe first (software pipelining:
  // call it a few keys ahead of Find/Insert).
  void Prefetch(uint64_t hash) const;
  // The reference of the entry for `key`, or kNone (also for a failed claim).
  uint32_t Find(uint64_t hash, std::string_view key) const;
  // The entry for `key` if present (*inserted = false); else adds it, in one
  // probe sequence, and returns the new entry (*inserted = true).
  uint32_t FindOrInsert(uint64_t hash, std::string_view key, uint64_t lsn, Fingerprint fp,
                        bool* inserted);
  DedupeEntry& entry(uint32_t ref) { return *At(ref); }
  const DedupeEntry& entry(uint32_t ref) const { return *At(ref); }
  static std::string_view key(const DedupeEntry& e) {
    return {reinterpret_cast<const char*>(&e + 1), e.key_len};
  }
  // Marks a claim whose record could not be written (kFailed).
  void MarkFailed(uint32_t ref);
  size_t size() const { return count_ - failed_; }
  size_t MemoryBytes() const;

 private:
  struct Slot {
    uint32_t tag;
    uint32_t ref;  // the entry's position in the arena / 8; 0: empty
  };
  struct Table {
    Chunk memory{0};
    Slot* slots = nullptr;
    uint64_t mask = 0;  // slot count - 1
  };
  // A shard grows incrementally: a doubled table takes new entries at once
  // and the old one is copied over a few slots per insert (so no insert ever
  // stalls on a whole rehash). Until the copy is done lookups also probe the
  // old table, which stays intact (clearing its slots would cut probe chains).
  struct Shard {
    Table cur;
    Table old;              // being migrated when old.slots != nullptr
    uint64_t migrated = 0;  // old slots copied so far
    size_t count = 0;
    bool table_requested = false;  // a bigger table is being faulted in ahead
  };
  // The entry for `key` in `t`, or kNone; `*empty` gets the slot where a
  // probe for it stopped (where it would be inserted).
  static uint32_t Probe(const Table& t, uint64_t hash, std::string_view key,
                        const DedupeIndex& index, uint64_t* empty = nullptr);
  uint32_t NewEntry(uint64_t hash, std::string_view key, uint64_t lsn, Fingerprint fp);
  static void Place(Table& t, Slot slot);
  void Migrate(Shard& shard, size_t slots);
  static constexpr size_t kChunkBytes = 32 << 20;
  DedupeEntry* At(uint32_t ref) const {
    const uint64_t off = static_cast<uint64_t>(ref) * 8;
    return reinterpret_cast<DedupeEntry*>(chunks_[off / kChunkBytes].data() + off % kChunkBytes);
  }
  void Grow(Shard& shard);

  std::array<Shard, 32> shards_;
  std::vector<Chunk> chunks_;        // the arena: entries and their keys
  std::vector<Chunk> spare_chunks_;  // reserved, not used yet
  // Once the index outgrows its first chunks, a background thread keeps two
  // arena chunks faulted in ahead of need, so that the first-touch page
  // faults (zeroing 32 MiB each) happen outside the ingest lock.
  // Shard tables too: at 40% load a shard asks for its next (doubled)
  // table, which the thread faults in before the shard reaches 50%.
  Chunk TakeChunk();
  Chunk TakeTable(size_t bytes);
  void RequestTable(Shard& s);
  void StartPrefaulter();
  void PrefaultLoop();
  mutable std::mutex pool_mu_;  // guards ready_, table_requests_, ready_tables_
  std::condition_variable pool_cv_;
  std::vector<Chunk> ready_;                   // guarded by pool_mu_
  std::vector<size_t> table_requests_;         // guarded by pool_mu_
  std::multimap<size_t, Chunk> ready_tables_;  // by size; guarded by pool_mu_
  bool pool_stop_ = false;
  std::thread pool_thread_;
  size_t chunk_used_;
  size_t count_ = 0;
  size_t failed_ = 0;  // entries marked kFailed
};

}  // namespace caas::metering
