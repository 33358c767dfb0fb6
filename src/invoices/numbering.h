// Gapless document numbers per series ("INV-2026", "CN-2026"), on a store
// that is atomic per document only (docs/invoices.md, "Numbers").
//
// Each series is one small document: the next number and the numbers
// reserved but not yet written into their documents. Finalizing a document
// is three short writes:
//   1. Reserve: in the series document, take `next` for the document (or
//      find the number it already holds) and add the reservation; one
//      versioned write, retried on conflict. Only this step is shared by
//      concurrent finalizations, and it holds no lock across anything else.
//      Concurrent reservations and releases in this process are combined:
//      those that arrive during a write of the series go together in the
//      next one (as if one after another), so a month-end run of parallel
//      finalizations makes one series write per batch, not one each.
//   2. the caller writes the number into its document (its own versioned
//      write);
//   3. Release: remove the reservation.
// A number leaves `next` only together with a reservation, and a
// reservation goes only once its number is in its document. A crash after 1
// leaves the reservation; the recovery sweep (the scheduler) rolls it
// forward: the document gets that number (2) and the reservation goes (3).
// So no number is skipped or given twice, whatever step a crash hits.
//
// Two finalizations of the same document at once reserve the same number
// (a reservation is found by its document). Only if one reserves after the
// other finished (released) does it get a second number, which it sees is
// not needed (the document is final already) and gives back: the last
// number goes back to `next`, any other to a free list that the next
// reservation takes first. So even then there is no gap; numbers are in
// finalization order except after such a race.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "storage/document_store.h"

namespace caas::invoices {

storage::CollectionSpec NumbersCollectionSpec();

struct Reservation {
  std::string series;
  std::string document;
  int64_t number = 0;
};

class NumberSeries {
 public:
  NumberSeries(storage::DocumentStore& store, const Clock& clock) : store_(store), clock_(clock) {}

  // Step 1: the number of `document` in `series`: the one it reserved
  // before, or the next one. Throws StorageError.
  Result<int64_t> Reserve(const std::string& series, std::string_view document);
  // Step 3: drops the reservation (Ok when there is none). Throws StorageError.
  Status Release(const std::string& series, std::string_view document);
  // A reservation that was not needed (the document got its number from
  // another finalization): the number returns to the series.
  Status GiveBack(const std::string& series, std::string_view document);

  // The oldest reservation's time, and reservations made by `until` (the
  // recovery sweep's work).
  std::optional<Instant> EarliestReservation();
  std::vector<Reservation> ReservedBy(Instant until, int limit);
  // The last number given in a series (0: none).
  int64_t Last(const std::string& series);

  // "INV-2026-000042"
  static std::string Format(const std::string& series, int64_t number);

  enum class OpKind { kReserve, kRelease, kGiveBack };

 private:
  struct Op;
  Result<int64_t> Combine(OpKind kind, const std::string& series, std::string_view document);
  void RunBatch(const std::vector<Op*>& batch);

  storage::DocumentStore& store_;
  const Clock& clock_;
  std::mutex mu_;  // guards queue_ (operations waiting; the front one writes)
  std::condition_variable cv_;
  std::deque<Op*> queue_;
};

}  // namespace caas::invoices
