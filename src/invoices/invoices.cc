#include "invoices/invoices.h"

#include <boost/json.hpp>
#include <map>
#include <set>

#include "core/log.h"
#include "invoices/codec.h"
#include "invoices/collections.h"

namespace caas::invoices {
namespace json = boost::json;
namespace {

std::string Ts(Instant t) { return FormatRfc3339(t); }
Instant Sec(Instant t) { return std::chrono::floor<std::chrono::seconds>(t); }
int Year(Instant t) { return std::stoi(Ts(t).substr(0, 4)); }
int64_t DayOf(Instant t) {
  return std::chrono::floor<std::chrono::days>(t).time_since_epoch().count();
}

// The credit note of an invoice has the same id body: cn_X for in_X.
std::string CreditNoteId(std::string_view invoice) {
  return "cn_" + std::string(invoice.substr(3));
}

Decimal ParseRate(const std::string& text) {
  auto d = Decimal::Parse(text);
  return d ? *d : Decimal();
}

bool Closed(InvoiceStatus s) { return s != InvoiceStatus::kDraft; }

}  // namespace

storage::CollectionSpec InvoicesCollectionSpec() {
  // period_key: one invoice per subscription and billing period, enforced
  // by the store (a unique index on MongoDB). number: never given twice.
  return {kInvoices,
          {{"carry_due", false},
           {"tenant", false},
           {"period_key", true},
           {"number", true},
           {"due_at", false},
           {"outbox", false},
           {"credit_due", false}}};
}

InvoiceService::InvoiceService(storage::DocumentStore& store, const Clock& clock, IdGenerator& ids,
                               subscriptions::SubscriptionService& subscriptions,
                               tenants::TenantService& tenants, UsageSource usage,
                               DailySource daily, InvoiceOptions options)
    : store_(store),
      clock_(clock),
      ids_(ids),
      subscriptions_(subscriptions),
      tenants_(tenants),
      usage_(std::move(usage)),
      daily_(std::move(daily)),
      options_(std::move(options)),
      numbers_(store, clock) {}

Instant InvoiceService::Now() const { return Sec(clock_.Now()); }

storage::Document InvoiceService::ToDocument(const Invoice& inv) const {
  storage::Document d;
  d.id = inv.id;
  d.body = json::serialize(InvoiceToJson(inv, true));
  d.keys["tenant"] = inv.tenant;
  if (inv.doc_kind == DocKind::kInvoice && inv.period_end && inv.period) {
    d.keys["period_key"] = inv.subscription + "@" +
                           storage::SortableTime(inv.period->start.time_since_epoch().count());
  }
  if (!inv.number.empty()) d.keys["number"] = inv.number;
  if (inv.status == InvoiceStatus::kDraft) {
    d.keys["due_at"] = storage::SortableTime(inv.finalize_at.time_since_epoch().count());
  }
  if (!inv.outbox.empty()) {
    d.keys["outbox"] =
        storage::SortableTime(inv.outbox.front().occurred_at.time_since_epoch().count());
  }
  if (inv.carry_pending && inv.finalized_at) {
    d.keys["carry_due"] = storage::SortableTime(inv.finalized_at->time_since_epoch().count());
  }
  if (inv.credit_pending && inv.voided_at) {
    d.keys["credit_due"] = storage::SortableTime(inv.voided_at->time_since_epoch().count());
  }
  return d;
}

Result<InvoiceService::Loaded> InvoiceService::Load(std::string_view collection,
                                                    std::string_view id) {
  auto d = store_.Get(collection, id);
  if (!d) return d.error();
  auto inv = InvoiceFromJson(d->body);
  if (!inv) throw storage::CorruptDocument(collection, id, inv.error().message);
  inv->version = d->version;
  return Loaded{std::move(*inv), d->version};
}

Status InvoiceService::Insert(std::string_view collection, Invoice& inv) {
  Status s = store_.Insert(collection, ToDocument(inv));
  if (s) inv.version = 1;
  return s;
}

Status InvoiceService::Replace(std::string_view collection, Invoice& inv) {
  auto v = store_.Replace(collection, ToDocument(inv), inv.version);
  if (!v) return v.error();
  inv.version = *v;
  return Status::Ok();
}

void InvoiceService::Emit(Invoice& inv, std::string type, json::object data,
                          std::string_view actor) {
  const bool cn = inv.doc_kind == DocKind::kCreditNote;
  data[cn ? "credit_note" : "invoice"] = inv.id;
  data["actor"] = actor;
  if (!inv.number.empty()) data["number"] = inv.number;
  data["total_minor"] = inv.total.amount_minor();
  data["currency"] = inv.currency->code;
  events::BillingEvent e;
  e.id = ids_.Next("bev");
  e.type = std::move(type);
  e.tenant = inv.tenant;
  e.occurred_at = Now();
  e.data = std::move(data);
  inv.outbox.push_back(std::move(e));
}

void InvoiceService::Address(Invoice& inv, const tenants::Tenant& t,
                             const Currency& currency) const {
  inv.currency = &currency;  // the subscription's: its fees and prices are in it
  auto mode = ParseTaxMode(t.tax_mode);
  inv.tax_mode = mode ? *mode : TaxMode::kStandard;
  inv.tax_rate = inv.tax_mode == TaxMode::kStandard ? ParseRate(t.tax_rate) : Decimal();
  if (inv.tax_mode == TaxMode::kReverseCharge) {
    inv.tax_note = "Reverse charge: VAT liability shifted to the customer";
  }
  inv.issuer = options_.issuer;
  inv.customer = CustomerOf(t);
}

Party InvoiceService::CustomerOf(const tenants::Tenant& t) const {
  Party p;
  p.name = t.name;
  if (t.address) {
    const auto& a = *t.address;
    p.address.push_back(a.line1);
    if (!a.line2.empty()) p.address.push_back(a.line2);
    std::string city = a.postal_code.empty() ? a.city : a.postal_code + " " + a.city;
    if (!a.state.empty()) city += ", " + a.state;
    p.address.push_back(city);
    p.address.push_back(a.country);
  }
  p.tax_id = t.tax_id;
  p.email = t.billing_email;
  return p;
}

Status InvoiceService::Recompute(Invoice& inv) {
  RatingInput in;
  in.currency = inv.currency;
  for (const auto& l : inv.lines) {
    if (l.type != LineType::kUsage && l.type != LineType::kLateUsage) in.fixed.push_back(l);
  }
  in.tax_mode = inv.tax_mode;
  in.tax_rate = inv.tax_rate;
  if (inv.period_end && inv.period) {
    auto u = usage_(inv.tenant, inv.period->start);
    if (!u) return u.error();
    in.usage = std::move(*u);
    // Late usage: earlier periods whose invoices are final, as long as
    // events for them may still arrive, compared with what was billed.
    std::map<int64_t, Period> earlier;
    const Instant horizon = inv.boundary - options_.late_window;
    std::string after;
    for (;;) {
      storage::ListQuery q;
      q.where_key = "tenant";
      q.where_value = inv.tenant;
      q.starting_after = after;
      q.limit = 1000;
      auto page = store_.List(kInvoices, q);
      for (const auto& d : page.items) {
        if (d.id == inv.id) continue;
        auto other = InvoiceFromJson(d.body);
        if (!other) throw storage::CorruptDocument(kInvoices, d.id, other.error().message);
        if (!Closed(other->status)) continue;
        in.billed_before.insert(in.billed_before.end(), other->billed.begin(), other->billed.end());
        if (other->period_end && other->period && other->period->end > horizon &&
            other->period->start < inv.period->start) {
          earlier[other->period->start.time_since_epoch().count()] = *other->period;
        }
      }
      if (!page.has_more || page.items.empty()) break;
      after = page.items.back().id;
    }
    for (const auto& [start, p] : earlier) {
      auto u2 = usage_(inv.tenant, p.start);
      if (!u2) return u2.error();
      in.earlier.push_back(std::move(*u2));
    }
  }
  auto r = Rate(in);
  if (!r) return r.error();
  inv.lines = std::move(r->lines);
  inv.taxes = std::move(r->taxes);
  inv.subtotal = r->subtotal;
  inv.tax = r->tax;
  inv.total = r->total;
  inv.amount_due = r->amount_due;
  inv.billed = std::move(r->billed);
  return Status::Ok();
}

Result<bool> InvoiceService::CloseNext(std::string_view tenant, Instant until) {
  auto w = subscriptions_.FirstClosing(tenant);
  if (!w) return w.error();
  if (!*w || (*w)->closing.at > until) return false;
  const subscriptions::Closing& c = (*w)->closing;
  // Made already (a crash before the closing was removed)? Then only the
  // removal is left.
  auto existing = store_.Get(kInvoices, c.invoice);
  if (!existing && existing.error().code != ErrorCode::kNotFound) return existing.error();
  if (!existing) {
    auto t = tenants_.Get(tenant);
    if (!t) return t.error();
    Invoice inv;
    inv.id = c.invoice;
    inv.tenant = std::string(tenant);
    inv.subscription = c.subscription;
    inv.period_end = c.period_end;
    if (c.period_end) inv.period = c.period;
    inv.boundary = c.at;
    inv.status = InvoiceStatus::kDraft;
    Address(inv, *t, *(*w)->currency);
    for (const auto& l : (*w)->lines) {
      inv.lines.push_back(FixedLine(l));
      inv.consumed_lines.push_back(l.id);
    }
    inv.created_at = Now();
    // A change is final at once; a period waits for late events.
    inv.finalize_at = c.period_end ? c.at + options_.grace : c.at;
    if (Status s = Recompute(inv); !s) return s.error();
    Emit(inv, "invoice.created",
         json::object{{"subscription", inv.subscription},
                      {"kind", inv.period_end ? "period" : "change"}},
         "scheduler");
    Status s = Insert(kInvoices, inv);
    if (!s && s.error().code == ErrorCode::kAlreadyExists && s.error().field != "id") {
      // Another invoice holds this subscription and period: the store's
      // unique key refused a second one. Never expected; left for an
      // operator with the closing kept (nothing is lost).
      Log(LogLevel::kError, "invoice_period_taken",
          {{"tenant", inv.tenant}, {"invoice", inv.id}, {"field", s.error().field}});
      return s.error();
    }
    if (!s && s.error().code != ErrorCode::kAlreadyExists) return s.error();
    if (s) RelayOutbox(kInvoices, inv.id);
  }
  if (Status s = subscriptions_.CompleteClosing(tenant, c.invoice); !s) return s.error();
  return true;
}

Result<std::vector<Invoice>> InvoiceService::Close(std::string_view tenant, Instant at) {
  std::vector<std::string> tenants;
  if (!tenant.empty()) {
    auto t = tenants_.Get(tenant);
    if (!t) return t.error();
    // Bring the subscription up to now: due transitions record boundaries.
    auto s = subscriptions_.Get(tenant, t->created_at);
    if (!s) return s.error();
    tenants.emplace_back(tenant);
  }
  std::vector<Invoice> made;
  auto close_one = [&](std::string_view id) -> Status {
    for (int guard = 0; guard < 1000; ++guard) {
      auto w = subscriptions_.FirstClosing(id);
      if (!w) return w.error();
      if (!*w || (*w)->closing.at > at) return Status::Ok();
      const std::string invoice = (*w)->closing.invoice;
      auto r = CloseNext(id, at);
      if (!r) return r.error();
      if (!*r) return Status::Ok();
      auto inv = Get(invoice);
      if (!inv) return inv.error();
      if (inv->status == InvoiceStatus::kDraft && inv->finalize_at <= Now()) {
        auto f = Finalize(invoice, "scheduler");
        if (!f) return f.error();
        made.push_back(std::move(*f));
      } else {
        made.push_back(std::move(*inv));
      }
    }
    return Status::Ok();
  };
  if (!tenant.empty()) {
    if (Status s = close_one(tenant); !s) return s.error();
    return made;
  }
  for (int guard = 0; guard < 1'000'000; ++guard) {
    auto next = subscriptions_.TenantsWithClosingDue(at, 1);
    if (next.empty()) break;
    const size_t before = made.size();
    if (Status s = close_one(next.front()); !s) return s.error();
    if (made.size() == before) break;  // nothing moved: do not spin
  }
  return made;
}

Result<Invoice> InvoiceService::Finalize(std::string_view id, std::string_view actor) {
  return FinalizeIn(kInvoices, id, std::nullopt, actor);
}

Result<Invoice> InvoiceService::FinalizeIn(std::string_view collection, std::string_view id,
                                           std::optional<std::string> series,
                                           std::string_view actor) {
  const bool cn = std::string_view(collection) == kCreditNotes;
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto l = Load(collection, id);
    if (!l) return l.error();
    Invoice inv = std::move(l->inv);
    if (inv.status != InvoiceStatus::kDraft) return inv;
    if (!cn) {
      if (Status s = Recompute(inv); !s) return s.error();
    }
    // 1. Reserve (or find) the number; 2. write it; 3. release.
    const std::string s =
        series ? *series : std::string(cn ? "CN-" : "INV-") + std::to_string(Year(Now()));
    auto number = numbers_.Reserve(s, inv.id);
    if (!number) return number.error();
    // Still a draft? Another finalization may have finished meanwhile (and
    // released its reservation before this one was made).
    auto again = Load(collection, id);
    if (!again) return again.error();
    if (again->inv.status != InvoiceStatus::kDraft) {
      if (again->inv.number != NumberSeries::Format(s, *number)) {
        if (Status g = numbers_.GiveBack(s, inv.id); !g) return g.error();
      }
      return std::move(again->inv);
    }
    inv.number = NumberSeries::Format(s, *number);
    inv.status = InvoiceStatus::kFinalized;
    inv.finalized_at = Now();
    // A negative invoice owes nothing; what it leaves over goes to the next.
    inv.carry_pending = !cn && inv.subtotal.amount_minor() < 0;
    Emit(inv, cn ? "credit_note.issued" : "invoice.finalized",
         json::object{{"amount_due_minor", inv.amount_due.amount_minor()}}, actor);
    Status w = Replace(collection, inv);
    if (!w) {
      if (w.error().code != ErrorCode::kConflict) return w.error();
      // Finalized by another meanwhile: give the number back unless it is
      // the one that went in.
      auto now = Load(collection, id);
      if (!now) return now.error();
      if (now->inv.status != InvoiceStatus::kDraft) {
        if (now->inv.number != inv.number) {
          if (Status g = numbers_.GiveBack(s, inv.id); !g) return g.error();
        }
        return std::move(now->inv);
      }
      continue;
    }
    if (Status r = numbers_.Release(s, inv.id); !r) return r.error();
    RelayOutbox(collection, inv.id);
    if (inv.carry_pending) {
      if (Status c = CarryCredit(inv.id); !c) return c.error();
    }
    auto out = Load(collection, id);
    if (!out) return out.error();
    return std::move(out->inv);
  }
  return Error::Make(ErrorCode::kConflict, "the invoice kept changing");
}

