#include "invoices/numbering.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>
#include <exception>

namespace caas::invoices {
namespace json = boost::json;
namespace {

const char* const kCollection = "invoice_numbers";

struct SeriesDoc {
  int64_t next = 1;
  struct Held {
    std::string document;
    int64_t number;
    Instant at;
  };
  std::vector<Held> reserved;
  std::vector<int64_t> free;  // given back, ascending: taken before `next`
  int64_t version = 0;        // 0: not stored yet
};

SeriesDoc Decode(const storage::Document& d) {
  json::error_code ec;
  json::value v = json::parse(d.body, ec);
  try {
    if (ec) throw std::runtime_error("not JSON");
    const json::object& o = v.as_object();
    SeriesDoc s;
    s.next = o.at("next").as_int64();
    for (const auto& r : o.at("reserved").as_array()) {
      const auto& ro = r.as_object();
      auto at = ParseRfc3339(ro.at("at").as_string());
      if (!at) throw std::runtime_error("reserved[].at: not a time");
      s.reserved.push_back(
          {std::string(ro.at("document").as_string()), ro.at("number").as_int64(), *at});
    }
    if (const auto* f = o.if_contains("free")) {
      for (const auto& n : f->as_array()) s.free.push_back(n.as_int64());
    }
    s.version = d.version;
    return s;
  } catch (const std::exception& e) {
    throw storage::CorruptDocument(kCollection, d.id, e.what());
  }
}

storage::Document Encode(const std::string& series, const SeriesDoc& s) {
  json::array reserved;
  for (const auto& r : s.reserved) {
    reserved.push_back(
        json::object{{"document", r.document}, {"number", r.number}, {"at", FormatRfc3339(r.at)}});
  }
  storage::Document d;
  d.id = series;
  json::array free;
  for (int64_t n : s.free) free.push_back(n);
  d.body = json::serialize(
      json::object{{"series", series}, {"next", s.next}, {"reserved", reserved}, {"free", free}});
  if (!s.reserved.empty()) {
    Instant first = s.reserved.front().at;
    for (const auto& r : s.reserved) first = std::min(first, r.at);
    d.keys["reserved"] = storage::SortableTime(first.time_since_epoch().count());
  }
  return d;
}

Result<SeriesDoc> Load(storage::DocumentStore& store, const std::string& series) {
  auto d = store.Get(kCollection, series);
  if (!d) {
    if (d.error().code == ErrorCode::kNotFound) return SeriesDoc{};
    return d.error();
  }
  return Decode(*d);
}

Status Save(storage::DocumentStore& store, const std::string& series, const SeriesDoc& s) {
  const storage::Document d = Encode(series, s);
  if (s.version == 0) return store.Insert(kCollection, d);
  auto v = store.Replace(kCollection, d, s.version);
  if (!v) return v.error();
  return Status::Ok();
}

bool Retry(const Status& s) {
  return s.error().code == ErrorCode::kConflict || s.error().code == ErrorCode::kAlreadyExists;
}

}  // namespace

storage::CollectionSpec NumbersCollectionSpec() { return {kCollection, {{"reserved", false}}}; }

namespace {

// One operation on a series, on its decoded document; says whether it
// changed anything. Reserve answers the number.
Result<int64_t> Apply(SeriesDoc& s, NumberSeries::OpKind kind, std::string_view document,
                      Instant now, bool* changed) {
  auto held = std::find_if(s.reserved.begin(), s.reserved.end(),
                           [&](const SeriesDoc::Held& r) { return r.document == document; });
  switch (kind) {
    case NumberSeries::OpKind::kReserve: {
      if (held != s.reserved.end()) return held->number;
      int64_t number;
      if (!s.free.empty()) {
        number = s.free.front();
        s.free.erase(s.free.begin());
      } else {
        number = s.next++;
      }
      s.reserved.push_back({std::string(document), number, now});
      *changed = true;
      return number;
    }
    case NumberSeries::OpKind::kRelease:
      if (held == s.reserved.end()) return 0;
      s.reserved.erase(held);
      *changed = true;
      return 0;
    case NumberSeries::OpKind::kGiveBack: {
      if (held == s.reserved.end()) return 0;
      const int64_t number = held->number;
      s.reserved.erase(held);
      if (number == s.next - 1) {
        --s.next;
        // Trailing free numbers fold back into `next` too.
        while (!s.free.empty() && s.free.back() == s.next - 1) {
          s.free.pop_back();
          --s.next;
        }
      } else {
        s.free.insert(std::lower_bound(s.free.begin(), s.free.end(), number), number);
      }
      *changed = true;
      return 0;
    }
  }
  return 0;
}

}  // namespace

struct NumberSeries::Op {
  OpKind kind;
  const std::string* series;
  std::string_view document;
  std::optional<Result<int64_t>> result;
  std::exception_ptr error;
  bool done = false;
};

Result<int64_t> NumberSeries::Reserve(const std::string& series, std::string_view document) {
  return Combine(OpKind::kReserve, series, document);
}

Status NumberSeries::Release(const std::string& series, std::string_view document) {
  auto r = Combine(OpKind::kRelease, series, document);
  if (!r) return r.error();
  return Status::Ok();
}

Status NumberSeries::GiveBack(const std::string& series, std::string_view document) {
  auto r = Combine(OpKind::kGiveBack, series, document);
  if (!r) return r.error();
  return Status::Ok();
}

// Operations that arrive while a write of the series is under way wait, and
// the next write carries all of them: one read, every operation applied in
// arrival order, one versioned write (retried from a fresh read when
// another process wrote meanwhile). The result is what the operations would
// give one after another, with one commit instead of one each.
Result<int64_t> NumberSeries::Combine(OpKind kind, const std::string& series,
                                      std::string_view document) {
  Op op{kind, &series, document, std::nullopt, nullptr, false};
  std::unique_lock lock(mu_);
  queue_.push_back(&op);
  cv_.wait(lock, [&] { return op.done || queue_.front() == &op; });
  if (!op.done) {
    const std::vector<Op*> batch(queue_.begin(), queue_.end());
    lock.unlock();
    RunBatch(batch);
    lock.lock();
    for (size_t i = 0; i < batch.size(); ++i) {
      queue_.front()->done = true;
      queue_.pop_front();
    }
    cv_.notify_all();
  }
  if (op.error) std::rethrow_exception(op.error);
  return std::move(*op.result);
}

void NumberSeries::RunBatch(const std::vector<Op*>& batch) {
  std::vector<std::string> order;  // series in order of first appearance
  for (const Op* op : batch) {
    if (std::find(order.begin(), order.end(), *op->series) == order.end()) {
      order.push_back(*op->series);
    }
  }
  for (const std::string& series : order) {
    std::vector<Op*> ops;
    for (Op* op : batch) {
      if (*op->series == series) ops.push_back(op);
    }
    auto answer_all = [&](const Error& e) {
      for (Op* op : ops) op->result.emplace(e);
    };
    try {
      bool finished = false;
      for (int attempt = 0; attempt < 1000 && !finished; ++attempt) {
        auto s = Load(store_, series);
        if (!s) {
          answer_all(s.error());
          finished = true;
          break;
        }
        bool changed = false;
        std::vector<Result<int64_t>> results;
        const Instant now = clock_.Now();
        for (const Op* op : ops)
          results.push_back(Apply(*s, op->kind, op->document, now, &changed));
        Status saved = changed ? Save(store_, series, *s) : Status::Ok();
        if (saved) {
          for (size_t i = 0; i < ops.size(); ++i) ops[i]->result.emplace(std::move(results[i]));
          finished = true;
        } else if (!Retry(saved)) {
          answer_all(saved.error());
          finished = true;
        }
        // Otherwise another process wrote the series: read again.
      }
      if (!finished) {
        answer_all(
            Error::Make(ErrorCode::kUnavailable, "the number series " + series + " is too busy"));
      }
    } catch (...) {
      for (Op* op : ops) op->error = std::current_exception();
    }
  }
}

std::optional<Instant> NumberSeries::EarliestReservation() {
  return storage::EarliestTime(store_, kCollection, "reserved");
}

std::vector<Reservation> NumberSeries::ReservedBy(Instant until, int limit) {
  std::vector<Reservation> out;
  auto page = storage::DueBy(store_, kCollection, "reserved", until, limit);
  for (const auto& item : page.items) {
    const SeriesDoc s = Decode(item.doc);
    for (const auto& r : s.reserved) {
      if (r.at <= until) out.push_back({item.doc.id, r.document, r.number});
    }
  }
  return out;
}

int64_t NumberSeries::Last(const std::string& series) {
  auto s = Load(store_, series);
  return s ? s->next - 1 : 0;
}

std::string NumberSeries::Format(const std::string& series, int64_t number) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%06lld", static_cast<long long>(number));
  return series + "-" + buf;
}

}  // namespace caas::invoices
