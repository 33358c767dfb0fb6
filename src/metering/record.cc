#include "metering/record.h"

#include <cstring>

namespace caas::metering {
namespace {

int64_t Us(Instant t) { return t.time_since_epoch().count(); }
Instant FromUs(int64_t us) { return Instant(Micros(us)); }

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  template <class T>
  void Put(T v) {
    out_->append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void Len(std::string_view s) { Put(static_cast<uint16_t>(s.size())); }
  void Bytes(std::string_view s) { out_->append(s); }
  void Str(std::string_view s) {
    Len(s);
    Bytes(s);
  }

 private:
  std::string* out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <class T>
  T Get() {
    T v{};
    if (in_.size() - pos_ < sizeof v) {
      ok_ = false;
      return v;
    }
    std::memcpy(&v, in_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  std::string Bytes(size_t n) {
    if (in_.size() - pos_ < n) {
      ok_ = false;
      return {};
    }
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  std::string Str() { return Bytes(Get<uint16_t>()); }
  bool whole() const { return ok_ && pos_ == in_.size(); }
  bool ok() const { return ok_; }

 private:
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

void EncodeEventFields(Writer& w, RecordKind kind, const UsageEvent& ev) {
  w.Put(static_cast<uint8_t>(kind));
  w.Put(static_cast<uint8_t>(ev.type));
  w.Put(static_cast<int64_t>(Us(ev.time)));
  w.Put(ev.quantity);
  w.Len(ev.tenant);
  w.Len(ev.source);
  w.Len(ev.id);
  w.Len(ev.subject);
  w.Bytes(ev.tenant);
  w.Bytes(ev.source);
  w.Bytes(ev.id);
  w.Bytes(ev.subject);
}

void PutDecimal(Writer& w, const Decimal& d) {
  const __int128 raw = d.raw();
  w.Put(static_cast<uint64_t>(static_cast<unsigned __int128>(raw)));
  w.Put(static_cast<uint64_t>(static_cast<unsigned __int128>(raw) >> 64));
}
Decimal GetDecimal(Reader& r) {
  const uint64_t lo = r.Get<uint64_t>();
  const uint64_t hi = r.Get<uint64_t>();
  return Decimal::FromRaw(static_cast<__int128>((static_cast<unsigned __int128>(hi) << 64) | lo));
}

// Segment: i64 from, i64 schedule start, i64 anchor, u8 calendar, u8 has
// trial end, i64 trial end, u16+bytes plan, i32 plan version, u8 trial, i64
// base fee (minor units), u16+bytes currency, then per metric (messages,
// api_calls, mau, storage) u8 bits (1 included, 2 limit, 4 unit price) and
// the decimals present (i128 raw each).
void PutSegment(Writer& w, const catalog::Segment& s) {
  w.Put(static_cast<int64_t>(Us(s.from)));
  w.Put(static_cast<int64_t>(Us(s.schedule.start)));
  w.Put(static_cast<int64_t>(Us(s.schedule.anchor)));
  w.Put(static_cast<uint8_t>(s.schedule.calendar));
  w.Put(static_cast<uint8_t>(s.schedule.trial_end.has_value()));
  w.Put(static_cast<int64_t>(s.schedule.trial_end ? Us(*s.schedule.trial_end) : 0));
  w.Str(s.terms.plan);
  w.Put(static_cast<int32_t>(s.terms.plan_version));
  w.Put(static_cast<uint8_t>(s.terms.trial));
  w.Put(static_cast<int64_t>(s.terms.base_fee.amount_minor()));
  w.Str(s.terms.base_fee.currency().code);
  for (const catalog::MetricTerms& m : s.terms.metrics) {
    const uint8_t bits = (m.included ? 1 : 0) | (m.limit ? 2 : 0) | (m.unit_price ? 4 : 0);
    w.Put(bits);
    if (m.included) PutDecimal(w, *m.included);
    if (m.limit) PutDecimal(w, *m.limit);
    if (m.unit_price) PutDecimal(w, *m.unit_price);
  }
}

bool GetSegment(Reader& r, catalog::Segment* s) {
  s->from = FromUs(r.Get<int64_t>());
  s->schedule.start = FromUs(r.Get<int64_t>());
  s->schedule.anchor = FromUs(r.Get<int64_t>());
  s->schedule.calendar = r.Get<uint8_t>() != 0;
  const bool has_trial = r.Get<uint8_t>() != 0;
  const int64_t trial_end = r.Get<int64_t>();
  if (has_trial) s->schedule.trial_end = FromUs(trial_end);
  s->terms.plan = r.Str();
  s->terms.plan_version = r.Get<int32_t>();
  s->terms.trial = r.Get<uint8_t>() != 0;
  const int64_t fee = r.Get<int64_t>();
  const Currency* currency = Currency::Find(r.Str());
  if (!r.ok() || currency == nullptr) return false;
  s->terms.base_fee = Money(fee, *currency);
  for (catalog::MetricTerms& m : s->terms.metrics) {
    const uint8_t bits = r.Get<uint8_t>();
    if (bits & 1) m.included = GetDecimal(r);
    if (bits & 2) m.limit = GetDecimal(r);
    if (bits & 4) m.unit_price = GetDecimal(r);
  }
  return r.ok();
}

}  // namespace

void EncodeEvent(std::string* out, const UsageEvent& ev) {
  Writer w(out);
  EncodeEventFields(w, RecordKind::kEvent, ev);
}

void EncodeVoid(std::string* out, const UsageEvent& ev, Instant voided_at, std::string_view actor,
                std::string_view reason) {
  Writer w(out);
  EncodeEventFields(w, RecordKind::kVoid, ev);
  w.Put(static_cast<int64_t>(Us(voided_at)));
  w.Len(actor);
  w.Len(reason);
  w.Bytes(actor);
  w.Bytes(reason);
}

void EncodeTerms(std::string* out, std::string_view tenant, int64_t version,
                 const catalog::Timeline::Change& change) {
  Writer w(out);
  w.Put(static_cast<uint8_t>(RecordKind::kTerms));
  w.Str(tenant);
  w.Put(version);
  w.Put(static_cast<uint16_t>(change.keep));
  w.Put(static_cast<uint16_t>(change.tail.size()));
  for (const auto& s : change.tail) PutSegment(w, s);
}

std::optional<DecodedRecord> DecodeRecord(std::string_view payload) {
  Reader r(payload);
  DecodedRecord d;
  const uint8_t kind = r.Get<uint8_t>();
  if (kind == static_cast<uint8_t>(RecordKind::kTerms)) {
    d.kind = RecordKind::kTerms;
    d.tenant = r.Str();
    d.version = r.Get<int64_t>();
    d.change.keep = r.Get<uint16_t>();
    const uint16_t n = r.Get<uint16_t>();
    for (uint16_t i = 0; i < n && r.ok(); ++i) {
      catalog::Segment s;
      if (!GetSegment(r, &s)) return std::nullopt;
      d.change.tail.push_back(std::move(s));
    }
    if (!r.whole()) return std::nullopt;
    return d;
  }
  if (kind != static_cast<uint8_t>(RecordKind::kEvent) &&
      kind != static_cast<uint8_t>(RecordKind::kVoid)) {
    return std::nullopt;
  }
  d.kind = static_cast<RecordKind>(kind);
  const uint8_t type = r.Get<uint8_t>();
  if (type < 1 || type > 4) return std::nullopt;
  d.event.type = static_cast<UsageType>(type);
  d.event.time = FromUs(r.Get<int64_t>());
  d.event.quantity = r.Get<int64_t>();
  const uint16_t tl = r.Get<uint16_t>(), sl = r.Get<uint16_t>(), il = r.Get<uint16_t>(),
                 subl = r.Get<uint16_t>();
  d.event.tenant = r.Bytes(tl);
  d.event.source = r.Bytes(sl);
  d.event.id = r.Bytes(il);
  d.event.subject = r.Bytes(subl);
  if (d.kind == RecordKind::kVoid) {
    d.voided_at = FromUs(r.Get<int64_t>());
    const uint16_t al = r.Get<uint16_t>(), rl = r.Get<uint16_t>();
    d.actor = r.Bytes(al);
    d.reason = r.Bytes(rl);
  }
  if (!r.whole()) return std::nullopt;
  return d;
}

}  // namespace caas::metering