// Carries a negative invoice's subtotal into the tenant's pending lines (the
// subscription records it once), then clears the mark. Before tax: the next
// invoice taxes what is left after the credit.
Status InvoiceService::CarryCredit(std::string_view id) {
  auto l = Load(kInvoices, id);
  if (!l) return l.error();
  const Invoice& inv = l->inv;
  if (!inv.carry_pending) return Status::Ok();
  if (Status s = subscriptions_.CarryCredit(
          inv.tenant, inv.id, inv.subtotal, "Credit carried from " + inv.number,
          inv.period ? *inv.period : Period{inv.boundary, inv.boundary});
      !s) {
    return s;
  }
  return Update(kInvoices, id, [](Invoice& i) { i.carry_pending = false; });
}

Status InvoiceService::IssueCreditNote(const Invoice& voided) {
  const std::string id = voided.credit_note;
  auto existing = store_.Get(kCreditNotes, id);
  if (!existing && existing.error().code != ErrorCode::kNotFound) return existing.error();
  if (!existing) {
    Invoice cn = voided;
    cn.id = id;
    cn.doc_kind = DocKind::kCreditNote;
    cn.status = InvoiceStatus::kDraft;
    cn.number.clear();
    cn.credits = voided.id;
    cn.credit_note.clear();
    cn.credit_pending = false;
    cn.outbox.clear();
    cn.billed.clear();
    cn.consumed_lines.clear();
    cn.pdf.reset();  // its own PDF and e-mail, not the invoice's
    cn.email = EmailRecord{};
    cn.finalized_at.reset();
    cn.voided_at.reset();
    cn.created_at = Now();
    cn.finalize_at = cn.created_at;
    // Exactly what the invoice charged, negated: never more.
    for (auto& l : cn.lines) {
      l.amount = Money(-l.amount.amount_minor(), *cn.currency);
      l.quantity = Decimal::FromRaw(-l.quantity.raw());
      l.description = "Credit: " + l.description;
    }
    for (auto& t : cn.taxes) {
      t.taxable = Money(-t.taxable.amount_minor(), *cn.currency);
      t.amount = Money(-t.amount.amount_minor(), *cn.currency);
    }
    cn.subtotal = Money(-voided.subtotal.amount_minor(), *cn.currency);
    cn.tax = Money(-voided.tax.amount_minor(), *cn.currency);
    cn.total = Money(-voided.total.amount_minor(), *cn.currency);
    cn.amount_due = Money::Zero(*cn.currency);
    Status s = Insert(kCreditNotes, cn);
    if (!s && s.error().code != ErrorCode::kAlreadyExists) return s;
  }
  auto f = FinalizeIn(kCreditNotes, id, std::nullopt, "system");
  if (!f) return f.error();
  // The invoice's mark goes last: until then the sweep finishes the work.
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto l = Load(kInvoices, voided.id);
    if (!l) return l.error();
    if (!l->inv.credit_pending) return Status::Ok();
    l->inv.credit_pending = false;
    Status s = Replace(kInvoices, l->inv);
    if (s) return s;
    if (s.error().code != ErrorCode::kConflict) return s;
  }
  return Error::Make(ErrorCode::kConflict, "the invoice kept changing");
}

