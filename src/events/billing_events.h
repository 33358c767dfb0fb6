// Billing events: the record of everything billing-relevant that happened
// (usage thresholds crossed, subscription changes, later invoices and
// payments), in the collection "billing_events"; the Kafka issue publishes
// them from there.
//
// Two ways in, both exactly once:
// - an aggregate writes its events into its own document's outbox, in the
//   same atomic write as the change; a relay publishes them by id
//   (PublishBillingEvent) and then removes them from the outbox. A crash in
//   between publishes them again, and the id makes that a no-op;
// - metering records usage thresholds through BillingEventRecorder, a queue
//   drained by one thread (the flusher never waits for the store). The event
//   log is their outbox: a replay after a crash detects every crossing again,
//   and the dedupe key makes the second recording a no-op.
#pragma once

#include <boost/json/object.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/clock.h"
#include "core/ids.h"
#include "storage/document_store.h"

namespace caas::events {

storage::CollectionSpec BillingEventsCollectionSpec();

struct BillingEvent {
  std::string id;  // bev_…
  std::string type;
  std::string tenant;
  Instant occurred_at;
  Instant recorded_at;
  boost::json::object data;
};

boost::json::object BillingEventToJson(const BillingEvent& e);
// The inverse; nullopt when the JSON is not a billing event.
std::optional<BillingEvent> BillingEventFromJson(const boost::json::value& v);

// Publishes an event written in an aggregate's outbox: stored once, by its id
// (an event already there is skipped, so a relay may run twice). Throws
// StorageError.
void PublishBillingEvent(storage::DocumentStore& store, const Clock& clock, BillingEvent e);

// A tenant's events in id order (the order they were announced in).
struct BillingEventPage {
  std::vector<BillingEvent> items;
  bool has_more = false;
};
BillingEventPage ListBillingEvents(storage::DocumentStore& store, std::string_view tenant,
                                   std::string_view starting_after, int limit);

class BillingEventRecorder {
 public:
  BillingEventRecorder(storage::DocumentStore& store, const Clock& clock, IdGenerator& ids);
  ~BillingEventRecorder();  // stores what is queued, then stops
  BillingEventRecorder(const BillingEventRecorder&) = delete;
  BillingEventRecorder& operator=(const BillingEventRecorder&) = delete;

  void Record(std::string type, std::string tenant, boost::json::object data, Instant occurred_at,
              std::string dedupe_key);
  // Waits until everything queued so far is stored.
  void Flush();

  BillingEventPage List(std::string_view tenant, std::string_view starting_after, int limit);

 private:
  struct Pending {
    BillingEvent event;
    std::string dedupe_key;
  };
  void Run();
  void Store(const Pending& p);

  storage::DocumentStore& store_;
  const Clock& clock_;
  IdGenerator& ids_;
  std::mutex mu_;  // guards queue_, busy_, stop_
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<Pending> queue_;
  bool busy_ = false;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace caas::events
