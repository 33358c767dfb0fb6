#include "metering/dedupe_index.h"

#include <sys/mman.h>

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
size_t ShardOf(uint64_t hash) { return hash >> 56; }
}  // namespace

Chunk::Chunk(size_t bytes) : data_(nullptr), bytes_(bytes) {
  if (bytes == 0) return;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  ::madvise(p, bytes, MADV_HUGEPAGE);  // a hint; fine if refused
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
    s.memory = Chunk(kInitialSlots * sizeof(Slot));  // zeroed: all empty
    s.slots = reinterpret_cast<Slot*>(s.memory.data());
    s.mask = kInitialSlots - 1;
  }
}

void DedupeIndex::Prefetch(uint64_t hash) const {
  const Shard& s = shards_[ShardOf(hash)];
  __builtin_prefetch(&s.slots[Tag(hash) & s.mask]);
}

uint32_t DedupeIndex::Find(uint64_t hash, std::string_view key) const {
  const Shard& s = shards_[ShardOf(hash)];
  const uint32_t tag = Tag(hash);
  for (uint64_t i = tag & s.mask;; i = (i + 1) & s.mask) {
    const Slot& slot = s.slots[i];
    if (slot.ref == 0) return kNone;
    if (slot.tag != tag) continue;
    const DedupeEntry& e = *At(slot.ref);
    if (e.hash == hash && DedupeIndex::key(e) == key) return slot.ref;
  }
}

uint32_t DedupeIndex::Insert(uint64_t hash, std::string_view key, uint64_t lsn, Fingerprint fp) {
  Shard& s = shards_[ShardOf(hash)];
  if ((s.count + 1) * 2 > s.mask + 1) Grow(s);
  const size_t bytes = (sizeof(DedupeEntry) + key.size() + 7) & ~size_t{7};
  if (chunk_used_ + bytes > kChunkBytes) {
    if ((chunks_.size() + 1) * kChunkBytes / 8 > UINT32_MAX)
      throw std::length_error("dedupe index full");
    chunks_.emplace_back(kChunkBytes);
    chunk_used_ = chunks_.size() == 1 ? 8 : 0;  // reference 0 means "empty"
  }
  const uint64_t off = (chunks_.size() - 1) * kChunkBytes + chunk_used_;
  chunk_used_ += bytes;
  const auto ref = static_cast<uint32_t>(off / 8);
  DedupeEntry* e = At(ref);
  *e = DedupeEntry{hash, lsn, fp, 0, static_cast<uint32_t>(key.size())};
  std::memcpy(e + 1, key.data(), key.size());
  ++count_;
  ++s.count;
  for (uint64_t i = Tag(hash) & s.mask;; i = (i + 1) & s.mask) {
    if (s.slots[i].ref == 0) {
      s.slots[i] = Slot{Tag(hash), ref};
      return ref;
    }
  }
}

void DedupeIndex::Grow(Shard& s) {
  const size_t size = (s.mask + 1) * 2;
  Chunk memory(size * sizeof(Slot));  // zeroed: all empty
  Slot* bigger = reinterpret_cast<Slot*>(memory.data());
  const uint64_t mask = size - 1;
  for (uint64_t j = 0; j <= s.mask; ++j) {
    const Slot old = s.slots[j];
    if (old.ref == 0) continue;
    for (uint64_t i = old.tag & mask;; i = (i + 1) & mask) {
      if (bigger[i].ref == 0) {
        bigger[i] = old;
        break;
      }
    }
  }
  s.memory = std::move(memory);
  s.slots = bigger;
  s.mask = mask;
}

size_t DedupeIndex::MemoryBytes() const {
  size_t slots = 0;
  for (const Shard& s : shards_) slots += (s.mask + 1) * sizeof(Slot);
  return slots + chunks_.size() * kChunkBytes;
}

}  // namespace caas::metering
