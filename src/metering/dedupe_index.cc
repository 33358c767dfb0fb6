#include "metering/dedupe_index.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <stdexcept>

namespace caas::metering {
namespace {
constexpr size_t kInitialSlots = 1 << 10;
// A slot's position comes from the tag's low bits, so that a shard can grow
// without reading the entries (random memory accesses); the shard from the
// top byte.
uint32_t Tag(uint64_t hash) { return static_cast<uint32_t>(hash >> 8); }
size_t ShardOf(uint64_t hash) { return hash >> (64 - 5); }  // 32 shards
}  // namespace

Chunk::Chunk(size_t bytes, bool populate) : data_(nullptr), bytes_(bytes) {
  if (bytes == 0) return;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  ::madvise(p, bytes, MADV_HUGEPAGE);  // a hint; fine if refused
  if (populate) {
    // Writing is what allocates a page (reading maps the shared zero page).
    const size_t step = 4096;
    for (size_t off = 0; off < bytes; off += step) static_cast<volatile char*>(p)[off] = 0;
  }
  data_ = static_cast<char*>(p);
}
Chunk::~Chunk() {
  if (data_) ::munmap(data_, bytes_);
}
Chunk::Chunk(Chunk&& other) noexcept : data_(other.data_), bytes_(other.bytes_) {
  other.data_ = nullptr;
}
Chunk& Chunk::operator=(Chunk&& other) noexcept {
  std::swap(data_, other.data_);
  std::swap(bytes_, other.bytes_);
  return *this;
}

DedupeIndex::DedupeIndex() : chunk_used_(kChunkBytes) {
  for (Shard& s : shards_) {
    s.cur.memory = Chunk(kInitialSlots * sizeof(Slot));  // zeroed: all empty
    s.cur.slots = reinterpret_cast<Slot*>(s.cur.memory.data());
    s.cur.mask = kInitialSlots - 1;
  }
}

DedupeIndex::~DedupeIndex() {
  {
    std::lock_guard lock(pool_mu_);
    pool_stop_ = true;
  }
  pool_cv_.notify_all();
  if (pool_thread_.joinable()) pool_thread_.join();
}

void DedupeIndex::StartPrefaulter() {
  if (!pool_thread_.joinable()) pool_thread_ = std::thread([this] { PrefaultLoop(); });
}

Chunk DedupeIndex::TakeChunk() {
  constexpr size_t kPrefaultAfterChunks = 2;  // small indexes never start the thread
  if (chunks_.size() < kPrefaultAfterChunks) return Chunk(kChunkBytes);
  StartPrefaulter();
  std::unique_lock lock(pool_mu_);
  if (ready_.empty()) {
    lock.unlock();
    pool_cv_.notify_one();
    return Chunk(kChunkBytes);  // the thread fell behind: fault in here
  }
  Chunk c = std::move(ready_.back());
  ready_.pop_back();
  lock.unlock();
  pool_cv_.notify_one();
  return c;
}

void DedupeIndex::RequestTable(Shard& s) {
  constexpr size_t kMinPrefaultBytes = 1 << 20;
  const size_t bytes = (s.cur.mask + 1) * 2 * sizeof(Slot);
  s.table_requested = true;
  if (bytes < kMinPrefaultBytes || chunks_.size() < 2) return;
  StartPrefaulter();
  {
    std::lock_guard lock(pool_mu_);
    table_requests_.push_back(bytes);
  }
  pool_cv_.notify_one();
}

Chunk DedupeIndex::TakeTable(size_t bytes) {
  {
    std::lock_guard lock(pool_mu_);
    auto it = ready_tables_.find(bytes);
    if (it != ready_tables_.end()) {
      Chunk c = std::move(it->second);
      ready_tables_.erase(it);
      return c;
    }
  }
  return Chunk(bytes);  // not asked for, or not ready yet: fault in here
}

void DedupeIndex::PrefaultLoop() {
  constexpr size_t kReady = 2;
  std::unique_lock lock(pool_mu_);
  while (!pool_stop_) {
    if (!table_requests_.empty()) {
      const size_t bytes = table_requests_.back();
      table_requests_.pop_back();
      lock.unlock();
      Chunk t(bytes, /*populate=*/true);
      lock.lock();
      ready_tables_.emplace(bytes, std::move(t));
      continue;
    }
    if (ready_.size() >= kReady) {
      pool_cv_.wait(lock);
      continue;
    }
    lock.unlock();
    Chunk c(kChunkBytes, /*populate=*/true);
    lock.lock();
    ready_.push_back(std::move(c));
  }
}

void DedupeIndex::Reserve(size_t events, size_t key_bytes) {
  const size_t per_shard = events / shards_.size() + 1;
  size_t slots = kInitialSlots;
  while (slots < per_shard * 2) slots *= 2;
  for (Shard& s : shards_) {
    if (s.count != 0 || s.cur.mask + 1 >= slots) continue;
    Table t;
    t.memory = Chunk(slots * sizeof(Slot), /*populate=*/true);
    t.slots = reinterpret_cast<Slot*>(t.memory.data());
    t.mask = slots - 1;
    s.cur = std::move(t);
  }
  const size_t entry_bytes = (sizeof(DedupeEntry) + key_bytes + 7) & ~size_t{7};
  const size_t chunks = events * entry_bytes / kChunkBytes + 1;
  while (spare_chunks_.size() < chunks) spare_chunks_.emplace_back(kChunkBytes, true);
}

void DedupeIndex::Prefetch(uint64_t hash) const {
  const Shard& s = shards_[ShardOf(hash)];
  __builtin_prefetch(&s.cur.slots[Tag(hash) & s.cur.mask]);
}

uint32_t DedupeIndex::Probe(const Table& t, uint64_t hash, std::string_view key,
                            const DedupeIndex& index, uint64_t* empty) {
  const uint32_t tag = Tag(hash);
  for (uint64_t i = tag & t.mask;; i = (i + 1) & t.mask) {
    const Slot& slot = t.slots[i];
    if (slot.ref == 0) {
      if (empty) *empty = i;
      return kNone;
    }
    if (slot.tag != tag) continue;
    const DedupeEntry& e = *index.At(slot.ref);
    if (e.hash == hash && DedupeIndex::key(e) == key) return slot.ref;
  }
}

uint32_t DedupeIndex::Find(uint64_t hash, std::string_view key) const {
  const Shard& s = shards_[ShardOf(hash)];
  uint32_t ref = Probe(s.cur, hash, key, *this);
  if (ref == kNone && s.old.slots != nullptr) ref = Probe(s.old, hash, key, *this);
  if (ref != kNone && (At(ref)->flags & kFailed)) return kNone;
  return ref;
}

void DedupeIndex::MarkFailed(uint32_t ref) {
  DedupeEntry& e = *At(ref);
  if (!(e.flags & kFailed)) ++failed_;
  e.flags = kFailed;
}

void DedupeIndex::Place(Table& t, Slot slot) {
  for (uint64_t i = slot.tag & t.mask;; i = (i + 1) & t.mask) {
    if (t.slots[i].ref == 0) {
      t.slots[i] = slot;
      return;
    }
  }
}

void DedupeIndex::Migrate(Shard& s, size_t slots) {
  const uint64_t size = s.old.mask + 1;
  const uint64_t stop = std::min<uint64_t>(size, s.migrated + slots);
  for (; s.migrated < stop; ++s.migrated) {
    const Slot slot = s.old.slots[s.migrated];
    if (slot.ref != 0) Place(s.cur, slot);
  }
  if (s.migrated == size) s.old = Table{};  // frees the old table
}

uint32_t DedupeIndex::NewEntry(uint64_t hash, std::string_view key, uint64_t lsn, Fingerprint fp) {
  const size_t bytes = (sizeof(DedupeEntry) + key.size() + 7) & ~size_t{7};
  if (chunk_used_ + bytes > kChunkBytes) {
    if ((chunks_.size() + 1) * kChunkBytes / 8 > UINT32_MAX) {
      throw std::length_error("dedupe index full");
    }
    if (spare_chunks_.empty()) {
      chunks_.push_back(TakeChunk());
    } else {
      chunks_.push_back(std::move(spare_chunks_.back()));
      spare_chunks_.pop_back();
    }
    chunk_used_ = chunks_.size() == 1 ? 8 : 0;  // reference 0 means "empty"
  }
  const uint64_t off = (chunks_.size() - 1) * kChunkBytes + chunk_used_;
  chunk_used_ += bytes;
  const auto ref = static_cast<uint32_t>(off / 8);
  DedupeEntry* e = At(ref);
  *e = DedupeEntry{hash, lsn, fp, 0, static_cast<uint32_t>(key.size())};
  std::memcpy(e + 1, key.data(), key.size());
  ++count_;
  return ref;
}

uint32_t DedupeIndex::FindOrInsert(uint64_t hash, std::string_view key, uint64_t lsn,
                                   Fingerprint fp, bool* inserted) {
  Shard& s = shards_[ShardOf(hash)];
  if (s.old.slots != nullptr) Migrate(s, 64);
  if ((s.count + 1) * 2 > s.cur.mask + 1) Grow(s);
  uint64_t empty = 0;
  uint32_t ref = Probe(s.cur, hash, key, *this, &empty);
  if (ref == kNone && s.old.slots != nullptr) ref = Probe(s.old, hash, key, *this);
  if (ref != kNone) {
    DedupeEntry& e = *At(ref);
    if (e.flags & kFailed) {  // a claim that was never written: take it over
      e.lsn = lsn;
      e.fingerprint = fp;
      e.flags = 0;
      --failed_;
      *inserted = true;
      return ref;
    }
    *inserted = false;
    return ref;
  }
  ref = NewEntry(hash, key, lsn, fp);
  ++s.count;
  if (!s.table_requested && s.count * 5 > (s.cur.mask + 1) * 2) RequestTable(s);
  s.cur.slots[empty] = Slot{Tag(hash), ref};
  *inserted = true;
  return ref;
}

// Doubling again before the last migration ended cannot happen (a doubled
// table takes count/2 more inserts to fill to half; the migration needs
// size/64), but finish it first anyway to keep one old table at most.
void DedupeIndex::Grow(Shard& s) {
  if (s.old.slots != nullptr) Migrate(s, SIZE_MAX);
  const size_t size = (s.cur.mask + 1) * 2;
  Table bigger;
  bigger.memory = TakeTable(size * sizeof(Slot));  // zeroed: all empty
  s.table_requested = false;
  bigger.slots = reinterpret_cast<Slot*>(bigger.memory.data());
  bigger.mask = size - 1;
  s.old = std::move(s.cur);
  s.cur = std::move(bigger);
  s.migrated = 0;
}

size_t DedupeIndex::MemoryBytes() const {
  size_t slots = 0;
  for (const Shard& s : shards_) {
    slots += (s.cur.mask + 1) * sizeof(Slot);
    if (s.old.slots != nullptr) slots += (s.old.mask + 1) * sizeof(Slot);
  }
  std::lock_guard lock(pool_mu_);
  size_t tables = 0;
  for (const auto& [bytes, chunk] : ready_tables_) tables += bytes;
  return slots + tables + (chunks_.size() + spare_chunks_.size() + ready_.size()) * kChunkBytes;
}

}  // namespace caas::metering
