#include "metering/dedupe_index.h"

#include <cstring>

namespace caas::metering {
namespace {
constexpr size_t kChunkBytes = 4 << 20;
constexpr size_t kInitialSlots = 1 << 16;
uint32_t Tag(uint64_t hash) { return static_cast<uint32_t>(hash >> 32); }
}  // namespace

DedupeIndex::DedupeIndex()
    : slots_(kInitialSlots, Slot{0, 0}), mask_(kInitialSlots - 1), chunk_used_(kChunkBytes) {}

uint32_t DedupeIndex::Find(uint64_t hash, std::string_view key) const {
  const uint32_t tag = Tag(hash);
  for (uint64_t i = hash & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.entry_plus1 == 0) return kNone;
    if (s.tag != tag) continue;
    const DedupeEntry& e = entries_[s.entry_plus1 - 1];
    if (e.hash == hash && this->key(e) == key) return s.entry_plus1 - 1;
  }
}

uint32_t DedupeIndex::Insert(uint64_t hash, std::string_view key, uint64_t lsn, Fingerprint fp) {
  if ((entries_.size() + 1) * 4 > slots_.size() * 3) Grow();
  const auto n = static_cast<uint32_t>(entries_.size());
  entries_.push_back(
      DedupeEntry{hash, lsn, fp, StoreKey(key), static_cast<uint32_t>(key.size()), 0});
  for (uint64_t i = hash & mask_;; i = (i + 1) & mask_) {
    if (slots_[i].entry_plus1 == 0) {
      slots_[i] = Slot{Tag(hash), n + 1};
      return n;
    }
  }
}

void DedupeIndex::Grow() {
  std::vector<Slot> bigger(slots_.size() * 2, Slot{0, 0});
  const uint64_t mask = bigger.size() - 1;
  for (uint32_t n = 0; n < entries_.size(); ++n) {
    for (uint64_t i = entries_[n].hash & mask;; i = (i + 1) & mask) {
      if (bigger[i].entry_plus1 == 0) {
        bigger[i] = Slot{Tag(entries_[n].hash), n + 1};
        break;
      }
    }
  }
  slots_.swap(bigger);
  mask_ = mask;
}

uint64_t DedupeIndex::StoreKey(std::string_view key) {
  if (chunk_used_ + key.size() > kChunkBytes) {
    chunks_.push_back(std::make_unique<char[]>(kChunkBytes));
    chunk_used_ = 0;
  }
  const uint64_t ref = (chunks_.size() - 1) * kChunkBytes + chunk_used_;
  std::memcpy(chunks_.back().get() + chunk_used_, key.data(), key.size());
  chunk_used_ += key.size();
  return ref;
}

std::string_view DedupeIndex::key(const DedupeEntry& e) const {
  return {chunks_[e.key_ref / kChunkBytes].get() + e.key_ref % kChunkBytes, e.key_len};
}

size_t DedupeIndex::MemoryBytes() const {
  return slots_.capacity() * sizeof(Slot) + entries_.capacity() * sizeof(DedupeEntry) +
         chunks_.size() * kChunkBytes;
}

}  // namespace caas::metering
