#include "http/idempotency.h"

#include <boost/json.hpp>

#include "core/hash.h"
#include "http/problem.h"

namespace caas::http {
namespace json = boost::json;

storage::CollectionSpec IdempotencyCollectionSpec() {
  return {std::string(kIdempotencyCollection), {{"expires_at", false}}};
}

namespace {

std::string RequestHash(const Request& req) {
  return Sha256Hex(req.method + " " + req.path + "\n" + req.body);
}

std::string Str(const json::object& o, std::string_view k) {
  const json::value* v = o.if_contains(k);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

int64_t Int(const json::object& o, std::string_view k) {
  const json::value* v = o.if_contains(k);
  return v && v->is_int64() ? v->as_int64() : 0;
}

}  // namespace

Idempotency::Outcome Idempotency::Begin(std::string_view scope, std::string_view key,
                                        const Request& req) {
  Outcome out;
  if (key.empty() || key.size() > kMaxKeyLength) {
    out.answer = Problem(400, "invalid-request", "The request is not valid",
                         "Idempotency-Key must be 1 to 255 characters",
                         {Error::Invalid("Idempotency-Key", "must be 1 to 255 characters")});
    return out;
  }
  for (char c : key) {
    if (c < ' ' || c > '~') {
      out.answer = Problem(400, "invalid-request", "The request is not valid",
                           "Idempotency-Key must be printable ASCII",
                           {Error::Invalid("Idempotency-Key", "must be printable ASCII")});
      return out;
    }
  }
  const std::string record_id = "idk_" + Sha256Hex(std::string(scope) + "\n" + std::string(key));
  const std::string hash = RequestHash(req);
  const Instant now = clock_.Now();
  const auto wall = std::chrono::system_clock::now();
  const int64_t wall_s =
      std::chrono::duration_cast<std::chrono::seconds>(wall.time_since_epoch()).count();

  for (int attempt = 0; attempt < 8; ++attempt) {
    auto existing = store_.Get(kIdempotencyCollection, record_id);
    std::string suffix;
    int64_t created_unix = wall_s;
    if (existing) {
      json::error_code ec;
      json::value v = json::parse(existing->body, ec);
      if (ec || !v.is_object()) throw storage::StorageError("corrupt idempotency record", false);
      const auto& o = v.as_object();
      const int64_t created_s = Int(o, "created_unix");
      const bool expired = wall_s - created_s > std::chrono::seconds(kRetention).count();
      if (!expired) {
        created_unix = created_s;
        if (Str(o, "request_hash") != hash) {
          out.answer = Problem(
              422, "idempotency-key-reused", "Idempotency key reused",
              "this Idempotency-Key was used with a different request (method, path or body)");
          return out;
        }
        if (Str(o, "state") == "done") {
          Response r;
          r.status = static_cast<int>(Int(o, "status"));
          r.content_type = Str(o, "content_type");
          r.body = Str(o, "body");
          r.headers.emplace_back("Idempotent-Replayed", "true");
          out.answer = std::move(r);
          return out;
        }
        const int64_t locked_s = Int(o, "locked_unix");
        if (wall_s - locked_s < std::chrono::seconds(kLease).count()) {
          out.answer = Problem(409, "idempotency-key-in-use", "Request in progress",
                               "a request with this Idempotency-Key is still being processed; "
                               "retry later");
          return out;
        }
        suffix = Str(o, "reserved_suffix");  // take over a crashed request
      }
    }
    if (suffix.empty()) suffix = ids_.Next("x").substr(2);
    json::object rec;
    rec["state"] = "pending";
    rec["request_hash"] = hash;
    rec["reserved_suffix"] = suffix;
    rec["created_unix"] = created_unix;
    rec["locked_unix"] = wall_s;
    rec["created_at"] = FormatRfc3339(now);
    storage::Document doc{record_id, 0, json::serialize(rec), {}};
    const Instant expires = now + kRetention;
    doc.keys["expires_at"] = storage::SortableTime(expires.time_since_epoch().count());
    rec["expires_at"] = FormatRfc3339(expires);
    doc.body = json::serialize(rec);
    if (existing) {
      auto v = store_.Replace(kIdempotencyCollection, doc, existing->version);
      if (v) {
        out.claim = Claim{record_id, *v, suffix, doc.body};
        return out;
      }
    } else {
      Status s = store_.Insert(kIdempotencyCollection, doc);
      if (s) {
        out.claim = Claim{record_id, 1, suffix, doc.body};
        return out;
      }
    }
    // Lost a race with a concurrent request; look again.
  }
  out.answer = Problem(409, "idempotency-key-in-use", "Request in progress",
                       "a request with this Idempotency-Key is being processed; retry later");
  return out;
}

void Idempotency::Finish(const Claim& claim, const Response& res) {
  if (res.status >= 500) {
    (void)store_.Delete(kIdempotencyCollection, claim.record_id, claim.version);
    return;
  }
  json::object rec = json::parse(claim.pending_body).as_object();
  rec["state"] = "done";
  rec["status"] = res.status;
  rec["content_type"] = res.content_type;
  // A secret shown once (a new API key) is never stored: the replay carries the
  // same resource without it.
  json::error_code ec;
  json::value body = json::parse(res.body, ec);
  if (!ec && body.is_object() && body.as_object().contains("secret")) {
    body.as_object().erase("secret");
    body.as_object()["secret_redacted"] = true;
    rec["body"] = json::serialize(body);
  } else {
    rec["body"] = res.body;
  }
  storage::Document doc{claim.record_id, 0, json::serialize(rec), {}};
  if (const auto* e = rec.if_contains("expires_at"); e && e->is_string()) {
    if (auto t = ParseRfc3339(std::string_view(e->as_string()))) {
      doc.keys["expires_at"] = storage::SortableTime(t->time_since_epoch().count());
    }
  }
  (void)store_.Replace(kIdempotencyCollection, doc, claim.version);
}

std::optional<Instant> Idempotency::NextExpiry() {
  return storage::EarliestTime(store_, kIdempotencyCollection, "expires_at");
}

int Idempotency::DeleteExpired(Instant until, int max) {
  int deleted = 0;
  for (const auto& k :
       storage::DueBy(store_, kIdempotencyCollection, "expires_at", until, max).items) {
    // A record taken over meanwhile has a new version: left for its new expiry.
    if (store_.Delete(kIdempotencyCollection, k.doc.id, k.doc.version)) ++deleted;
  }
  return deleted;
}

}  // namespace caas::http