Result<Invoice> InvoiceService::Void(std::string_view id, std::string_view actor,
                                     std::string_view reason) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto l = Load(kInvoices, id);
    if (!l) return l.error();
    Invoice inv = std::move(l->inv);
    if (inv.status == InvoiceStatus::kVoid) {
      if (inv.credit_pending) {
        if (Status s = IssueCreditNote(inv); !s) return s.error();
        return Get(id);
      }
      return inv;
    }
    if (inv.status == InvoiceStatus::kDraft) {
      return Error::Make(ErrorCode::kFailedPrecondition,
                         "a draft cannot be voided: it is finalized with its period "
                         "(finalize it, then void it)");
    }
    if (inv.status == InvoiceStatus::kPaid) {
      return Error::Make(ErrorCode::kFailedPrecondition,
                         "a paid invoice is not voided: refund it (payments)");
    }
    if (inv.amount_paid.amount_minor() > 0) {
      // Its credit note would credit money already received.
      return Error::Make(ErrorCode::kFailedPrecondition,
                         "a partly paid invoice is not voided: refund its payments first");
    }
    inv.status = InvoiceStatus::kVoid;
    inv.voided_at = Now();
    inv.credit_note = CreditNoteId(inv.id);
    inv.credit_pending = true;
    Emit(inv, "invoice.voided",
         json::object{{"credit_note", inv.credit_note}, {"reason", std::string(reason)}}, actor);
    Status w = Replace(kInvoices, inv);
    if (!w) {
      if (w.error().code == ErrorCode::kConflict) continue;
      return w.error();
    }
    RelayOutbox(kInvoices, inv.id);
    if (Status s = IssueCreditNote(inv); !s) return s.error();
    return Get(id);
  }
  return Error::Make(ErrorCode::kConflict, "the invoice kept changing");
}

