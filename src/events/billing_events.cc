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

std::optional<BillingEvent> BillingEventFromJson(const json::value& v) {
  if (!v.is_object()) return std::nullopt;
  const json::object& o = v.as_object();
  auto str = [&](std::string_view k) -> std::optional<std::string> {
    const json::value* x = o.if_contains(k);
    if (!x || !x->is_string()) return std::nullopt;
    return std::string(x->as_string());
  };
  auto id = str("id"), type = str("type"), tenant = str("tenant"), at = str("occurred_at");
  const json::value* data = o.if_contains("data");
  if (!id || !type || !tenant || !at || !data || !data->is_object()) return std::nullopt;
  auto occurred = ParseRfc3339(*at);
  if (!occurred) return std::nullopt;
  BillingEvent e;
  e.id = *id;
  e.type = *type;
  e.tenant = *tenant;
  e.occurred_at = *occurred;
  if (auto rec = str("recorded_at")) {
    if (auto r = ParseRfc3339(*rec)) e.recorded_at = *r;
  }
  e.data = data->as_object();
  return e;
}

namespace {

// Stores an event once: a second insert with the same id or dedupe key is
// kAlreadyExists, which callers take as done.
Status InsertEvent(storage::DocumentStore& store, const Clock& clock, BillingEvent e,
                   const std::string& dedupe_key) {
  e.recorded_at = clock.Now();
  storage::Document doc;
  doc.id = e.id;
  doc.body = json::serialize(BillingEventToJson(e));
  doc.keys = {{"tenant", e.tenant}, {"dedupe", dedupe_key}};
  return store.Insert("billing_events", doc);
}

}  // namespace

void PublishBillingEvent(storage::DocumentStore& store, const Clock& clock, BillingEvent e) {
  const std::string id = e.id;
  Status s = InsertEvent(store, clock, std::move(e), id);
  if (!s && s.error().code != ErrorCode::kAlreadyExists) {
    throw storage::StorageError("billing event " + id + ": " + s.error().message, true);
  }
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
      Status s = InsertEvent(store_, clock_, std::move(e), p.dedupe_key);
      if (!s.ok() && s.error().code != ErrorCode::kAlreadyExists) {
        Log(LogLevel::kError, "billing_event_not_stored",
            {{"type", p.event.type}, {"error", s.error().message}});
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
            {{"type", p.event.type},
             {"tenant", p.event.tenant},
             {"error", std::string_view(err.what())}});
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50 << std::min(attempt, 6)));
    }
  }
}

BillingEventPage ListBillingEvents(storage::DocumentStore& store, std::string_view tenant,
                                   std::string_view starting_after, int limit) {
  storage::ListQuery q;
  q.where_key = "tenant";
  q.where_value = std::string(tenant);
  q.starting_after = std::string(starting_after);
  q.limit = limit;
  storage::Page page = store.List("billing_events", q);
  BillingEventPage out;
  out.has_more = page.has_more;
  for (const auto& doc : page.items) {
    json::error_code ec;
    json::value v = json::parse(doc.body, ec);
    auto e = ec ? std::nullopt : BillingEventFromJson(v);
    if (!e) throw storage::CorruptDocument("billing_events", doc.id, "not a billing event");
    out.items.push_back(std::move(*e));
  }
  return out;
}

BillingEventPage BillingEventRecorder::List(std::string_view tenant,
                                            std::string_view starting_after, int limit) {
  return ListBillingEvents(store_, tenant, starting_after, limit);
}

}  // namespace caas::events
