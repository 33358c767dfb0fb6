#include "invoices/numbering.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>

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

Result<int64_t> NumberSeries::Reserve(const std::string& series, std::string_view document) {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    auto s = Load(store_, series);
    if (!s) return s.error();
    for (const auto& r : s->reserved) {
      if (r.document == document) return r.number;
    }
    int64_t number;
    if (!s->free.empty()) {
      number = s->free.front();
      s->free.erase(s->free.begin());
    } else {
      number = s->next++;
    }
    s->reserved.push_back({std::string(document), number, clock_.Now()});
    Status saved = Save(store_, series, *s);
    if (saved) return number;
    if (!Retry(saved)) return saved.error();  // another finalization won: read again
  }
  return Error::Make(ErrorCode::kUnavailable, "the number series " + series + " is too busy");
}

Status NumberSeries::Release(const std::string& series, std::string_view document) {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    auto s = Load(store_, series);
    if (!s) return s.error();
    const size_t before = s->reserved.size();
    std::erase_if(s->reserved, [&](const SeriesDoc::Held& r) { return r.document == document; });
    if (s->reserved.size() == before) return Status::Ok();
    Status saved = Save(store_, series, *s);
    if (saved) return saved;
    if (!Retry(saved)) return saved;
  }
  return Error::Make(ErrorCode::kUnavailable, "the number series " + series + " is too busy");
}

Status NumberSeries::GiveBack(const std::string& series, std::string_view document) {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    auto s = Load(store_, series);
    if (!s) return s.error();
    auto it = std::find_if(s->reserved.begin(), s->reserved.end(),
                           [&](const SeriesDoc::Held& r) { return r.document == document; });
    if (it == s->reserved.end()) return Status::Ok();
    const int64_t number = it->number;
    s->reserved.erase(it);
    if (number == s->next - 1) {
      --s->next;
      // Trailing free numbers fold back into `next` too.
      while (!s->free.empty() && s->free.back() == s->next - 1) {
        s->free.pop_back();
        --s->next;
      }
    } else {
      s->free.insert(std::lower_bound(s->free.begin(), s->free.end(), number), number);
    }
    Status saved = Save(store_, series, *s);
    if (saved) return saved;
    if (!Retry(saved)) return saved;
  }
  return Error::Make(ErrorCode::kUnavailable, "the number series " + series + " is too busy");
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