Result<Invoice> InvoiceService::RecordPayment(std::string_view id, const PaymentIn& payment,
                                              std::string_view actor) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto l = Load(kInvoices, id);
    if (!l) return l.error();
    Invoice inv = std::move(l->inv);
    switch (inv.status) {
      case InvoiceStatus::kDraft:
        return Error::Make(ErrorCode::kFailedPrecondition,
                           "a draft is not paid: it is finalized with its period");
      case InvoiceStatus::kVoid:
        return Error::Make(ErrorCode::kFailedPrecondition, "a void invoice is not paid");
      case InvoiceStatus::kPaid:
        return Error::Make(ErrorCode::kFailedPrecondition, "the invoice is paid already");
      case InvoiceStatus::kFinalized:
      case InvoiceStatus::kUncollectible:
        break;
    }
    if (&payment.amount.currency() != inv.currency) {
      return Error::Invalid(
          "amount", "must be in the invoice's currency, " + std::string(inv.currency->code));
    }
    const int64_t remaining = inv.amount_due.amount_minor() - inv.amount_paid.amount_minor();
    if (payment.amount.amount_minor() <= 0) {
      return Error::Invalid("amount", "must be more than zero");
    }
    if (payment.amount.amount_minor() > remaining) {
      return Error::Invalid("amount", "is more than the amount remaining, " +
                                          Money(remaining, *inv.currency).ToDecimalString() + " " +
                                          std::string(inv.currency->code) +
                                          " (an overpayment is refused)");
    }
    if (!payment.reference.empty()) {
      for (const auto& p : inv.payments) {
        if (p.method == payment.method && p.reference == payment.reference) {
          return Error{
              ErrorCode::kAlreadyExists,
              "a " + p.method + " payment with this reference is recorded already (" + p.id + ")",
              "reference"};
        }
      }
    }
    PaymentRecord rec{ids_.Next("py"),   payment.amount, payment.method,
                      payment.reference, Now(),          std::string(actor)};
    inv.payments.push_back(rec);
    inv.amount_paid =
        Money(inv.amount_paid.amount_minor() + rec.amount.amount_minor(), *inv.currency);
    const int64_t left = remaining - rec.amount.amount_minor();
    Emit(inv, "payment.succeeded",
         json::object{{"invoice", inv.id},
                      {"payment", rec.id},
                      {"amount", MoneyToJson(rec.amount)},
                      {"method", rec.method},
                      {"reference", rec.reference},
                      {"amount_remaining", MoneyToJson(Money(left, *inv.currency))}},
         actor);
    if (left == 0) {
      inv.status = InvoiceStatus::kPaid;
      inv.paid_at = rec.at;
      Emit(inv, "invoice.paid",
           json::object{{"number", inv.number}, {"amount_paid", MoneyToJson(inv.amount_paid)}},
           actor);
    }
    Status w = Replace(kInvoices, inv);
    if (!w) {
      if (w.error().code == ErrorCode::kConflict) continue;
      return w.error();
    }
    RelayOutbox(kInvoices, inv.id);
    return Get(id);
  }
  return Error::Make(ErrorCode::kConflict, "the invoice kept changing");
}

