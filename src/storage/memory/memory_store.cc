#include "storage/memory/memory_store.h"

#include <algorithm>

namespace caas::storage {

MemoryStore::MemoryStore(std::vector<CollectionSpec> specs) {
  for (auto& s : specs) {
    std::string name = s.name;
    collections_.emplace(std::move(name), Collection{std::move(s), {}});
  }
}

MemoryStore::Collection& MemoryStore::Find(std::string_view name) {
  auto it = collections_.find(name);
  if (it == collections_.end()) {
    throw StorageError("undeclared collection " + std::string(name), false);
  }
  return it->second;
}

std::optional<std::string> MemoryStore::TakenUniqueKey(const Collection& c, const Document& doc) {
  for (const auto& k : c.spec.keys) {
    if (!k.unique) continue;
    auto mine = doc.keys.find(k.name);
    if (mine == doc.keys.end()) continue;
    for (const auto& [id, other] : c.docs) {
      if (id == doc.id) continue;
      auto theirs = other.keys.find(k.name);
      if (theirs != other.keys.end() && theirs->second == mine->second) return k.name;
    }
  }
  return std::nullopt;
}

Status MemoryStore::Insert(std::string_view collection, const Document& doc) {
  std::lock_guard lock(mu_);
  Collection& c = Find(collection);
  if (c.docs.count(doc.id) != 0) {
    return Error{ErrorCode::kAlreadyExists, "id is taken", "id"};
  }
  if (auto key = TakenUniqueKey(c, doc)) {
    return Error{ErrorCode::kAlreadyExists, *key + " is taken", *key};
  }
  Document stored = doc;
  stored.version = 1;
  c.docs.emplace(doc.id, std::move(stored));
  return Status::Ok();
}

Result<Document> MemoryStore::Get(std::string_view collection, std::string_view id) {
  std::lock_guard lock(mu_);
  Collection& c = Find(collection);
  auto it = c.docs.find(id);
  if (it == c.docs.end()) return Error::NotFound("no such document");
  Document d = it->second;
  d.keys.clear();
  return d;
}

Result<Document> MemoryStore::FindUnique(std::string_view collection, std::string_view key,
                                         std::string_view value) {
  std::lock_guard lock(mu_);
  Collection& c = Find(collection);
  for (const auto& [id, doc] : c.docs) {
    auto k = doc.keys.find(std::string(key));
    if (k != doc.keys.end() && k->second == value) {
      Document d = doc;
      d.keys.clear();
      return d;
    }
  }
  return Error::NotFound("no such document");
}

Result<int64_t> MemoryStore::Replace(std::string_view collection, const Document& doc,
                                     int64_t expected_version) {
  std::lock_guard lock(mu_);
  Collection& c = Find(collection);
  auto it = c.docs.find(doc.id);
  if (it == c.docs.end()) return Error::NotFound("no such document");
  if (it->second.version != expected_version) {
    return Error::Make(ErrorCode::kConflict, "the document was changed concurrently");
  }
  if (auto key = TakenUniqueKey(c, doc)) {
    return Error{ErrorCode::kAlreadyExists, *key + " is taken", *key};
  }
  Document stored = doc;
  stored.version = expected_version + 1;
  it->second = std::move(stored);
  return expected_version + 1;
}

Status MemoryStore::Delete(std::string_view collection, std::string_view id,
                           int64_t expected_version) {
  std::lock_guard lock(mu_);
  Collection& c = Find(collection);
  auto it = c.docs.find(id);
  if (it == c.docs.end()) return Error::NotFound("no such document");
  if (it->second.version != expected_version) {
    return Error::Make(ErrorCode::kConflict, "the document was changed concurrently");
  }
  c.docs.erase(it);
  return Status::Ok();
}

Page MemoryStore::List(std::string_view collection, const ListQuery& query) {
  std::lock_guard lock(mu_);
  Collection& c = Find(collection);
  Page page;
  auto it =
      query.starting_after.empty() ? c.docs.begin() : c.docs.upper_bound(query.starting_after);
  for (; it != c.docs.end(); ++it) {
    if (query.where_key) {
      auto k = it->second.keys.find(*query.where_key);
      if (k == it->second.keys.end() || k->second != query.where_value) continue;
    }
    if (static_cast<int>(page.items.size()) == query.limit) {
      page.has_more = true;
      break;
    }
    Document d = it->second;
    d.keys.clear();
    page.items.push_back(std::move(d));
  }
  return page;
}

KeyedPage MemoryStore::ListByKey(std::string_view collection, const KeyRangeQuery& query) {
  std::lock_guard lock(mu_);
  Collection& c = Find(collection);
  std::vector<std::pair<std::string, const Document*>> hits;
  for (const auto& [id, doc] : c.docs) {
    auto k = doc.keys.find(query.key);
    if (k == doc.keys.end()) continue;
    const std::string& v = k->second;
    if (query.at_most && v > *query.at_most) continue;
    if (v < query.after_value || (v == query.after_value && id <= query.after_id)) continue;
    hits.emplace_back(v, &doc);
  }
  std::sort(hits.begin(), hits.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second->id < b.second->id;
  });
  KeyedPage page;
  const size_t limit = static_cast<size_t>(std::clamp(query.limit, 1, 1000));
  for (const auto& [v, doc] : hits) {
    if (page.items.size() == limit) {
      page.has_more = true;
      break;
    }
    Document d = *doc;
    d.keys.clear();
    page.items.push_back(KeyedDocument{std::move(d), v});
  }
  return page;
}

}  // namespace caas::storage
