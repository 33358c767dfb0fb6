// The storage form of a tenant's subscription document (collection
// "subscriptions"). Versioned and separate from the API's JSON, so the public
// schema can change without a migration and a migration can change the
// stored form without the API noticing.
//
//   schema 2: this form (written by this version).
//   schema 1: the API JSON that versions before 0.2 stored. Read with its
//             terms timeline rebuilt from the audit trail (custom terms as
//             they are now) and the fee of the current period taken as
//             charged.
#pragma once

#include <string>
#include <string_view>

#include "catalog/catalog.h"
#include "core/status.h"
#include "subscriptions/model.h"

namespace caas::subscriptions {

inline constexpr int kSchemaVersion = 2;

std::string EncodeDocument(const TenantSubscriptions& t);
// kInternal naming the field when the document is not a valid stored form.
Result<TenantSubscriptions> DecodeDocument(std::string_view body, const catalog::Catalog& catalog);

}  // namespace caas::subscriptions