Result<Invoice> InvoiceService::Get(std::string_view id) {
  auto l = Load(kInvoices, id);
  if (!l) return l.error();
  return std::move(l->inv);
}

Result<InvoiceService::ApiText> InvoiceService::GetApiText(std::string_view id) {
  auto d = store_.Get(kInvoices, id);
  if (!d) return d.error();
  const std::string key(id);
  {
    std::lock_guard lock(api_cache_mu_);
    auto it = api_cache_.find(key);
    if (it != api_cache_.end() && it->second.version == d->version) return it->second.text;
  }
  auto o = StoredToApiJson(d->body);
  if (!o) throw storage::CorruptDocument(kInvoices, id, o.error().message);
  const json::value* tenant = o->if_contains("tenant");
  ApiText text{tenant && tenant->is_string() ? std::string(tenant->as_string()) : std::string(),
               json::serialize(*o)};
  std::lock_guard lock(api_cache_mu_);
  if (api_cache_.size() >= 20'000) api_cache_.clear();  // bounded; refilled on demand
  api_cache_[key] = CachedText{d->version, text};
  return text;
}

Result<Invoice> InvoiceService::GetCreditNote(std::string_view id) {
  auto l = Load(kCreditNotes, id);
  if (!l) return l.error();
  return std::move(l->inv);
}

InvoiceService::ListPage InvoiceService::List(const Filter& f, std::string_view starting_after,
                                              int limit) {
  ListPage out;
  std::string after(starting_after);
  for (;;) {
    storage::ListQuery q;
    if (!f.tenant.empty()) {
      q.where_key = "tenant";
      q.where_value = f.tenant;
    }
    q.starting_after = after;
    q.limit = 200;
    auto page = store_.List(kInvoices, q);
    for (const auto& d : page.items) {
      after = d.id;
      auto inv = InvoiceFromJson(d.body);
      if (!inv) throw storage::CorruptDocument(kInvoices, d.id, inv.error().message);
      if (f.status && inv->status != *f.status) continue;
      if (f.period_at && !(inv->period && inv->period->Contains(*f.period_at))) continue;
      if (static_cast<int>(out.items.size()) == limit) {
        out.has_more = true;
        return out;
      }
      inv->version = d.version;
      out.items.push_back(std::move(*inv));
    }
    if (!page.has_more || page.items.empty()) return out;
  }
}

InvoiceService::ListPage InvoiceService::ListCreditNotes(std::string_view tenant,
                                                         std::string_view starting_after,
                                                         int limit) {
  ListPage out;
  storage::ListQuery q;
  if (!tenant.empty()) {
    q.where_key = "tenant";
    q.where_value = std::string(tenant);
  }
  q.starting_after = std::string(starting_after);
  q.limit = limit;
  auto page = store_.List(kCreditNotes, q);
  for (const auto& d : page.items) {
    auto inv = InvoiceFromJson(d.body);
    if (!inv) throw storage::CorruptDocument(kCreditNotes, d.id, inv.error().message);
    out.items.push_back(std::move(*inv));
  }
  out.has_more = page.has_more;
  return out;
}

Result<Invoice> InvoiceService::Upcoming(std::string_view tenant) {
  auto t = tenants_.Get(tenant);
  if (!t) return t.error();
  auto w = subscriptions_.PreviewNextClosing(tenant, t->created_at);
  if (!w) return w.error();
  const subscriptions::Closing& c = w->closing;
  Invoice inv;
  inv.id = "upcoming";
  inv.tenant = std::string(tenant);
  inv.subscription = c.subscription;
  inv.period_end = true;
  inv.period = c.period;
  inv.boundary = c.at;
  Address(inv, *t, *w->currency);
  for (const auto& l : w->lines) inv.lines.push_back(FixedLine(l));
  inv.created_at = Now();
  inv.finalize_at = c.at + options_.grace;
  if (Status s = Recompute(inv); !s) return s.error();
  return inv;
}

Result<json::object> InvoiceService::LineUsage(std::string_view id, size_t n) {
  auto inv = Get(id);
  if (!inv) return inv.error();
  if (n >= inv->lines.size()) {
    return Error::NotFound("invoice " + std::string(id) + " has " +
                           std::to_string(inv->lines.size()) + " lines");
  }
  const InvoiceLine& l = inv->lines[n];
  if (!l.metric) {
    return Error::Invalid("n", "line " + std::to_string(n) + " is a " +
                                   std::string(LineTypeName(l.type)) + " line, not usage");
  }
  auto u = usage_(inv->tenant, l.usage_period.start);
  if (!u) return u.error();
  const int mi = catalog::MetricIndex(*l.metric);
  json::object out{
      {"invoice", inv->id},
      {"line", static_cast<int64_t>(n)},
      {"type", LineTypeName(l.type)},
      {"metric", catalog::MetricName(*l.metric)},
      {"unit", catalog::MetricUnit(*l.metric)},
      {"billing_period",
       json::object{{"start", Ts(l.usage_period.start)}, {"end", Ts(l.usage_period.end)}}},
      {"slice", json::object{{"start", Ts(l.period.start)}, {"end", Ts(l.period.end)}}},
      {"quantity", l.quantity.ToString()},
      {"unit_price", l.unit_price.ToString()},
      {"amount_minor", l.amount.amount_minor()},
      {"currency", l.amount.currency().code}};
  json::array slices;
  for (const auto& s : u->slices) {
    const catalog::MetricTerms& mt = s.terms.of(*l.metric);
    slices.push_back(json::object{
        {"start", Ts(s.from)},
        {"end", Ts(s.to)},
        {"plan", s.terms.plan},
        {"plan_version", s.terms.plan_version},
        {"included", mt.included ? json::value(mt.included->ToString()) : json::value()},
        {"unit_price", mt.unit_price ? json::value(mt.unit_price->ToString()) : json::value()},
        {"used", s.used[mi].ToString()},
        {"billable_now", s.billable[mi].ToString()}});
  }
  out["slices"] = slices;
  out["rule"] =
      "One allowance per billing period, consumed in time order: units used beyond the "
      "included quantity of the terms in force are billed at that slice's unit price. "
      "amount = round(quantity x unit_price) to the currency's minor unit, half away from "
      "zero, once per line." +
      std::string(l.type == LineType::kLateUsage
                      ? " A late-usage line bills the units that arrived after the period was "
                        "invoiced: billable now minus what earlier invoices billed."
                      : "");
  if (daily_) {
    auto days = daily_(inv->tenant, DayOf(l.period.start),
                       DayOf(l.period.end - std::chrono::microseconds(1)));
    if (!days) return days.error();
    json::array per_day;
    for (const auto& d : *days) {
      json::object o{{"date", Ts(Instant(std::chrono::days(d.day))).substr(0, 10)}};
      switch (*l.metric) {
        case catalog::Metric::kMessages:
          o["messages"] = d.messages;
          break;
        case catalog::Metric::kApiCalls:
          o["api_calls"] = d.api_calls;
          break;
        case catalog::Metric::kMau:
          o["active_users"] = d.active_users;
          break;
        case catalog::Metric::kStorage:
          o["storage_bytes_at_end"] = d.storage_bytes;
          break;
      }
      per_day.push_back(std::move(o));
    }
    out["days"] = per_day;
  }
  return out;
}

bool InvoiceService::RelayOutbox(std::string_view collection, std::string_view id) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    auto l = Load(collection, id);
    if (!l) return l.error().code == ErrorCode::kNotFound;
    if (l->inv.outbox.empty()) return true;
    for (const auto& e : l->inv.outbox) {
      // A final document is delivered (PDF, e-mail) by a job, enqueued
      // before its event leaves the outbox: at least once, and its key
      // makes it one job.
      if (jobs_ && (e.type == "invoice.finalized" || e.type == "credit_note.issued")) {
        jobs::JobSpec spec;
        spec.type = "invoice.deliver";
        spec.payload = json::object{{"id", std::string(id)},
                                    {"credit_note", std::string_view(collection) == kCreditNotes}};
        spec.run_at = clock_.Now();
        spec.key = "deliver:" + std::string(id);
        auto j = jobs_->Enqueue(std::move(spec));
        if (!j) return false;  // left in the outbox: the relay runs again
      }
      if (jobs_ && e.type == "invoice.finalized" && std::string_view(collection) == kInvoices) {
        for (const auto& type : on_finalized_jobs_) {
          jobs::JobSpec spec;
          spec.type = type;
          spec.payload = json::object{{"invoice", std::string(id)}};
          spec.run_at = clock_.Now();
          spec.key = type + ":" + std::string(id);
          if (!jobs_->Enqueue(std::move(spec))) return false;
        }
      }
      events::PublishBillingEvent(store_, clock_, e);
    }
    l->inv.outbox.clear();
    Status s = Replace(collection, l->inv);
    if (s) return true;
    if (s.error().code != ErrorCode::kConflict) return false;
  }
  return false;
}

