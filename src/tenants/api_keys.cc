#include "tenants/api_keys.h"

#include <boost/json.hpp>

#include "core/hash.h"

namespace caas::tenants {
namespace json = boost::json;

namespace {

constexpr std::string_view kSecretPrefix = "caas_sk_";
constexpr size_t kShownPrefixLength = 12;
constexpr size_t kMaxCacheEntries = 100000;

}  // namespace

json::object ApiKeyToJson(const ApiKey& k) {
  json::object o;
  o["id"] = k.id;
  o["object"] = "api_key";
  o["kind"] = k.kind == KeyKind::kAdmin ? "admin" : "tenant";
  o["tenant_id"] = k.tenant_id.empty() ? json::value(nullptr) : json::value(k.tenant_id);
  o["name"] = k.name;
  o["prefix"] = k.prefix;
  o["created_at"] = FormatRfc3339(k.created_at);
  o["revoked_at"] = k.revoked_at ? json::value(FormatRfc3339(*k.revoked_at)) : json::value(nullptr);
  return o;
}

namespace {

Result<ApiKey> FromDocument(const storage::Document& d) {
  json::error_code ec;
  json::value v = json::parse(d.body, ec);
  if (ec || !v.is_object()) throw storage::CorruptDocument("api_keys", d.id, "not a JSON object");
  const auto& o = v.as_object();
  auto str = [&](std::string_view k) {
    const json::value* x = o.if_contains(k);
    return x && x->is_string() ? std::string(x->as_string()) : std::string();
  };
  ApiKey k;
  k.id = d.id;
  k.kind = str("kind") == "admin" ? KeyKind::kAdmin : KeyKind::kTenant;
  k.tenant_id = str("tenant_id");
  k.name = str("name");
  k.prefix = str("prefix");
  auto created = ParseRfc3339(str("created_at"));
  if (!created) throw storage::CorruptDocument("api_keys", d.id, "created_at is not a time");
  k.created_at = *created;
  if (auto r = str("revoked_at"); !r.empty()) {
    auto t = ParseRfc3339(r);
    if (t) k.revoked_at = *t;
  }
  k.version = d.version;
  return k;
}

}  // namespace

storage::CollectionSpec ApiKeysCollectionSpec() {
  return {std::string(kApiKeysCollection),
          {{"key_hash", true}, {"tenant_id", false}, {"kind", false}}};
}

std::string HashKey(std::string_view secret) { return Sha256Hex(secret); }

Status ApiKeyService::Store(const ApiKey& key, const std::string& hash) {
  storage::Document doc{key.id, 0, json::serialize(ApiKeyToJson(key)), {}};
  doc.keys["key_hash"] = hash;
  doc.keys["kind"] = key.kind == KeyKind::kAdmin ? "admin" : "tenant";
  if (!key.tenant_id.empty()) doc.keys["tenant_id"] = key.tenant_id;
  return store_.Insert(kApiKeysCollection, doc);
}

Result<CreatedKey> ApiKeyService::Create(KeyKind kind, std::string_view tenant_id,
                                         std::string_view name) {
  if (name.size() > 100) return Error::Invalid("name", "must be at most 100 characters");
  CreatedKey out;
  out.secret = std::string(kSecretPrefix) + RandomToken(32);
  out.key.id = ids_.Next("key");
  out.key.kind = kind;
  out.key.tenant_id = kind == KeyKind::kTenant ? std::string(tenant_id) : std::string();
  out.key.name = std::string(name);
  out.key.prefix = out.secret.substr(0, kShownPrefixLength);
  out.key.created_at = clock_.Now();
  if (Status s = Store(out.key, HashKey(out.secret)); !s) return s.error();
  out.key.version = 1;
  return out;
}

Result<ApiKey> ApiKeyService::Get(std::string_view key_id) {
  auto d = store_.Get(kApiKeysCollection, key_id);
  if (!d) return Error::NotFound("no key " + std::string(key_id));
  return FromDocument(*d);
}

Result<ApiKey> ApiKeyService::Revoke(std::string_view key_id) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto d = store_.Get(kApiKeysCollection, key_id);
    if (!d) return Error::NotFound("no key " + std::string(key_id));
    auto k = FromDocument(*d);
    if (!k) return k.error();
    if (k->revoked_at) return k;
    k->revoked_at = clock_.Now();
    // The rewritten keys leave out key_hash: a revoked key can never be found
    // by its secret again, on any node, whatever its cache says after the TTL.
    storage::Document doc{k->id, 0, json::serialize(ApiKeyToJson(*k)), {}};
    doc.keys["kind"] = k->kind == KeyKind::kAdmin ? "admin" : "tenant";
    if (!k->tenant_id.empty()) doc.keys["tenant_id"] = k->tenant_id;
    auto v = store_.Replace(kApiKeysCollection, doc, d->version);
    if (v) {
      k->version = *v;
      std::lock_guard lock(cache_mu_);
      cache_.clear();  // the hash is gone from the store; drop every cached answer
      return k;
    }
    if (v.error().code != ErrorCode::kConflict) return v.error();
  }
  return Error::Make(ErrorCode::kConflict, "the key is being changed concurrently; retry");
}

