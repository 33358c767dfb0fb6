#include <gtest/gtest.h>

#include <set>

#include "core/clock.h"
#include "storage/memory/memory_store.h"
#include "tenants/api_keys.h"
#include "tenants/tenant_service.h"

namespace caas::tenants {
namespace {

class TenantsTest : public ::testing::Test {
 protected:
  ManualClock clock_{FromUnixSeconds(1767225600)};  // 2026-01-01
  IdGenerator ids_{clock_};
  storage::MemoryStore store_{{TenantsCollectionSpec(), ApiKeysCollectionSpec()}};
  TenantService tenants_{store_, clock_, ids_};
  ApiKeyService keys_{store_, clock_, ids_};

  TenantFields Valid() {
    TenantFields f;
    f.name = "Acme GmbH";
    f.billing_email = "billing@acme.example";
    return f;
  }
};

TEST_F(TenantsTest, CreateAppliesDefaultsAndReadsBack) {
  auto t = tenants_.Create(Valid());
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(IsValidId(t->id, "tnt"));
  EXPECT_EQ(t->currency, "USD");
  auto back = tenants_.Get(t->id);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->name, "Acme GmbH");
  EXPECT_EQ(back->created_at, clock_.Now());
}

TEST_F(TenantsTest, ValidationNamesEveryBadField) {
  TenantFields f;
  f.billing_email = "not-an-email";
  f.currency = "usd";
  f.address = Address{"", "", "Berlin", "", "", "Germany"};
  std::vector<Error> errors;
  auto t = tenants_.Create(f, "", &errors);
  ASSERT_FALSE(t.ok());
  std::set<std::string> fields;
  for (const auto& e : errors) fields.insert(e.field);
  EXPECT_EQ(fields, (std::set<std::string>{"name", "billing_email", "currency", "address.line1",
                                           "address.country"}));
  EXPECT_TRUE(tenants_.List("", 10).items.empty());  // nothing written
}

TEST_F(TenantsTest, BoundsAndControlCharacters) {
  auto f = Valid();
  f.name = std::string(201, 'x');
  EXPECT_FALSE(tenants_.Create(f).ok());
  f.name = "Acme\nInc";
  EXPECT_FALSE(tenants_.Create(f).ok());
  f.name = std::string(200, 'x');
  EXPECT_TRUE(tenants_.Create(f).ok());
  f.tax_id = "DE<script>";
  EXPECT_FALSE(tenants_.Create(f).ok());
}

TEST_F(TenantsTest, CreateWithAReservedIdIsIdempotent) {
  auto a = tenants_.Create(Valid(), "tnt_01J00000000000000000000000");
  auto b = tenants_.Create(Valid(), "tnt_01J00000000000000000000000");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->id, b->id);
  EXPECT_EQ(tenants_.List("", 10).items.size(), 1u);
}

TEST_F(TenantsTest, UpdateChangesOnlyGivenFields) {
  auto t = tenants_.Create(Valid());
  clock_.Advance(std::chrono::seconds(10));
  TenantFields patch;
  patch.billing_email = "ap@acme.example";
  auto u = tenants_.Update(t->id, patch);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->name, "Acme GmbH");
  EXPECT_EQ(u->billing_email, "ap@acme.example");
  EXPECT_EQ(u->updated_at, t->created_at + std::chrono::seconds(10));
  EXPECT_EQ(u->version, 2);
  EXPECT_EQ(tenants_.Update("tnt_01J00000000000000000000000", patch).error().code,
            ErrorCode::kNotFound);
}

TEST_F(TenantsTest, ListPaginates) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(tenants_.Create(Valid()).ok());
  auto p1 = tenants_.List("", 3);
  EXPECT_EQ(p1.items.size(), 3u);
  EXPECT_TRUE(p1.has_more);
  auto p2 = tenants_.List(p1.items.back().id, 3);
  EXPECT_EQ(p2.items.size(), 2u);
  EXPECT_FALSE(p2.has_more);
}

TEST_F(TenantsTest, KeysAuthenticateUntilRevoked) {
  auto t = tenants_.Create(Valid());
  auto k = keys_.Create(KeyKind::kTenant, t->id, "portal");
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->secret.rfind("caas_sk_", 0), 0u);
  auto p = keys_.Authenticate(k->secret);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->IsAdmin());
  EXPECT_EQ(p->tenant_id, t->id);
  EXPECT_TRUE(p->MaySee(t->id));
  EXPECT_FALSE(p->MaySee("tnt_other"));
  EXPECT_EQ(keys_.Authenticate(k->secret + "x").error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(keys_.Authenticate("").error().code, ErrorCode::kUnauthenticated);
  ASSERT_TRUE(keys_.Revoke(k->key.id).ok());
  EXPECT_EQ(keys_.Authenticate(k->secret).error().code, ErrorCode::kUnauthenticated);
  // Revoking twice is fine; the secret is stored nowhere.
  EXPECT_TRUE(keys_.Revoke(k->key.id)->revoked_at.has_value());
}

TEST_F(TenantsTest, SecretsAreNeverStored) {
  auto t = tenants_.Create(Valid());
  auto k = keys_.Create(KeyKind::kTenant, t->id, "");
  auto admin = keys_.EnsureAdminKey(std::nullopt);
  ASSERT_TRUE(admin.ok() && admin->has_value());
  storage::ListQuery q;
  q.limit = 1000;
  for (const auto& d : store_.List(kApiKeysCollection, q).items) {
    EXPECT_EQ(d.body.find(k->secret), std::string::npos);
    EXPECT_EQ(d.body.find(**admin), std::string::npos);
  }
}

TEST_F(TenantsTest, FirstAdminKeyIsCreatedOnceAndConfiguredKeysWork) {
  auto first = keys_.EnsureAdminKey(std::nullopt);
  ASSERT_TRUE(first.ok() && first->has_value());
  EXPECT_TRUE(keys_.Authenticate(**first)->IsAdmin());
  auto second = keys_.EnsureAdminKey(std::nullopt);
  EXPECT_FALSE(second->has_value());  // shown once only
  const std::string configured(40, 'k');
  ASSERT_TRUE(keys_.EnsureAdminKey(configured).ok());
  ASSERT_TRUE(keys_.EnsureAdminKey(configured).ok());  // idempotent
  EXPECT_TRUE(keys_.Authenticate(configured)->IsAdmin());
  EXPECT_FALSE(keys_.EnsureAdminKey(std::string("short")).ok());
  EXPECT_FALSE(keys_.EnsureAdminKey(std::string(40, ' ')).ok());
}

}  // namespace
}  // namespace caas::tenants
