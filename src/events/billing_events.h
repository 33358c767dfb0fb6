// Billing events: the record of everything billing-relevant that happened
// (usage thresholds crossed, later subscription changes, invoices, payments).
// Stored in the document store now; the Kafka issue publishes them.
//
// Recording is asynchronous (a queue drained by one thread) so that hot paths
// such as the metering flusher never wait for a store write, and idempotent:
// each event carries a dedupe key held unique by the store, so an event
// recorded twice (for example re-detected when the metering log is replayed
// after a restart) is stored once.
#pragma once

#include <boost/json/object.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
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

  struct ListPage {
    std::vector<BillingEvent> items;
    bool has_more = false;
  };
  ListPage List(std::string_view tenant, std::string_view starting_after, int limit);

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
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<Pending> queue_;
  bool busy_ = false;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace caas::events
