#include "events/billing_events.h"

#include <boost/json.hpp>

#include "core/log.h"

namespace caas::events {
namespace json = boost::json;

namespace {
bool IsRetryable(const std::exception& e) {
  const auto* s = dynamic_cast<const storage::StorageError*>(&e);
  return s != nullptr && s->retryable();
}
}  // namespace

storage::CollectionSpec BillingEventsCollectionSpec() {
  return {"billing_events", {{"tenant", false}, {"dedupe", true}}};
}

json::object BillingEventToJson(const BillingEvent& e) {
  return json::object{{"id", e.id},
                      {"type", e.type},
                      {"tenant", e.tenant},
                      {"occurred_at", FormatRfc3339(e.occurred_at)},
                      {"recorded_at", FormatRfc3339(e.recorded_at)},
                      {"data", e.data}};
}

BillingEventRecorder::BillingEventRecorder(storage::DocumentStore& store, const Clock& clock,
                                           IdGenerator& ids)
    : store_(store), clock_(clock), ids_(ids), worker_([this] { Run(); }) {}

BillingEventRecorder::~BillingEventRecorder() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void BillingEventRecorder::Record(std::string type, std::string tenant, json::object data,
                                  Instant occurred_at, std::string dedupe_key) {
  Pending p{BillingEvent{"", std::move(type), std::move(tenant), occurred_at, {}, std::move(data)},
            std::move(dedupe_key)};
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(p));
  }
  cv_.notify_one();
}

void BillingEventRecorder::Flush() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [&] { return queue_.empty() && !busy_; });
}

void BillingEventRecorder::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping and drained
    Pending p = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    Store(p);
    lock.lock();
    busy_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
}

void BillingEventRecorder::Store(const Pending& p) {
  for (int attempt = 0;; ++attempt) {
    try {
      BillingEvent e = p.event;
      e.id = ids_.Next("bev");
      e.recorded_at = clock_.Now();
      storage::Document doc;
      doc.id = e.id;
      doc.body = json::serialize(BillingEventToJson(e));
      doc.keys = {{"tenant", e.tenant}, {"dedupe", p.dedupe_key}};
      Status s = store_.Insert("billing_events", doc);
      if (!s.ok() && s.error().code != ErrorCode::kAlreadyExists) {
        Log(LogLevel::kError, "billing_event_not_stored",
            {{"type", e.type}, {"error", s.error().message}});
      }
      return;
    } catch (const std::exception& err) {
      Log(LogLevel::kWarn, "billing_event_store_retry",
          {{"error", std::string_view(err.what())}, {"attempt", static_cast<int64_t>(attempt)}});
      bool stopping;
      {
        std::lock_guard lock(mu_);
        stopping = stop_;
      }
      // Shutting down: a few more tries, then give up rather than hang the
      // shutdown past its grace period.
      if (stopping || (attempt >= 3 && !IsRetryable(err))) {
        Log(LogLevel::kError, "billing_event_dropped",
            {{"type", p.event.type}, {"tenant", p.event.tenant}, {"error", std::string_view(err.what())}});
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50 << std::min(attempt, 6)));
    }
  }
}

BillingEventRecorder::ListPage BillingEventRecorder::List(std::string_view tenant,
                                                          std::string_view starting_after,
                                                          int limit) {
  storage::ListQuery q;
  q.where_key = "tenant";
  q.where_value = std::string(tenant);
  q.starting_after = std::string(starting_after);
  q.limit = limit;
  storage::Page page = store_.List("billing_events", q);
  ListPage out;
  out.has_more = page.has_more;
  for (const auto& doc : page.items) {
    json::object o = json::parse(doc.body).as_object();
    BillingEvent e;
    e.id = json::value_to<std::string>(o.at("id"));
    e.type = json::value_to<std::string>(o.at("type"));
    e.tenant = json::value_to<std::string>(o.at("tenant"));
    e.occurred_at = ParseRfc3339(json::value_to<std::string>(o.at("occurred_at"))).value();
    e.recorded_at = ParseRfc3339(json::value_to<std::string>(o.at("recorded_at"))).value();
    e.data = o.at("data").as_object();
    out.items.push_back(std::move(e));
  }
  return out;
}

}  // namespace caas::events
