#include "storage/document_store.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace caas::storage {

std::string SortableTime(int64_t micros) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020lld", static_cast<long long>(micros < 0 ? 0 : micros));
  return buf;
}

std::optional<int64_t> ParseSortableTime(std::string_view text) {
  if (text.size() != 20) return std::nullopt;
  int64_t v = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size()) return std::nullopt;
  return v;
}

std::optional<Instant> EarliestTime(DocumentStore& store, std::string_view collection,
                                    const std::string& key) {
  KeyRangeQuery q;
  q.key = key;
  q.limit = 1;
  auto page = store.ListByKey(collection, q);
  if (page.items.empty()) return std::nullopt;
  auto us = ParseSortableTime(page.items.front().value);
  if (!us) return std::nullopt;
  return Instant(Micros(*us));
}

KeyedPage DueBy(DocumentStore& store, std::string_view collection, const std::string& key,
                Instant until, int limit) {
  KeyRangeQuery q;
  q.key = key;
  q.at_most = SortableTime(until.time_since_epoch().count());
  q.limit = limit;
  return store.ListByKey(collection, q);
}

std::vector<std::string> DueIds(DocumentStore& store, std::string_view collection,
                                const std::string& key, Instant until, size_t limit) {
  std::vector<std::string> out;
  KeyRangeQuery q;
  q.key = key;
  q.at_most = SortableTime(until.time_since_epoch().count());
  while (out.size() < limit) {
    q.limit = static_cast<int>(std::min<size_t>(limit - out.size(), 1000));
    auto page = store.ListByKey(collection, q);
    for (auto& item : page.items) out.push_back(std::move(item.doc.id));
    if (!page.has_more || page.items.empty()) break;
    q.after_value = page.items.back().value;
    q.after_id = out.back();
  }
  return out;
}

}  // namespace caas::storage
