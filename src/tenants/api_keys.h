// API keys: one admin (operator) kind and tenant-scoped keys.
//
// A key is shown once, when created; only its SHA-256 is stored. Keys are 256
// random bits, so a fast hash is enough (nothing to brute-force). Lookups are
// cached in memory for a short time; revoking on this node takes effect at
// once, on other nodes within kCacheTtl.
#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "core/clock.h"
#include "core/ids.h"
#include "storage/document_store.h"

namespace caas::tenants {

inline constexpr std::string_view kApiKeysCollection = "api_keys";
storage::CollectionSpec ApiKeysCollectionSpec();

enum class KeyKind { kAdmin, kTenant };

// Who is calling.
struct Principal {
  KeyKind kind;
  std::string tenant_id;  // empty for admin keys
  std::string key_id;
  bool IsAdmin() const { return kind == KeyKind::kAdmin; }
  // Admin keys may act on every tenant; tenant keys only on their own.
  bool MaySee(std::string_view tenant) const { return IsAdmin() || tenant_id == tenant; }
};

struct ApiKey {
  std::string id;  // key_…
  KeyKind kind;
  std::string tenant_id;
  std::string name;
  std::string prefix;  // the first characters of the secret, to recognise it
  Instant created_at;
  std::optional<Instant> revoked_at;
  int64_t version = 0;
};

struct CreatedKey {
  ApiKey key;
  std::string secret;  // shown once, never stored
};

// The API and storage representation (never holds the secret).
boost::json::object ApiKeyToJson(const ApiKey& k);

// The SHA-256 of a key, lower-case hex.
std::string HashKey(std::string_view secret);

class ApiKeyService {
 public:
  static constexpr auto kCacheTtl = std::chrono::seconds(10);
  static constexpr size_t kMinConfiguredKeyLength = 32;
  static constexpr size_t kMaxKeyLength = 256;

  ApiKeyService(storage::DocumentStore& store, const Clock& clock, IdGenerator& ids)
      : store_(store), clock_(clock), ids_(ids) {}
  ApiKeyService(const ApiKeyService&) = delete;
  ApiKeyService& operator=(const ApiKeyService&) = delete;

  // tenant_id must name an existing tenant for kTenant (checked by the caller).
  Result<CreatedKey> Create(KeyKind kind, std::string_view tenant_id, std::string_view name);
  Result<ApiKey> Get(std::string_view key_id);
  // Idempotent: revoking a revoked key returns it unchanged.
  Result<ApiKey> Revoke(std::string_view key_id);
  std::vector<ApiKey> ListForTenant(std::string_view tenant_id);

  // kUnauthenticated for unknown or revoked keys.
  Result<Principal> Authenticate(std::string_view secret);

  // Start-up: with `configured` (CAAS_BILLING_ADMIN_KEY), makes sure that key
  // is a valid admin key and returns nullopt. Without it, creates an admin key
  // if none exists and returns its secret (to be shown once), else nullopt.
  Result<std::optional<std::string>> EnsureAdminKey(const std::optional<std::string>& configured);

 private:
  struct CacheEntry {
    std::optional<Principal> principal;  // nullopt: known bad
    std::chrono::steady_clock::time_point expires;
  };
  Status Store(const ApiKey& key, const std::string& hash);

  storage::DocumentStore& store_;
  const Clock& clock_;
  IdGenerator& ids_;
  std::mutex cache_mu_;                                // guards cache_
  std::unordered_map<std::string, CacheEntry> cache_;  // by hash; guarded by cache_mu_
};

}  // namespace caas::tenants
