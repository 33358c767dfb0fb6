#include "metering/metering.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <sstream>

#include "core/log.h"

namespace caas::metering {
namespace {

constexpr int64_t kMicrosPerDay = 86'400'000'000;
constexpr uint8_t kEventRecord = 1;
constexpr uint8_t kVoidRecord = 2;
const uint64_t kHashSeed = std::random_device{}() * 0x9E3779B97F4A7C15ull ^ std::random_device{}();

int64_t Us(Instant t) { return t.time_since_epoch().count(); }
int64_t DayOf(Instant t) {
  int64_t us = Us(t);
  return us >= 0 ? us / kMicrosPerDay : -((-us + kMicrosPerDay - 1) / kMicrosPerDay);
}

// Key bytes: the tenant's number (4 bytes, see TenantRef), then source and id
// joined by U+001F, which neither may contain (control characters are
// rejected).
void BuildKey(std::string* out, uint32_t tenant_ref, std::string_view source, std::string_view id) {
  out->clear();
  out->append(reinterpret_cast<const char*>(&tenant_ref), sizeof tenant_ref);
  out->append(source);
  out->push_back('\x1f');
  out->append(id);
}

// What a re-sent event must repeat exactly to be a duplicate: type, time,
// quantity and (for user.active) subject.
Fingerprint FingerprintOf(const UsageEvent& ev) {
  char buf[17 + kMaxSubjectBytes];
  buf[0] = static_cast<char>(ev.type);
  int64_t t = Us(ev.time);
  std::memcpy(buf + 1, &t, 8);
  std::memcpy(buf + 9, &ev.quantity, 8);
  const size_t n = std::min(ev.subject.size(), kMaxSubjectBytes);
  std::memcpy(buf + 17, ev.subject.data(), n);
  XXH128_hash_t h = XXH3_128bits(buf, 17 + n);
  return Fingerprint{h.low64, h.high64};
}

// Record encoding (little-endian, see docs/metering.md):
//   u8 kind, u8 type, i64 time_us, i64 quantity, u16 lengths of tenant,
//   source, id, subject, then the bytes; void records add i64 voided_at_us,
//   u16 lengths of actor and reason, then those bytes.
class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  template <class T>
  void Put(T v) {
    out_->append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void Len(std::string_view s) { Put(static_cast<uint16_t>(s.size())); }
  void Bytes(std::string_view s) { out_->append(s); }

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
  bool ok() const { return ok_ && pos_ == in_.size(); }

 private:
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

void EncodeEventFields(Writer& w, uint8_t kind, const UsageEvent& ev) {
  w.Put(kind);
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

using Decoded = DecodedRecord;

std::optional<Decoded> Decode(std::string_view payload) {
  Reader r(payload);
  Decoded d;
  d.kind = r.Get<uint8_t>();
  uint8_t type = r.Get<uint8_t>();
  if (type < 1 || type > 4) return std::nullopt;
  d.event.type = static_cast<UsageType>(type);
  d.event.time = Instant(Micros(r.Get<int64_t>()));
  d.event.quantity = r.Get<int64_t>();
  uint16_t tl = r.Get<uint16_t>(), sl = r.Get<uint16_t>(), il = r.Get<uint16_t>(),
           subl = r.Get<uint16_t>();
  uint16_t al = 0, rl = 0;
  if (d.kind == kVoidRecord) {
    d.event.tenant = r.Bytes(tl);
    d.event.source = r.Bytes(sl);
    d.event.id = r.Bytes(il);
    d.event.subject = r.Bytes(subl);
    d.voided_at = Instant(Micros(r.Get<int64_t>()));
    al = r.Get<uint16_t>();
    rl = r.Get<uint16_t>();
    d.actor = r.Bytes(al);
    d.reason = r.Bytes(rl);
  } else if (d.kind == kEventRecord) {
    d.event.tenant = r.Bytes(tl);
    d.event.source = r.Bytes(sl);
    d.event.id = r.Bytes(il);
    d.event.subject = r.Bytes(subl);
  } else {
    return std::nullopt;
  }
  if (!r.ok()) return std::nullopt;
  return d;
}

int MetricIndex(Metric m) { return static_cast<int>(m); }

void AddUser(std::unordered_map<std::string, int32_t>& users, const std::string& subject,
             int sign) {
  if (sign > 0) {
    ++users[subject];
    return;
  }
  auto it = users.find(subject);
  if (it != users.end() && --it->second <= 0) users.erase(it);
}

std::optional<Decimal> OptDec(std::optional<int64_t> v) {
  if (!v) return std::nullopt;
  return Decimal::FromInt(*v);
}

}  // namespace

std::string_view OutcomeName(OutcomeKind kind) {
  switch (kind) {
    case OutcomeKind::kAccepted:
      return "accepted";
    case OutcomeKind::kDuplicate:
      return "duplicate";
    case OutcomeKind::kConflict:
      return "conflict";
    case OutcomeKind::kRejected:
      return "rejected";
  }
  return "rejected";
}

MeteringEngine::MeteringEngine(MeteringOptions options, const Clock& clock,
                               const PlanDirectory& plans, TenantExists tenant_exists,
                               ThresholdSink thresholds)
    : options_(std::move(options)),
      clock_(clock),
      plans_(plans),
      tenant_exists_(std::move(tenant_exists)),
      thresholds_(std::move(thresholds)),
      log_(options_.dir, options_.segment_bytes) {}

MeteringEngine::~MeteringEngine() {
  {
    std::lock_guard lock(ingest_mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();  // it stops the applier when done
  if (applier_.joinable()) applier_.join();
}

void MeteringEngine::Open() {
  if (options_.reserve_events > 0) {
    // Tenant number + "/source" + U+001F + a 24-byte id, about.
    dedupe_.Reserve(options_.reserve_events, 40);
  }
  uint64_t records = 0;
  replay_now_ = clock_.Now();
  log_.Open([&](uint64_t lsn, std::string_view payload) {
    ReplayRecord(lsn, payload);
    ++records;
  });
  FlushReplay();
  next_lsn_ = log_.end_lsn();
  durable_lsn_ = next_lsn_;
  Log(LogLevel::kInfo, "metering_opened",
      {{"records", static_cast<int64_t>(records)},
       {"events", static_cast<int64_t>(dedupe_.size())},
       {"log_bytes", static_cast<int64_t>(next_lsn_)}});
  applier_ = std::thread([this] { ApplyLoop(); });
  flusher_ = std::thread([this] { FlushLoop(); });
}

// Replay decodes records into a small batch, then looks their keys up with
// the index slots prefetched (each lookup is a random memory access).
void MeteringEngine::ReplayRecord(uint64_t lsn, std::string_view payload) {
  auto d = Decode(payload);
  if (!d) throw LogCorruption("undecodable event record at LSN " + std::to_string(lsn));
  if (d->event.tenant != replay_tenant_) {  // records come in runs of one tenant
    replay_tenant_ = d->event.tenant;
    replay_ref_ = TenantRef(replay_tenant_);
    std::lock_guard lock(known_mu_);
    known_.insert(replay_tenant_);
  }
  ReplayItem item{lsn, std::move(*d), {}, 0};
  BuildKey(&item.key, replay_ref_, item.record.event.source, item.record.event.id);
  item.hash = XXH3_64bits_withSeed(item.key.data(), item.key.size(), kHashSeed);
  replay_batch_.push_back(std::move(item));
  if (replay_batch_.size() >= 256) FlushReplay();
}

void MeteringEngine::FlushReplay() {
  for (const auto& item : replay_batch_) dedupe_.Prefetch(item.hash);
  for (auto& item : replay_batch_) {
    auto& d = item.record;
    if (d.kind == kEventRecord) {
      bool inserted = false;
      dedupe_.FindOrInsert(item.hash, item.key, item.lsn, FingerprintOf(d.event), &inserted);
      if (!inserted) {
        throw LogCorruption("event recorded twice at LSN " + std::to_string(item.lsn));
      }
      Apply(Op{false, std::move(d.event), {}, {}, {}}, true, replay_now_);
    } else {
      uint32_t n = dedupe_.Find(item.hash, item.key);
      if (n == DedupeIndex::kNone || (dedupe_.entry(n).flags & DedupeIndex::kVoided)) {
        throw LogCorruption("void of an unknown or voided event at LSN " +
                            std::to_string(item.lsn));
      }
      dedupe_.entry(n).flags |= DedupeIndex::kVoided;
      Apply(Op{true, std::move(d.event), d.voided_at, std::move(d.actor), std::move(d.reason)},
            false, replay_now_);
    }
  }
  replay_batch_.clear();
}

uint32_t MeteringEngine::TenantRef(std::string_view tenant) {
  {
    std::shared_lock lock(refs_mu_);
    if (auto it = refs_.find(tenant); it != refs_.end()) return it->second;
  }
  std::unique_lock lock(refs_mu_);
  auto [it, added] = refs_.try_emplace(std::string(tenant), static_cast<uint32_t>(refs_.size()));
  return it->second;
}

bool MeteringEngine::KnownTenant(std::string_view tenant) {
  {
    std::lock_guard lock(known_mu_);
    if (known_.find(tenant) != known_.end()) return true;
  }
  if (!tenant_exists_(tenant)) return false;
  std::lock_guard lock(known_mu_);
  known_.insert(std::string(tenant));
  return true;
}

std::vector<Outcome> MeteringEngine::Ingest(std::vector<ParsedEvent>& events) {
  const Instant now = clock_.Now();
  std::vector<Outcome> out(events.size());
  struct Prepared {
    size_t index;
    uint64_t hash;
    Fingerprint fp;
    size_t key_off, key_len, rec_off, rec_len;
  };
  std::vector<Prepared> prep;
  prep.reserve(events.size());
  std::string keys, framed, key, payload;
  std::string_view last_tenant;
  uint32_t last_ref = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    if (!events[i].event) {
      out[i] = Outcome{OutcomeKind::kRejected, events[i].field, events[i].reason};
      continue;
    }
    const UsageEvent& ev = *events[i].event;
    if (ev.time < now - options_.late_window) {
      out[i] = Outcome{OutcomeKind::kRejected, "time",
                       "is older than the late-arrival window (" +
                           std::to_string(options_.late_window.count() / kMicrosPerDay) + " days)"};
      continue;
    }
    if (ev.time > now + options_.future_window) {
      out[i] =
          Outcome{OutcomeKind::kRejected, "time",
                  "is more than " + std::to_string(options_.future_window.count() / 1'000'000) +
                      " s in the future"};
      continue;
    }
    if (ev.tenant != last_tenant) {
      if (!KnownTenant(ev.tenant)) {
        out[i] = Outcome{OutcomeKind::kRejected, "tenant", "no such tenant"};
        continue;
      }
      last_tenant = ev.tenant;
      last_ref = TenantRef(ev.tenant);
    }
    BuildKey(&key, last_ref, ev.source, ev.id);
    Prepared p{i,
               XXH3_64bits_withSeed(key.data(), key.size(), kHashSeed),
               FingerprintOf(ev),
               keys.size(),
               key.size(),
               framed.size(),
               0};
    keys.append(key);
    payload.clear();
    Writer w(&payload);
    EncodeEventFields(w, kEventRecord, ev);
    EventLog::Frame(&framed, payload);
    p.rec_len = framed.size() - p.rec_off;
    prep.push_back(p);
  }

  uint64_t wait_for = 0;
  {
    std::lock_guard lock(ingest_mu_);
    bool appended = false;
    constexpr size_t kAhead = 8;
    for (size_t j = 0; j < std::min(kAhead, prep.size()); ++j) dedupe_.Prefetch(prep[j].hash);
    for (size_t j = 0; j < prep.size(); ++j) {
      const Prepared& p = prep[j];
      if (j + kAhead < prep.size()) dedupe_.Prefetch(prep[j + kAhead].hash);
      std::string_view k(keys.data() + p.key_off, p.key_len);
      bool inserted = false;
      const uint32_t n = dedupe_.FindOrInsert(p.hash, k, next_lsn_, p.fp, &inserted);
      if (!inserted) {
        const DedupeEntry& e = dedupe_.entry(n);
        if (e.fingerprint == p.fp) {
          out[p.index].kind = OutcomeKind::kDuplicate;
        } else {
          out[p.index] = Outcome{OutcomeKind::kConflict, "id",
                                 "an event with this tenant, source and id was already accepted "
                                 "with a different type, time, quantity or subject"};
        }
        wait_for = std::max(wait_for, e.lsn + 1);
        continue;
      }
      pending_buf_.append(framed, p.rec_off, p.rec_len);
      next_lsn_ += p.rec_len;
      pending_ops_.push_back(Op{false, std::move(*events[p.index].event), {}, {}, {}});
      out[p.index].kind = OutcomeKind::kAccepted;
      wait_for = next_lsn_;
      appended = true;
    }
    if (appended) work_cv_.notify_one();
  }
  WaitDurable(wait_for);
  uint64_t counts[4] = {0, 0, 0, 0};
  for (const auto& o : out) ++counts[static_cast<int>(o.kind)];
  for (int i = 0; i < 4; ++i) {
    if (counts[i]) outcome_counts_[i].fetch_add(counts[i], std::memory_order_relaxed);
  }
  return out;
}

void MeteringEngine::WaitDurable(uint64_t lsn_end) {
  std::unique_lock lock(durable_mu_);
  durable_cv_.wait(lock, [&] { return durable_lsn_ >= lsn_end; });
}

// Two stages, so that applying group N to the aggregates overlaps writing and
// syncing group N+1: the flusher writes and fdatasyncs, the applier applies
// and then wakes the requests (so an answered event is already visible).
void MeteringEngine::FlushLoop() {
  std::string buf;
  std::vector<Op> ops;
  for (;;) {
    uint64_t end;
    {
      std::unique_lock lock(ingest_mu_);
      work_cv_.wait(lock, [&] { return !pending_buf_.empty() || stop_; });
      if (pending_buf_.empty()) break;  // stopping, nothing left
      buf.swap(pending_buf_);
      ops.swap(pending_ops_);
      end = next_lsn_;
    }
    log_.WriteAndSync(buf);
    buf.clear();
    group_commits_.fetch_add(1, std::memory_order_relaxed);
    {
      std::lock_guard lock(apply_mu_);
      apply_queue_.push_back(ApplyGroup{std::move(ops), end});
    }
    apply_cv_.notify_one();
    ops = {};
  }
  {
    std::lock_guard lock(apply_mu_);
    apply_stop_ = true;
  }
  apply_cv_.notify_one();
}

void MeteringEngine::ApplyLoop() {
  for (;;) {
    ApplyGroup group;
    {
      std::unique_lock lock(apply_mu_);
      apply_cv_.wait(lock, [&] { return !apply_queue_.empty() || apply_stop_; });
      if (apply_queue_.empty()) return;
      group = std::move(apply_queue_.front());
      apply_queue_.pop_front();
    }
    const Instant now = clock_.Now();
    for (const Op& op : group.ops) Apply(op, true, now);
    {
      std::lock_guard lock(durable_mu_);
      durable_lsn_ = group.end;
    }
    durable_cv_.notify_all();
  }
}

MeteringEngine::TenantState* MeteringEngine::Find(std::string_view tenant) const {
  std::shared_lock lock(tenants_mu_);
  auto it = tenants_.find(tenant);
  return it == tenants_.end() ? nullptr : it->second.get();
}

MeteringEngine::TenantState* MeteringEngine::FindOrCreate(std::string_view tenant) {
  if (TenantState* t = Find(tenant)) return t;
  std::unique_lock lock(tenants_mu_);
  auto& slot = tenants_[std::string(tenant)];
  if (!slot) {
    slot = std::make_unique<TenantState>(std::string(tenant));
    LoadTerms(*slot);
  }
  return slot.get();
}

void MeteringEngine::LoadTerms(TenantState& t) {
  PlanTerms terms = plans_.TermsFor(t.tenant);
  for (Metric m : {Metric::kMessages, Metric::kApiCalls, Metric::kMau}) {
    const CountTerms& c = terms.count(m);
    t.q_limit[MetricIndex(m)].store(c.limit.value_or(-1), std::memory_order_relaxed);
    t.q_included[MetricIndex(m)].store(c.included.value_or(-1), std::memory_order_relaxed);
  }
  t.terms = std::move(terms);
  t.last_period = Period{};
}

void MeteringEngine::RefreshTerms(std::string_view tenant) {
  TenantState* t = Find(tenant);
  if (!t) return;
  std::lock_guard lock(t->mu);
  LoadTerms(*t);
  t->q_end.store(0);  // forces the quota view to be rebuilt
}

MeteringEngine::PeriodAgg& MeteringEngine::PeriodOf(TenantState& t, Instant time) {
  if (!t.last_period.Contains(time)) t.last_period = plans_.PeriodFor(t.tenant, time);
  PeriodAgg& p = t.periods[Us(t.last_period.start)];
  p.period = t.last_period;
  return p;
}

void MeteringEngine::Apply(const Op& op, bool emit_thresholds, Instant now) {
  const UsageEvent& ev = op.event;
  // Only the applier (or the replay before it starts) runs this: remember
  // the last tenant, as events come in runs of one tenant.
  if (apply_tenant_ == nullptr || apply_tenant_->tenant != ev.tenant) {
    apply_tenant_ = FindOrCreate(ev.tenant);
  }
  TenantState& t = *apply_tenant_;
  std::lock_guard lock(t.mu);
  PeriodAgg& p = PeriodOf(t, ev.time);
  const int sign = op.is_void ? -1 : 1;
  const int64_t day = DayOf(ev.time);
  switch (ev.type) {
    case UsageType::kMessageSent:
      p.messages += sign * ev.quantity;
      t.days[day].messages += sign * ev.quantity;
      break;
    case UsageType::kApiCall:
      p.api_calls += sign * ev.quantity;
      t.days[day].api_calls += sign * ev.quantity;
      break;
    case UsageType::kUserActive:
      AddUser(p.users, ev.subject, sign);
      AddUser(t.days[day].users, ev.subject, sign);
      break;
    case UsageType::kMediaStored: {
      auto& slot = t.storage[Us(ev.time)];
      slot += sign * ev.quantity;
      if (slot == 0) t.storage.erase(Us(ev.time));
      break;
    }
  }
  if (op.is_void) {
    t.voids.push_back(VoidRecord{ev.tenant, ev.source, ev.id, ev.type, ev.time, ev.quantity,
                                 ev.subject, op.voided_at, op.actor, op.reason});
  } else if (emit_thresholds && thresholds_) {
    struct Check {
      Metric metric;
      int64_t used;
      uint8_t bit80, bit100;
    };
    for (const Check& c : {Check{Metric::kMessages, p.messages, 1, 2},
                           Check{Metric::kMau, static_cast<int64_t>(p.users.size()), 4, 8}}) {
      const auto& included = t.terms.count(c.metric).included;
      if (!included || *included <= 0) continue;
      const __int128 used = c.used;
      for (auto [percent, bit] : {std::pair{80, c.bit80}, std::pair{100, c.bit100}}) {
        if (!(p.thresholds & bit) && used * 100 >= static_cast<__int128>(*included) * percent) {
          p.thresholds |= bit;
          thresholds_(
              ThresholdEvent{t.tenant, c.metric, p.period, percent, c.used, *included, ev.time});
        }
      }
    }
  }
  if (Us(p.period.start) == t.q_start.load(std::memory_order_relaxed) || p.period.Contains(now)) {
    PublishQuota(t, p);
  }
}

void MeteringEngine::PublishQuota(const TenantState& t, const PeriodAgg& p) const {
  // A sequence lock without standalone fences (which ThreadSanitizer cannot
  // check): release stores here pair with acquire loads in CheckCount, so a
  // reader that sees any new value also sees the odd sequence number.
  // Free on x86 (plain moves).
  t.q_seq.fetch_add(1, std::memory_order_acq_rel);  // odd: writing
  t.q_start.store(Us(p.period.start), std::memory_order_release);
  t.q_end.store(Us(p.period.end), std::memory_order_release);
  t.q_used[0].store(p.messages, std::memory_order_release);
  t.q_used[1].store(p.api_calls, std::memory_order_release);
  t.q_used[2].store(static_cast<int64_t>(p.users.size()), std::memory_order_release);
  t.q_seq.fetch_add(1, std::memory_order_release);
}

void MeteringEngine::RefreshQuotaView(const TenantState& t, Instant now) const {
  std::lock_guard lock(t.mu);
  Period period = plans_.PeriodFor(t.tenant, now);
  auto it = t.periods.find(Us(period.start));
  PeriodAgg empty;
  empty.period = period;
  PublishQuota(t, it == t.periods.end() ? empty : it->second);
}

Result<QuotaDecision> MeteringEngine::CheckCount(std::string_view tenant, Metric metric,
                                                 int64_t quantity) const {
  auto* self = const_cast<MeteringEngine*>(this);
  TenantState* t = Find(tenant);
  if (!t) {
    if (!self->KnownTenant(tenant)) return Error::NotFound("no tenant " + std::string(tenant));
    t = self->FindOrCreate(tenant);
  }
  const int64_t now = Us(clock_.Now());
  const int i = MetricIndex(metric);
  int64_t start, end, used;
  for (;;) {
    uint64_t s1 = t->q_seq.load(std::memory_order_acquire);
    start = t->q_start.load(std::memory_order_acquire);
    end = t->q_end.load(std::memory_order_acquire);
    used = t->q_used[i].load(std::memory_order_acquire);
    uint64_t s2 = t->q_seq.load(std::memory_order_relaxed);
    if (s1 != s2 || (s1 & 1)) continue;
    if (now >= start && now < end) break;
    RefreshQuotaView(*t, Instant(Micros(now)));
  }
  const int64_t limit = t->q_limit[i].load(std::memory_order_relaxed);
  const int64_t included = t->q_included[i].load(std::memory_order_relaxed);
  QuotaDecision d;
  d.metric = metric;
  d.used = Decimal::FromInt(used);
  d.period = Period{Instant(Micros(start)), Instant(Micros(end))};
  if (included >= 0) d.included = Decimal::FromInt(included);
  if (limit >= 0) {
    d.limit = Decimal::FromInt(limit);
    d.remaining = Decimal::FromInt(std::max<int64_t>(0, limit - used));
    d.allowed = quantity <= limit - used;
  } else {
    d.allowed = true;
    if (included >= 0) d.remaining = Decimal::FromInt(std::max<int64_t>(0, included - used));
  }
  return d;
}

Result<QuotaDecision> MeteringEngine::CheckQuota(std::string_view tenant, Metric metric,
                                                 const Decimal& quantity) const {
  if (metric != Metric::kStorage) {
    auto whole = quantity.ToMinorUnitsExact(0);
    if (!whole)
      return Error::Invalid("quantity",
                            "must be a whole number for " + std::string(MetricName(metric)));
    return CheckCount(tenant, metric, *whole);
  }
  auto* self = const_cast<MeteringEngine*>(this);
  TenantState* t = Find(tenant);
  if (!t) {
    if (!self->KnownTenant(tenant)) return Error::NotFound("no tenant " + std::string(tenant));
    t = self->FindOrCreate(tenant);
  }
  const Instant now = clock_.Now();
  std::lock_guard lock(t->mu);
  QuotaDecision d;
  d.metric = metric;
  d.period = plans_.PeriodFor(t->tenant, now);
  d.used = StorageGbMonths(*t, d.period, now);
  d.included = t->terms.storage_included;
  d.limit = t->terms.storage_limit;
  if (d.limit) {
    Decimal rem = d.limit->Subtract(d.used).value();
    d.remaining = rem.IsNegative() ? Decimal() : rem;
    auto after = d.used.Add(quantity);
    d.allowed = after && *after <= *d.limit;
  }
  return d;
}

bool MeteringEngine::IsActive(std::string_view tenant, std::string_view subject) const {
  TenantState* t = Find(tenant);
  if (!t) return false;
  const Instant now = clock_.Now();
  std::lock_guard lock(t->mu);
  Period period = plans_.PeriodFor(t->tenant, now);
  auto it = t->periods.find(Us(period.start));
  return it != t->periods.end() && it->second.users.count(std::string(subject)) > 0;
}

Decimal MeteringEngine::StorageGbMonths(const TenantState& t, const Period& p,
                                        Instant as_of) const {
  if (as_of > p.end) as_of = p.end;
  if (as_of <= p.start) return Decimal();
  __int128 level = 0, byte_us = 0;
  int64_t prev = Us(p.start);
  const int64_t start = Us(p.start), stop = Us(as_of);
  for (const auto& [time, delta] : t.storage) {
    if (time >= stop) break;
    if (time >= start) {
      if (level > 0) byte_us += level * (time - prev);
      prev = time;
    }
    level += delta;
  }
  if (level > 0) byte_us += level * (stop - prev);
  // GB-month with 12 decimals: byte_us / (1e9 * period_us), scaled by 1e12.
  const __int128 num = byte_us * 1000;
  const __int128 den = static_cast<__int128>(Us(p.end) - Us(p.start));
  __int128 q = num / den, r = num % den;
  if (r * 2 >= den) ++q;  // half away from zero (num >= 0)
  return Decimal::FromRaw(q);
}

Result<UsageReport> MeteringEngine::Usage(std::string_view tenant, Instant at) const {
  auto* self = const_cast<MeteringEngine*>(this);
  if (!self->KnownTenant(tenant)) return Error::NotFound("no tenant " + std::string(tenant));
  TenantState* t = self->FindOrCreate(tenant);
  const Instant now = clock_.Now();
  std::lock_guard lock(t->mu);
  UsageReport r;
  r.tenant = t->tenant;
  r.plan = t->terms.plan;
  r.period = plans_.PeriodFor(t->tenant, at);
  r.as_of = std::min(now, r.period.end);
  int64_t counts[3] = {0, 0, 0};
  if (auto it = t->periods.find(Us(r.period.start)); it != t->periods.end()) {
    counts[0] = it->second.messages;
    counts[1] = it->second.api_calls;
    counts[2] = static_cast<int64_t>(it->second.users.size());
  }
  auto overage = [](const Decimal& used, const std::optional<Decimal>& included,
                    const std::optional<Decimal>& limit) {
    if (!included || limit) return Decimal();
    auto o = used.Subtract(*included);
    return o && !o->IsNegative() ? *o : Decimal();
  };
  for (Metric m : {Metric::kMessages, Metric::kApiCalls, Metric::kMau}) {
    MetricUsage u;
    u.metric = m;
    u.used = Decimal::FromInt(counts[MetricIndex(m)]);
    u.included = OptDec(t->terms.count(m).included);
    u.limit = OptDec(t->terms.count(m).limit);
    u.overage = overage(u.used, u.included, u.limit);
    r.metrics.push_back(u);
  }
  MetricUsage s;
  s.metric = Metric::kStorage;
  s.used = StorageGbMonths(*t, r.period, r.as_of);
  s.included = t->terms.storage_included;
  s.limit = t->terms.storage_limit;
  s.overage = overage(s.used, s.included, s.limit);
  r.metrics.push_back(s);
  return r;
}

Result<std::vector<DayUsage>> MeteringEngine::Daily(std::string_view tenant, int64_t from_day,
                                                    int64_t to_day) const {
  auto* self = const_cast<MeteringEngine*>(this);
  if (!self->KnownTenant(tenant)) return Error::NotFound("no tenant " + std::string(tenant));
  TenantState* t = self->FindOrCreate(tenant);
  std::lock_guard lock(t->mu);
  std::vector<DayUsage> out;
  auto storage_it = t->storage.begin();
  int64_t level = 0;
  for (int64_t day = from_day; day <= to_day; ++day) {
    DayUsage d;
    d.day = day;
    if (auto it = t->days.find(day); it != t->days.end()) {
      d.messages = it->second.messages;
      d.api_calls = it->second.api_calls;
      d.active_users = static_cast<int64_t>(it->second.users.size());
    }
    const int64_t day_end = (day + 1) * kMicrosPerDay;
    while (storage_it != t->storage.end() && storage_it->first < day_end) {
      level += storage_it->second;
      ++storage_it;
    }
    d.storage_bytes = std::max<int64_t>(0, level);
    out.push_back(d);
  }
  return out;
}

Result<VoidRecord> MeteringEngine::Void(std::string_view tenant, std::string_view source,
                                        std::string_view id, std::string_view actor,
                                        std::string_view reason) {
  std::string key;
  BuildKey(&key, TenantRef(tenant), source, id);
  const uint64_t hash = XXH3_64bits_withSeed(key.data(), key.size(), kHashSeed);
  uint64_t lsn;
  {
    std::lock_guard lock(ingest_mu_);
    uint32_t n = dedupe_.Find(hash, key);
    if (n == DedupeIndex::kNone) {
      return Error::NotFound("no event with this tenant, source and id");
    }
    if (dedupe_.entry(n).flags & DedupeIndex::kVoided) {
      return Error::Make(ErrorCode::kConflict, "the event is already voided");
    }
    lsn = dedupe_.entry(n).lsn;
  }
  WaitDurable(lsn + 1);
  auto payload = log_.Read(lsn);
  auto original = payload ? Decode(*payload) : std::nullopt;
  if (!original || original->kind != kEventRecord) {
    return Error::Make(ErrorCode::kInternal, "the event record cannot be read back");
  }
  VoidRecord rec{std::string(tenant),     std::string(source),  std::string(id),
                 original->event.type,    original->event.time, original->event.quantity,
                 original->event.subject, clock_.Now(),         std::string(actor),
                 std::string(reason)};
  std::string body;
  Writer w(&body);
  EncodeEventFields(w, kVoidRecord, original->event);
  w.Put(static_cast<int64_t>(Us(rec.voided_at)));
  w.Len(actor);
  w.Len(reason);
  w.Bytes(actor);
  w.Bytes(reason);
  uint64_t wait_for;
  {
    std::lock_guard lock(ingest_mu_);
    uint32_t n = dedupe_.Find(hash, key);
    if (dedupe_.entry(n).flags & DedupeIndex::kVoided) {
      return Error::Make(ErrorCode::kConflict, "the event is already voided");
    }
    dedupe_.entry(n).flags |= DedupeIndex::kVoided;
    const size_t before = pending_buf_.size();
    EventLog::Frame(&pending_buf_, body);
    next_lsn_ += pending_buf_.size() - before;
    pending_ops_.push_back(
        Op{true, std::move(original->event), rec.voided_at, rec.actor, rec.reason});
    wait_for = next_lsn_;
    work_cv_.notify_one();
  }
  WaitDurable(wait_for);
  voided_.fetch_add(1, std::memory_order_relaxed);
  return rec;
}

std::vector<VoidRecord> MeteringEngine::Voids(std::string_view tenant) const {
  TenantState* t = Find(tenant);
  if (!t) return {};
  std::lock_guard lock(t->mu);
  return t->voids;
}

IngestStats MeteringEngine::Stats() const {
  auto* self = const_cast<MeteringEngine*>(this);
  std::lock_guard lock(self->ingest_mu_);
  IngestStats st;
  st.events = dedupe_.size();
  st.log_bytes = next_lsn_;
  st.dedupe_memory_bytes = dedupe_.MemoryBytes();
  st.accepted = outcome_counts_[0].load(std::memory_order_relaxed);
  st.duplicate = outcome_counts_[1].load(std::memory_order_relaxed);
  st.conflict = outcome_counts_[2].load(std::memory_order_relaxed);
  st.rejected = outcome_counts_[3].load(std::memory_order_relaxed);
  st.voided = voided_.load(std::memory_order_relaxed);
  st.group_commits = group_commits_.load(std::memory_order_relaxed);
  return st;
}

std::string MeteringEngine::DebugSnapshot() const {
  std::vector<TenantState*> all;
  {
    std::shared_lock lock(tenants_mu_);
    for (const auto& [id, t] : tenants_) all.push_back(t.get());
  }
  std::sort(all.begin(), all.end(),
            [](TenantState* a, TenantState* b) { return a->tenant < b->tenant; });
  std::ostringstream os;
  for (TenantState* t : all) {
    std::lock_guard lock(t->mu);
    for (const auto& [start, p] : t->periods) {
      if (p.messages == 0 && p.api_calls == 0 && p.users.empty()) continue;
      std::vector<std::string> users;
      for (const auto& [u, c] : p.users) users.push_back(u);
      std::sort(users.begin(), users.end());
      os << t->tenant << " period " << start << " messages=" << p.messages
         << " api_calls=" << p.api_calls << " mau=" << users.size() << " users=";
      for (const auto& u : users) os << u << ',';
      os << '\n';
    }
    for (const auto& [day, d] : t->days) {
      if (d.messages == 0 && d.api_calls == 0 && d.users.empty()) continue;
      os << t->tenant << " day " << day << " messages=" << d.messages
         << " api_calls=" << d.api_calls << " active=" << d.users.size() << '\n';
    }
    for (const auto& [time, delta] : t->storage) {
      os << t->tenant << " storage " << time << ' ' << delta << '\n';
    }
  }
  return os.str();
}

}  // namespace caas::metering