Status InvoiceService::Update(std::string_view collection, std::string_view id,
                              const std::function<void(Invoice&)>& f) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto l = Load(collection, id);
    if (!l) return l.error();
    f(l->inv);
    Status s = Replace(collection, l->inv);
    if (s || s.error().code != ErrorCode::kConflict) return s;
  }
  return Error::Make(ErrorCode::kConflict, "the document kept changing");
}

void InvoiceService::RegisterWith(jobs::Scheduler& scheduler) {
  auto due = [this](const char* collection, const char* key) {
    return [this, collection, key](Instant until, size_t limit) {
      return storage::DueIds(store_, collection, key, until, limit);
    };
  };
  auto earliest = [this](const char* collection, const char* key) {
    return [this, collection, key] { return storage::EarliestTime(store_, collection, key); };
  };
  auto logged = [](const char* what, std::string_view id, const Error& e) {
    Log(LogLevel::kError, what, {{"id", id}, {"error", e.message}});
    return false;
  };
  // Each item below is one tenant's or one invoice's business, so they run
  // in parallel (Scheduler::Keyed); each returns true also when the item is
  // no longer due (another worker did it), false only when it failed.
  scheduler.Add(jobs::Scheduler::Keyed(
      "invoices.close", [this] { return subscriptions_.EarliestClosing(); },
      [this](Instant until, size_t limit) {
        return subscriptions_.TenantsWithClosingDue(until, limit);
      },
      [this, logged](const std::string& tenant, Instant until) {
        auto r = CloseNext(tenant, until);
        if (!r) return logged("invoice_close_failed", tenant, r.error());
        return true;
      }));
  scheduler.Add(jobs::Scheduler::Keyed("invoices.finalize", earliest(kInvoices, "due_at"),
                                       due(kInvoices, "due_at"),
                                       [this, logged](const std::string& id, Instant) {
                                         auto r = Finalize(id, "scheduler");
                                         if (!r)
                                           return logged("invoice_finalize_failed", id, r.error());
                                         return true;
                                       }));
  scheduler.Add(jobs::Scheduler::Source{
      "invoices.numbers", [this] { return numbers_.EarliestReservation(); },
      [this, logged](Instant until) {
        // A crash between reserving a number and writing it: roll forward.
        // (One series document: not keyed, one at a time.)
        auto held = numbers_.ReservedBy(until, 1);
        if (held.empty()) return false;
        const Reservation& r = held.front();
        const char* collection = r.series.rfind("CN-", 0) == 0 ? kCreditNotes : kInvoices;
        auto l = Load(collection, r.document);
        if (!l && l.error().code != ErrorCode::kNotFound) {
          return logged("invoice_number_recovery_failed", r.document, l.error());
        }
        if (l && l->inv.status == InvoiceStatus::kDraft) {
          auto f = FinalizeIn(collection, r.document, r.series, "system");
          if (!f) return logged("invoice_number_recovery_failed", r.document, f.error());
          return true;
        }
        // Its number is in the document: done. Otherwise (it got another
        // number, or is gone) the number goes back to the series.
        const bool used = l && l->inv.number == NumberSeries::Format(r.series, r.number);
        Status s =
            used ? numbers_.Release(r.series, r.document) : numbers_.GiveBack(r.series, r.document);
        if (!s) return logged("invoice_number_recovery_failed", r.document, s.error());
        return true;
      }});
  scheduler.Add(jobs::Scheduler::Keyed("invoices.carry", earliest(kInvoices, "carry_due"),
                                       due(kInvoices, "carry_due"),
                                       [this, logged](const std::string& id, Instant) {
                                         Status s = CarryCredit(id);
                                         if (!s)
                                           return logged("credit_carry_failed", id, s.error());
                                         return true;
                                       }));
  scheduler.Add(jobs::Scheduler::Keyed("invoices.credit_notes", earliest(kInvoices, "credit_due"),
                                       due(kInvoices, "credit_due"),
                                       [this, logged](const std::string& id, Instant) {
                                         auto inv = Get(id);
                                         if (!inv)
                                           return logged("credit_note_failed", id, inv.error());
                                         Status s = IssueCreditNote(*inv);
                                         if (!s) return logged("credit_note_failed", id, s.error());
                                         return true;
                                       }));
  for (const char* collection : {kInvoices, kCreditNotes}) {
    scheduler.Add(jobs::Scheduler::Keyed(std::string(collection) + ".outbox",
                                         earliest(collection, "outbox"), due(collection, "outbox"),
                                         [this, collection](const std::string& id, Instant) {
                                           return RelayOutbox(collection, id);
                                         }));
  }
}

storage::CollectionSpec CreditNotesCollectionSpec() {
  return {kCreditNotes,
          {{"tenant", false}, {"number", true}, {"due_at", false}, {"outbox", false}}};
}

}  // namespace caas::invoices
