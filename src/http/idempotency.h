// Idempotency-Key handling for POST requests.
//
// A key is scoped to the API key that sent it. The first request with a key
// claims it (a "pending" record), runs, and stores its answer; the same key
// with the same method, path and body then replays that answer; with a
// different request it is refused with 422. A pending record older than
// kLease (its request crashed) may be taken over by a retry.
//
// Crash safety without multi-document transactions: the claim reserves the id
// of the resource the request will create. A retry after a crash reuses it,
// so the resource is created at most once and the retry returns it.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "core/clock.h"
#include "core/ids.h"
#include "http/message.h"
#include "storage/document_store.h"

namespace caas::http {

inline constexpr std::string_view kIdempotencyCollection = "idempotency_keys";
storage::CollectionSpec IdempotencyCollectionSpec();

class Idempotency {
 public:
  static constexpr auto kLease = std::chrono::seconds(60);
  static constexpr auto kRetention = std::chrono::hours(24);
  static constexpr size_t kMaxKeyLength = 255;

  Idempotency(storage::DocumentStore& store, const Clock& clock, IdGenerator& ids)
      : store_(store), clock_(clock), ids_(ids) {}

  struct Claim {
    std::string record_id;
    int64_t version = 0;
    std::string reserved_suffix;  // ULID part of the id the request will create
    std::string pending_body;     // the record as claimed, completed by Finish
  };
  // Either a claim to run the request, or the answer to send right away
  // (a replay, 409 while in progress, 422 for a reused key, 400 for a bad key).
  struct Outcome {
    std::optional<Claim> claim;
    std::optional<Response> answer;
  };

  Outcome Begin(std::string_view scope, std::string_view key, const Request& req);

  // Records past their retention: the earliest expiry, and a removal of up to
  // `max` of those expired by `until` (the scheduler drives both). A record's
  // retention runs on the service's Clock (simulated time moves it too);
  // leases run on the wall clock.
  std::optional<Instant> NextExpiry();
  int DeleteExpired(Instant until, int max);
  // Stores the answer (or, for a 5xx, releases the key so a retry can run).
  // A claim taken over by another request meanwhile is left alone.
  void Finish(const Claim& claim, const Response& res);

 private:
  storage::DocumentStore& store_;
  const Clock& clock_;
  IdGenerator& ids_;
};

}  // namespace caas::http