std::vector<ApiKey> ApiKeyService::ListForTenant(std::string_view tenant_id) {
  std::vector<ApiKey> out;
  storage::ListQuery q;
  q.where_key = "tenant_id";
  q.where_value = std::string(tenant_id);
  q.limit = 1000;
  for (const auto& d : store_.List(kApiKeysCollection, q).items) {
    if (auto k = FromDocument(d)) out.push_back(std::move(*k));
  }
  return out;
}

Result<Principal> ApiKeyService::Authenticate(std::string_view secret) {
  const Error bad = Error::Make(ErrorCode::kUnauthenticated, "the API key is not valid");
  if (secret.empty() || secret.size() > kMaxKeyLength) return bad;
  const std::string hash = HashKey(secret);
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(cache_mu_);
    auto it = cache_.find(hash);
    if (it != cache_.end() && it->second.expires > now) {
      if (it->second.principal) return *it->second.principal;
      return bad;
    }
  }
  std::optional<Principal> principal;
  auto d = store_.FindUnique(kApiKeysCollection, "key_hash", hash);
  if (d) {
    auto k = FromDocument(*d);
    if (k && !k->revoked_at) principal = Principal{k->kind, k->tenant_id, k->id};
  }
  {
    std::lock_guard lock(cache_mu_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();  // bounded: unknown keys are cached too
    cache_[hash] = CacheEntry{principal, now + kCacheTtl};
  }
  if (principal) return *principal;
  return bad;
}

Result<std::optional<std::string>> ApiKeyService::EnsureAdminKey(
    const std::optional<std::string>& configured) {
  if (configured) {
    const std::string& key = *configured;
    if (key.size() < kMinConfiguredKeyLength || key.size() > kMaxKeyLength) {
      return Error::Invalid("CAAS_BILLING_ADMIN_KEY", "must be 32 to 256 characters long");
    }
    for (char c : key) {
      if (c <= ' ' || c > '~') {
        return Error::Invalid("CAAS_BILLING_ADMIN_KEY", "must be printable ASCII without spaces");
      }
    }
    const std::string hash = HashKey(key);
    auto existing = store_.FindUnique(kApiKeysCollection, "key_hash", hash);
    if (existing) {
      auto k = FromDocument(*existing);
      if (!k) return k.error();
      if (k->kind != KeyKind::kAdmin) {
        return Error::Invalid("CAAS_BILLING_ADMIN_KEY", "is already a tenant key");
      }
      return std::optional<std::string>();
    }
    ApiKey k;
    k.id = ids_.Next("key");
    k.kind = KeyKind::kAdmin;
    k.name = "configured admin key";
    k.prefix = key.substr(0, std::min<size_t>(6, key.size()));
    k.created_at = clock_.Now();
    if (Status s = Store(k, hash); !s) return s.error();
    return std::optional<std::string>();
  }
  storage::ListQuery q;
  q.where_key = "kind";
  q.where_value = "admin";
  q.limit = 1000;
  for (const auto& d : store_.List(kApiKeysCollection, q).items) {
    auto k = FromDocument(d);
    if (k && !k->revoked_at) return std::optional<std::string>();
  }
  auto created = Create(KeyKind::kAdmin, "", "first admin key");
  if (!created) return created.error();
  return std::optional<std::string>(created->secret);
}

}  // namespace caas::tenants
