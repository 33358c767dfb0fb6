#include "metering/metering.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <sstream>

#include "core/log.h"
#include "metering/record.h"

namespace caas::metering {
namespace {

constexpr int64_t kMicrosPerDay = 86'400'000'000;
const uint64_t kHashSeed = std::random_device{}() * 0x9E3779B97F4A7C15ull ^ std::random_device{}();

int64_t Us(Instant t) { return t.time_since_epoch().count(); }
Instant FromUs(int64_t us) { return Instant(Micros(us)); }

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

int64_t WholeOr(const std::optional<Decimal>& d, int64_t none) {
  if (!d) return none;
  auto v = d->ToMinorUnitsExact(0);
  return v ? *v : none;
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
                               TimelineSource timelines, ThresholdSink thresholds)
    : options_(std::move(options)),
      clock_(clock),
      timelines_(std::move(timelines)),
      thresholds_(std::move(thresholds)),
      log_(options_.dir, options_.segment_bytes, options_.env ? *options_.env : LogEnv::Default()) {
}

MeteringEngine::~MeteringEngine() {
  {
    std::lock_guard lock(ingest_mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  const bool started = flusher_.joinable();
  if (flusher_.joinable()) flusher_.join();  // it stops the applier when done
  if (applier_.joinable()) applier_.join();
  if (started) log_.Close();  // everything queued is written: a clean shutdown
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
  auto d = DecodeRecord(payload);
  if (!d) throw LogCorruption("undecodable record at LSN " + std::to_string(lsn));
  ReplayItem item{lsn, Op{}, {}, 0};
  item.op.lsn = lsn;
  if (d->kind == RecordKind::kTerms) {
    item.op.kind = OpKind::kTerms;
    item.op.x = std::make_unique<OpExtra>();
    item.op.x->tenant = std::move(d->tenant);
    item.op.x->version = d->version;
    item.op.x->change = std::move(d->change);
    replay_batch_.push_back(std::move(item));
    return;
  }
  if (d->event.tenant != replay_tenant_) {  // records come in runs of one tenant
    replay_tenant_ = d->event.tenant;
    replay_ref_ = TenantRef(replay_tenant_);
  }
  item.op.kind = d->kind == RecordKind::kVoid ? OpKind::kVoid : OpKind::kEvent;
  item.op.event = std::move(d->event);
  if (item.op.kind == OpKind::kVoid) {
    item.op.x = std::make_unique<OpExtra>();
    item.op.x->voided_at = d->voided_at;
    item.op.x->actor = std::move(d->actor);
    item.op.x->reason = std::move(d->reason);
  }
  BuildKey(&item.key, replay_ref_, item.op.event.source, item.op.event.id);
  item.hash = XXH3_64bits_withSeed(item.key.data(), item.key.size(), kHashSeed);
  replay_batch_.push_back(std::move(item));
  if (replay_batch_.size() >= 256) FlushReplay();
}

void MeteringEngine::FlushReplay() {
  for (const auto& item : replay_batch_) {
    if (item.op.kind != OpKind::kTerms) dedupe_.Prefetch(item.hash);
  }
  for (auto& item : replay_batch_) {
    Op& op = item.op;
    if (op.kind == OpKind::kTerms) {
      Logged& logged = logged_[op.x->tenant];
      if (op.x->change.keep > logged.timeline.segments().size()) {
        throw LogCorruption("terms record at LSN " + std::to_string(item.lsn) +
                            " keeps more segments than the tenant has");
      }
      logged.timeline.Apply(op.x->change);
      logged.version = op.x->version;
      {
        std::unique_lock lock(starts_mu_);
        starts_[op.x->tenant] = logged.timeline.start();
      }
    } else if (op.kind == OpKind::kEvent) {
      bool inserted = false;
      dedupe_.FindOrInsert(item.hash, item.key, item.lsn, FingerprintOf(op.event), &inserted);
      if (!inserted) {
        throw LogCorruption("event recorded twice at LSN " + std::to_string(item.lsn));
      }
    } else {
      uint32_t n = dedupe_.Find(item.hash, item.key);
      if (n == DedupeIndex::kNone || (dedupe_.entry(n).flags & DedupeIndex::kVoided)) {
        throw LogCorruption("void of an unknown or voided event at LSN " +
                            std::to_string(item.lsn));
      }
      dedupe_.entry(n).flags |= DedupeIndex::kVoided;
      op.x->filed_lsn = dedupe_.entry(n).lsn;
    }
    Apply(op, replay_now_);
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

MeteringEngine::TenantState* MeteringEngine::Find(std::string_view tenant) {
  std::shared_lock lock(tenants_mu_);
  auto it = tenants_.find(tenant);
  return it == tenants_.end() ? nullptr : it->second.get();
}

MeteringEngine::TenantState& MeteringEngine::Create(std::string_view tenant) {
  std::unique_lock lock(tenants_mu_);
  auto& slot = tenants_[std::string(tenant)];
  if (!slot) slot = std::make_unique<TenantState>(std::string(tenant));
  return *slot;
}

MeteringEngine::TenantState* MeteringEngine::FindOrLoad(std::string_view tenant) {
  if (TenantState* t = Find(tenant)) return t;
  // Not seen since the start: its timeline from the source (a read; the log
  // records it when its first event comes).
  auto source = timelines_(tenant);
  if (!source) return nullptr;
  TenantState& t = Create(tenant);
  std::lock_guard lock(t.mu);
  if (!t.usage.has_timeline()) {
    t.usage.ApplyTimeline(0, source->version, *catalog::Timeline().Diff(source->timeline));
  }
  return &t;
}

std::optional<Instant> MeteringEngine::TenantStart(std::string_view tenant) {
  {
    std::shared_lock lock(starts_mu_);
    if (auto it = starts_.find(tenant); it != starts_.end()) return it->second;
  }
  auto source = timelines_(tenant);
  if (!source) return std::nullopt;
  if (!SetTimeline(tenant, *source)) return source->timeline.start();  // not recorded: retried
  std::unique_lock lock(starts_mu_);
  auto [it, added] = starts_.try_emplace(std::string(tenant), source->timeline.start());
  return it->second;
}

void MeteringEngine::BeginGroupLocked() {
  if (!pending_buf_.empty()) return;
  EventLog::StartGroup(&pending_buf_);
  next_lsn_ += EventLog::kGroupHeaderBytes;
}

void MeteringEngine::UndoLocked(const Op& op) {
  switch (op.kind) {
    case OpKind::kEvent:
      dedupe_.MarkFailed(op.dedupe_ref);
      break;
    case OpKind::kVoid:
      dedupe_.entry(op.dedupe_ref).flags &= ~DedupeIndex::kVoided;
      break;
    case OpKind::kTerms: {
      Logged& logged = logged_[op.x->tenant];
      logged.version = op.x->prev_version;
      logged.timeline = op.x->prev_timeline;
      // The tenant's next event asks the source again, and records it then.
      std::unique_lock lock(starts_mu_);
      starts_.erase(op.x->tenant);
      break;
    }
  }
}

uint64_t MeteringEngine::QueueLocked(std::string_view payload, Op op) {
  BeginGroupLocked();
  op.lsn = next_lsn_;
  const size_t before = pending_buf_.size();
  EventLog::Frame(&pending_buf_, payload);
  next_lsn_ += pending_buf_.size() - before;
  pending_ops_.push_back(std::move(op));
  work_cv_.notify_one();
  return next_lsn_;
}

Status MeteringEngine::SetTimeline(std::string_view tenant, const VersionedTimeline& timeline) {
  if (timeline.timeline.empty()) return Status::Ok();
  uint64_t wait_for = 0, epoch = 0;
  {
    std::lock_guard lock(ingest_mu_);
    Logged& logged = logged_[std::string(tenant)];
    if (timeline.version < logged.version) return Status::Ok();  // an older read lost a race
    auto change = logged.timeline.Diff(timeline.timeline);
    if (!change) {
      logged.version = timeline.version;
      return Status::Ok();
    }
    std::string payload;
    EncodeTerms(&payload, tenant, timeline.version, *change);
    Op op;
    op.kind = OpKind::kTerms;
    op.x = std::make_unique<OpExtra>();
    op.x->tenant = std::string(tenant);
    op.x->version = timeline.version;
    op.x->change = std::move(*change);
    op.x->prev_version = logged.version;
    op.x->prev_timeline = logged.timeline;
    wait_for = QueueLocked(payload, std::move(op));
    epoch = epoch_;
    logged.timeline = timeline.timeline;
    logged.version = timeline.version;
  }
  {
    std::unique_lock lock(starts_mu_);
    starts_[std::string(tenant)] = timeline.timeline.start();
  }
  return WaitDurable(wait_for, epoch);
}

std::optional<std::string> MeteringEngine::WriteError() {
  std::lock_guard lock(durable_mu_);
  if (!write_error_) return std::nullopt;
  return write_error_->message;
}

Result<std::vector<Outcome>> MeteringEngine::Ingest(std::vector<ParsedEvent>& events) {
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
  std::optional<Instant> last_start;
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
      last_start = TenantStart(ev.tenant);
      last_tenant = ev.tenant;
      if (last_start) last_ref = TenantRef(ev.tenant);
    }
    if (!last_start) {
      out[i] = Outcome{OutcomeKind::kRejected, "tenant", "no such tenant"};
      continue;
    }
    if (ev.time < *last_start) {
      out[i] = Outcome{OutcomeKind::kRejected, "time",
                       "is before the tenant's billing started (" + FormatRfc3339(*last_start) +
                           "): there is no period to count it in"};
      continue;
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
    EncodeEvent(&payload, ev);
    EventLog::Frame(&framed, payload);
    p.rec_len = framed.size() - p.rec_off;
    prep.push_back(p);
  }

  uint64_t wait_for = 0, epoch = 0;
  {
    std::lock_guard lock(ingest_mu_);
    epoch = epoch_;
    bool appended = false;
    constexpr size_t kAhead = 8;
    for (size_t j = 0; j < std::min(kAhead, prep.size()); ++j) dedupe_.Prefetch(prep[j].hash);
    for (size_t j = 0; j < prep.size(); ++j) {
      const Prepared& p = prep[j];
      if (j + kAhead < prep.size()) dedupe_.Prefetch(prep[j + kAhead].hash);
      std::string_view k(keys.data() + p.key_off, p.key_len);
      bool inserted = false;
      // A new record goes after the pending group's header (opened below).
      const uint64_t lsn = next_lsn_ + (pending_buf_.empty() ? EventLog::kGroupHeaderBytes : 0);
      const uint32_t n = dedupe_.FindOrInsert(p.hash, k, lsn, p.fp, &inserted);
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
      BeginGroupLocked();
      Op op;
      op.lsn = next_lsn_;
      op.dedupe_ref = n;
      op.event = std::move(*events[p.index].event);
      pending_buf_.append(framed, p.rec_off, p.rec_len);
      next_lsn_ += p.rec_len;
      pending_ops_.push_back(std::move(op));
      out[p.index].kind = OutcomeKind::kAccepted;
      wait_for = next_lsn_;
      appended = true;
    }
    if (appended) work_cv_.notify_one();
  }
  Status durable = WaitDurable(wait_for, epoch);
  if (!durable) return durable.error();
  uint64_t counts[4] = {0, 0, 0, 0};
  for (const auto& o : out) ++counts[static_cast<int>(o.kind)];
  for (int i = 0; i < 4; ++i) {
    if (counts[i]) outcome_counts_[i].fetch_add(counts[i], std::memory_order_relaxed);
  }
  return out;
}

Status MeteringEngine::WaitDurable(uint64_t lsn_end, uint64_t epoch) {
  std::unique_lock lock(durable_mu_);
  // After a failed write, what was queued in the failed epoch beyond where the
  // log then ended was discarded; what was before it is durable.
  auto cut = [&]() -> std::optional<uint64_t> {
    if (durable_epoch_ == epoch) return std::nullopt;
    return failed_at_.at(epoch);
  };
  durable_cv_.wait(lock, [&] {
    const auto c = cut();
    return (c && lsn_end > *c) || durable_lsn_ >= lsn_end;
  });
  const auto c = cut();
  if (c && lsn_end > *c) {
    return write_error_ ? *write_error_
                        : Error::Make(ErrorCode::kUnavailable, "the event log cannot be written");
  }
  return Status::Ok();
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
    const uint64_t start = end - buf.size();
    Status written = log_.WriteAndSync(buf);
    buf.clear();
    if (!written) {
      // Nothing of this group, nor of what was queued behind it (its LSNs
      // follow this group's), reaches the log: take their claims back and
      // fail their requests. The next group starts where this one did.
      Log(LogLevel::kError, "event_log_write_failed",
          {{"error", written.error().message},
           {"dropped_bytes", static_cast<int64_t>(end - start)}});
      std::lock_guard lock(ingest_mu_);
      for (auto it = pending_ops_.rbegin(); it != pending_ops_.rend(); ++it) UndoLocked(*it);
      for (auto it = ops.rbegin(); it != ops.rend(); ++it) UndoLocked(*it);
      pending_buf_.clear();
      pending_ops_.clear();
      ops.clear();
      next_lsn_ = start;
      {
        std::lock_guard dlock(durable_mu_);
        failed_at_[epoch_] = start;
        durable_epoch_ = ++epoch_;
        write_error_ = written.error();
      }
      durable_cv_.notify_all();
      continue;
    }
    {
      std::lock_guard dlock(durable_mu_);
      write_error_.reset();
    }
    group_commits_.fetch_add(1, std::memory_order_relaxed);
    {
      std::lock_guard lock(apply_mu_);
      apply_queue_.push_back(ApplyGroup{std::move(ops), end});
    }
    apply_cv_.notify_one();
    ops = std::vector<Op>();
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
    for (Op& op : group.ops) Apply(op, now);
    {
      std::lock_guard lock(durable_mu_);
      durable_lsn_ = group.end;
    }
    durable_cv_.notify_all();
  }
}

// Runs on the applier thread (or the replay, before it starts), in log order.
void MeteringEngine::Apply(Op& op, Instant now) {
  const std::string& tenant = op.kind == OpKind::kTerms ? op.x->tenant : op.event.tenant;
  if (apply_tenant_ == nullptr || apply_tenant_->usage.tenant() != tenant) {
    apply_tenant_ = &Create(tenant);
  }
  TenantState& t = *apply_tenant_;
  std::vector<ThresholdEvent> crossed;
  {
    std::lock_guard lock(t.mu);
    if (op.kind == OpKind::kTerms) {
      // A timeline read from the source (not from the log) is replaced whole:
      // the first record of a tenant keeps nothing.
      t.usage.ApplyTimeline(op.lsn, op.x->version, op.x->change);
      t.quota.Invalidate();
    } else {
      if (!t.usage.has_timeline()) {
        // A log written before timelines were recorded: take today's (a
        // calendar-month Free timeline when even that cannot be read).
        Result<VersionedTimeline> source = Error::Make(ErrorCode::kUnavailable, "");
        try {
          source = timelines_(tenant);
        } catch (const std::exception& e) {
          Log(LogLevel::kError, "timeline_source_failed",
              {{"tenant", tenant}, {"error", std::string_view(e.what())}});
        }
        catalog::Timeline tl =
            source ? source->timeline
                   : catalog::Timeline({catalog::Segment{Instant{}, {}, catalog::Terms{}}});
        t.usage.ApplyTimeline(0, source ? source->version : 0, *catalog::Timeline().Diff(tl));
      }
      int64_t period_start;
      if (op.kind == OpKind::kEvent) {
        period_start = t.usage.Add(op.event, thresholds_ ? &crossed : nullptr);
      } else {
        period_start = t.usage.Remove(op.event, op.x->filed_lsn);
        t.usage.AddVoid(VoidRecord{op.event.tenant, op.event.source, op.event.id, op.event.type,
                                   op.event.time, op.event.quantity, op.event.subject,
                                   op.x->voided_at, op.x->actor, op.x->reason});
      }
      if (period_start == t.quota.period_start()) {
        t.quota.PublishUsed(t.usage.Counts(period_start));
      } else if (t.usage.timeline().PeriodAt(now).period.start == FromUs(period_start)) {
        RefreshQuota(t, now);
      }
    }
  }
  for (const auto& e : crossed) thresholds_(e);
}

void MeteringEngine::RefreshQuota(TenantState& t, Instant now) {
  const catalog::Timeline& tl = t.usage.timeline();
  const catalog::BillingPeriod bp = tl.PeriodAt(now);
  const size_t seg = tl.IndexAt(now);
  const Instant seg_end = tl.SegmentEnd(seg);
  const int64_t ws = std::max(Us(bp.period.start), Us(tl.segments()[seg].from));
  int64_t we = std::min(Us(bp.period.end), seg_end == Instant::max() ? INT64_MAX : Us(seg_end));
  if (now < tl.start()) we = 0;  // before the tenant existed: never cached
  QuotaView::Terms terms;
  const catalog::Terms& st = tl.segments()[seg].terms;
  for (Metric m : {Metric::kMessages, Metric::kApiCalls, Metric::kMau}) {
    const int i = catalog::MetricIndex(m);
    terms.limit[i] = WholeOr(st.of(m).limit, QuotaView::kNone);
    terms.included[i] = WholeOr(st.of(m).included, QuotaView::kNone);
  }
  const int64_t start = Us(bp.period.start);
  t.quota.Publish(start, Us(bp.period.end), ws, we, t.usage.Counts(start), terms);
}

Result<QuotaDecision> MeteringEngine::CheckCount(std::string_view tenant, Metric metric,
                                                 int64_t quantity) {
  TenantState* t = FindOrLoad(tenant);
  if (!t) return Error::NotFound("no tenant " + std::string(tenant));
  const Instant now = clock_.Now();
  const int i = catalog::MetricIndex(metric);
  QuotaView::Snapshot v;
  if (!t->quota.Read(i, Us(now), &v)) {
    std::lock_guard lock(t->mu);
    RefreshQuota(*t, now);
    t->quota.Read(i, Us(now), &v);
  }
  QuotaDecision d;
  d.metric = metric;
  d.used = Decimal::FromInt(v.used);
  d.period = Period{FromUs(v.period_start), FromUs(v.period_end)};
  if (v.included != QuotaView::kNone) d.included = Decimal::FromInt(v.included);
  if (v.limit != QuotaView::kNone) {
    d.limit = Decimal::FromInt(v.limit);
    d.remaining = Decimal::FromInt(std::max<int64_t>(0, v.limit - v.used));
    d.allowed = quantity <= v.limit - v.used;
  } else {
    d.allowed = true;
    if (v.included != QuotaView::kNone) {
      d.remaining = Decimal::FromInt(std::max<int64_t>(0, v.included - v.used));
    }
  }
  return d;
}

Result<QuotaDecision> MeteringEngine::CheckQuota(std::string_view tenant, Metric metric,
                                                 const Decimal& quantity) {
  if (catalog::IsCounted(metric)) {
    auto whole = quantity.ToMinorUnitsExact(0);
    if (!whole) {
      return Error::Invalid(
          "quantity", "must be a whole number for " + std::string(catalog::MetricName(metric)));
    }
    return CheckCount(tenant, metric, *whole);
  }
  TenantState* t = FindOrLoad(tenant);
  if (!t) return Error::NotFound("no tenant " + std::string(tenant));
  const Instant now = clock_.Now();
  std::lock_guard lock(t->mu);
  const catalog::Timeline& tl = t->usage.timeline();
  const catalog::BillingPeriod bp = tl.PeriodAt(now);
  const catalog::MetricTerms& terms = tl.At(now).terms.of(Metric::kStorage);
  QuotaDecision d;
  d.metric = metric;
  d.period = bp.period;
  d.used = t->usage.StorageGbMonths(bp.period.start, now, bp.full_seconds);
  d.included = terms.included;
  d.limit = terms.limit;
  if (d.limit) {
    Decimal rem = d.limit->Subtract(d.used).value();
    d.remaining = rem.IsNegative() ? Decimal() : rem;
    auto after = d.used.Add(quantity);
    d.allowed = after && *after <= *d.limit;
  }
  return d;
}

bool MeteringEngine::IsActive(std::string_view tenant, std::string_view subject) {
  TenantState* t = FindOrLoad(tenant);
  if (!t) return false;
  const Instant now = clock_.Now();
  std::lock_guard lock(t->mu);
  const int64_t start = Us(t->usage.timeline().PeriodAt(now).period.start);
  return t->usage.IsActive(start, std::string(subject));
}

Result<UsageReport> MeteringEngine::Usage(std::string_view tenant, Instant at) {
  TenantState* t = FindOrLoad(tenant);
  if (!t) return Error::NotFound("no tenant " + std::string(tenant));
  const Instant now = clock_.Now();
  std::lock_guard lock(t->mu);
  return t->usage.Report(at, now);
}

Result<std::vector<DayUsage>> MeteringEngine::Daily(std::string_view tenant, int64_t from_day,
                                                    int64_t to_day) {
  TenantState* t = FindOrLoad(tenant);
  if (!t) return Error::NotFound("no tenant " + std::string(tenant));
  std::lock_guard lock(t->mu);
  return t->usage.Daily(from_day, to_day);
}

Result<VoidRecord> MeteringEngine::Void(std::string_view tenant, std::string_view source,
                                        std::string_view id, std::string_view actor,
                                        std::string_view reason) {
  std::string key;
  BuildKey(&key, TenantRef(tenant), source, id);
  const uint64_t hash = XXH3_64bits_withSeed(key.data(), key.size(), kHashSeed);
  uint64_t lsn, epoch;
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
    epoch = epoch_;
  }
  if (Status s = WaitDurable(lsn + 1, epoch); !s) return s.error();
  auto payload = log_.Read(lsn);
  auto original = payload ? DecodeRecord(*payload) : std::nullopt;
  if (!original || original->kind != RecordKind::kEvent) {
    return Error::Make(ErrorCode::kInternal, "the event record cannot be read back");
  }
  VoidRecord rec{std::string(tenant),     std::string(source),  std::string(id),
                 original->event.type,    original->event.time, original->event.quantity,
                 original->event.subject, clock_.Now(),         std::string(actor),
                 std::string(reason)};
  std::string body;
  EncodeVoid(&body, original->event, rec.voided_at, actor, reason);
  uint64_t wait_for;
  {
    std::lock_guard lock(ingest_mu_);
    uint32_t n = dedupe_.Find(hash, key);
    if (n == DedupeIndex::kNone) {
      return Error::NotFound("no event with this tenant, source and id");
    }
    if (dedupe_.entry(n).flags & DedupeIndex::kVoided) {
      return Error::Make(ErrorCode::kConflict, "the event is already voided");
    }
    dedupe_.entry(n).flags |= DedupeIndex::kVoided;
    epoch = epoch_;
    Op op;
    op.kind = OpKind::kVoid;
    op.dedupe_ref = n;
    op.event = std::move(original->event);
    op.x = std::make_unique<OpExtra>();
    op.x->filed_lsn = lsn;
    op.x->voided_at = rec.voided_at;
    op.x->actor = rec.actor;
    op.x->reason = rec.reason;
    wait_for = QueueLocked(body, std::move(op));
  }
  if (Status s = WaitDurable(wait_for, epoch); !s) return s.error();
  voided_.fetch_add(1, std::memory_order_relaxed);
  return rec;
}

std::vector<VoidRecord> MeteringEngine::Voids(std::string_view tenant) {
  TenantState* t = Find(tenant);
  if (!t) return {};
  std::lock_guard lock(t->mu);
  return t->usage.voids();
}

IngestStats MeteringEngine::Stats() {
  std::lock_guard lock(ingest_mu_);
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

std::string MeteringEngine::DebugSnapshot() {
  std::vector<TenantState*> all;
  {
    std::shared_lock lock(tenants_mu_);
    for (const auto& [id, t] : tenants_) all.push_back(t.get());
  }
  std::sort(all.begin(), all.end(),
            [](TenantState* a, TenantState* b) { return a->usage.tenant() < b->usage.tenant(); });
  std::ostringstream os;
  for (TenantState* t : all) {
    std::lock_guard lock(t->mu);
    os << t->usage.Snapshot();
  }
  return os.str();
}

}  // namespace caas::metering
