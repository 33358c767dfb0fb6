#include "invoices/codec.h"

#include <boost/json.hpp>

#include "storage/json_fields.h"

namespace caas::invoices {
namespace json = boost::json;
namespace {

using storage::fields::Arr;
using storage::fields::AsObj;
using storage::fields::At;
using storage::fields::Bool;
using storage::fields::Corrupt;
using storage::fields::Int;
using storage::fields::Obj;
using storage::fields::OptTime;
using storage::fields::OptTimeJson;
using storage::fields::PeriodJson;
using storage::fields::PeriodOf;
using storage::fields::Str;
using storage::fields::Time;

std::string Ts(Instant t) { return FormatRfc3339(t); }

Decimal Dec(const json::object& o, std::string_view k) {
  auto d = Decimal::Parse(Str(o, k));
  if (!d) throw Corrupt(std::string(k) + ": not a decimal");
  return *d;
}
json::object MoneyJson(const Money& m) {
  return {{"amount_minor", m.amount_minor()}, {"currency", m.currency().code}};
}
Money MoneyOf(const json::object& o, std::string_view k) {
  const json::object& m = Obj(o, k);
  return Money(Int(m, "amount_minor"), storage::fields::CurrencyOf(m, "currency"));
}
json::object PartyJson(const Party& p) {
  json::array addr;
  for (const auto& a : p.address) addr.push_back(json::value(a));
  return {{"name", p.name}, {"address", addr}, {"tax_id", p.tax_id}, {"email", p.email}};
}
Party PartyOf(const json::object& o) {
  Party p;
  p.name = Str(o, "name");
  for (const auto& v : Arr(o, "address")) {
    if (!v.is_string()) throw Corrupt("address[]: not a string");
    p.address.emplace_back(v.as_string());
  }
  p.tax_id = Str(o, "tax_id");
  p.email = Str(o, "email");
  return p;
}

InvoiceLine LineOf(const json::object& o) {
  InvoiceLine l;
  auto type = ParseLineType(Str(o, "type"));
  if (!type) throw Corrupt("lines[].type: unknown");
  l.type = *type;
  l.description = Str(o, "description");
  l.period = PeriodOf(Obj(o, "period"));
  l.quantity = Dec(o, "quantity");
  l.unit_price = Dec(o, "unit_price");
  l.amount = MoneyOf(o, "amount");
  l.plan = Str(o, "plan");
  l.plan_version = static_cast<int>(Int(o, "plan_version"));
  if (const auto* s = o.if_contains("source"); s && s->is_string()) l.source = s->as_string();
  if (const auto* m = o.if_contains("metric"); m && m->is_string()) {
    l.metric = catalog::ParseMetric(m->as_string());
    if (!l.metric) throw Corrupt("lines[].metric: unknown");
    l.usage_period = PeriodOf(Obj(o, "usage_period"));
  }
  return l;
}

}  // namespace

json::object MoneyToJson(const Money& m) { return MoneyJson(m); }

json::object LineToJson(const InvoiceLine& l) {
  json::object o{{"type", LineTypeName(l.type)},
                 {"description", l.description},
                 {"period", PeriodJson(l.period)},
                 {"quantity", l.quantity.ToString()},
                 {"unit_price", l.unit_price.ToString()},
                 {"amount", MoneyJson(l.amount)},
                 {"plan", l.plan},
                 {"plan_version", l.plan_version}};
  if (!l.source.empty()) o["source"] = l.source;
  if (l.metric) {
    o["metric"] = catalog::MetricName(*l.metric);
    o["usage_period"] = PeriodJson(l.usage_period);
  }
  return o;
}

json::object InvoiceToJson(const Invoice& inv, bool with_internal) {
  const bool cn = inv.doc_kind == DocKind::kCreditNote;
  json::array lines, taxes;
  for (const auto& l : inv.lines) lines.push_back(LineToJson(l));
  for (const auto& t : inv.taxes) {
    taxes.push_back(json::object{{"description", t.description},
                                 {"rate", t.rate.ToString()},
                                 {"taxable", MoneyJson(t.taxable)},
                                 {"amount", MoneyJson(t.amount)}});
  }
  json::object o{{"id", inv.id},
                 {"object", cn ? "credit_note" : "invoice"},
                 {"tenant", inv.tenant},
                 {"subscription", inv.subscription},
                 {"kind", inv.period_end ? "period" : "change"},
                 {"period", inv.period ? json::value(PeriodJson(*inv.period)) : json::value()},
                 {"boundary", Ts(inv.boundary)},
                 {"status", StatusName(inv.status)},
                 {"number", inv.number.empty() ? json::value() : json::value(inv.number)},
                 {"currency", inv.currency->code},
                 {"lines", lines},
                 {"taxes", taxes},
                 {"subtotal", MoneyJson(inv.subtotal)},
                 {"tax", MoneyJson(inv.tax)},
                 {"total", MoneyJson(inv.total)},
                 {"amount_due", MoneyJson(inv.amount_due)},
                 {"amount_paid", MoneyJson(inv.amount_paid)},
                 {"amount_remaining",
                  MoneyJson(Money(inv.amount_due.amount_minor() - inv.amount_paid.amount_minor(),
                                  *inv.currency))},
                 {"tax_mode", TaxModeName(inv.tax_mode)},
                 {"tax_rate", inv.tax_rate.ToString()},
                 {"tax_note", inv.tax_note},
                 {"issuer", PartyJson(inv.issuer)},
                 {"customer", PartyJson(inv.customer)},
                 {"created_at", Ts(inv.created_at)},
                 {"finalize_at", Ts(inv.finalize_at)},
                 {"finalized_at", OptTimeJson(inv.finalized_at)},
                 {"voided_at", OptTimeJson(inv.voided_at)},
                 {"paid_at", OptTimeJson(inv.paid_at)}};
  json::array payments;
  for (const auto& p : inv.payments) {
    payments.push_back(json::object{{"id", p.id},
                                    {"amount", MoneyJson(p.amount)},
                                    {"method", p.method},
                                    {"reference", p.reference},
                                    {"at", Ts(p.at)},
                                    {"actor", p.actor}});
  }
  o["payments"] = std::move(payments);
  if (inv.pdf) {
    o["pdf"] =
        json::object{{"key", inv.pdf->key}, {"sha256", inv.pdf->sha256}, {"bytes", inv.pdf->bytes}};
  } else {
    o["pdf"] = nullptr;
  }
  o["email"] = json::object{{"status", inv.email.status},
                            {"to", inv.email.to},
                            {"message_id", inv.email.message_id},
                            {"at", OptTimeJson(inv.email.at)},
                            {"error", inv.email.error}};
  if (cn) {
    o["credits"] = inv.credits;
  } else {
    o["credit_note"] = inv.credit_note.empty() ? json::value() : json::value(inv.credit_note);
  }
  if (with_internal) {
    o["schema"] = kInvoiceSchema;
    json::array consumed, billed, outbox;
    for (const auto& c : inv.consumed_lines) consumed.push_back(json::value(c));
    for (const auto& b : inv.billed) {
      billed.push_back(json::object{{"period_start", Ts(b.period_start)},
                                    {"slice_from", Ts(b.slice_from)},
                                    {"metric", catalog::MetricName(b.metric)},
                                    {"units", b.units.ToString()}});
    }
    for (const auto& e : inv.outbox) outbox.push_back(events::BillingEventToJson(e));
    o["consumed_lines"] = consumed;
    o["billed"] = billed;
    o["credit_pending"] = inv.credit_pending;
    o["carry_pending"] = inv.carry_pending;
    o["outbox"] = outbox;
  }
  return o;
}

Result<json::object> StoredToApiJson(std::string_view text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object() || !v.as_object().contains("tenant")) {
    return Error::Make(ErrorCode::kInternal, "not a stored invoice");
  }
  json::object& o = v.as_object();
  for (const char* internal :
       {"schema", "consumed_lines", "billed", "credit_pending", "carry_pending", "outbox"}) {
    o.erase(internal);
  }
  return std::move(o);
}

Result<Invoice> InvoiceFromJson(std::string_view text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return Error::Make(ErrorCode::kInternal, "not a JSON object");
  const json::object& o = v.as_object();
  try {
    if (Int(o, "schema") != kInvoiceSchema) throw Corrupt("schema: not one this version reads");
    Invoice inv;
    inv.id = Str(o, "id");
    inv.doc_kind = Str(o, "object") == "credit_note" ? DocKind::kCreditNote : DocKind::kInvoice;
    inv.tenant = Str(o, "tenant");
    inv.subscription = Str(o, "subscription");
    inv.period_end = Str(o, "kind") == "period";
    if (const auto* p = o.if_contains("period"); p && !p->is_null()) {
      inv.period = PeriodOf(AsObj(*p, "period"));
    }
    inv.boundary = Time(o, "boundary");
    auto st = ParseStatus(Str(o, "status"));
    if (!st) throw Corrupt("status: unknown");
    inv.status = *st;
    if (const auto* n = o.if_contains("number"); n && n->is_string()) inv.number = n->as_string();
    inv.currency = Currency::Find(Str(o, "currency"));
    if (!inv.currency) throw Corrupt("currency: unknown");
    for (const auto& l : Arr(o, "lines")) inv.lines.push_back(LineOf(AsObj(l, "lines[]")));
    for (const auto& tv : Arr(o, "taxes")) {
      const auto& t = AsObj(tv, "taxes[]");
      inv.taxes.push_back(TaxLine{Str(t, "description"), Dec(t, "rate"), MoneyOf(t, "taxable"),
                                  MoneyOf(t, "amount")});
    }
    inv.subtotal = MoneyOf(o, "subtotal");
    inv.tax = MoneyOf(o, "tax");
    inv.total = MoneyOf(o, "total");
    inv.amount_due = MoneyOf(o, "amount_due");
    // Invoices stored before payments existed have none of these.
    inv.amount_paid =
        o.contains("amount_paid") ? MoneyOf(o, "amount_paid") : Money(0, *inv.currency);
    if (o.contains("paid_at")) inv.paid_at = OptTime(o, "paid_at");
    if (o.contains("payments")) {
      for (const auto& pv : Arr(o, "payments")) {
        const auto& p = AsObj(pv, "payments[]");
        inv.payments.push_back(PaymentRecord{Str(p, "id"), MoneyOf(p, "amount"), Str(p, "method"),
                                             Str(p, "reference"), Time(p, "at"), Str(p, "actor")});
      }
    }
    auto mode = ParseTaxMode(Str(o, "tax_mode"));
    if (!mode) throw Corrupt("tax_mode: unknown");
    inv.tax_mode = *mode;
    inv.tax_rate = Dec(o, "tax_rate");
    inv.tax_note = Str(o, "tax_note");
    inv.issuer = PartyOf(Obj(o, "issuer"));
    inv.customer = PartyOf(Obj(o, "customer"));
    inv.created_at = Time(o, "created_at");
    inv.finalize_at = Time(o, "finalize_at");
    inv.finalized_at = OptTime(o, "finalized_at");
    inv.voided_at = OptTime(o, "voided_at");
    if (inv.doc_kind == DocKind::kCreditNote) {
      inv.credits = Str(o, "credits");
    } else if (const auto* c = o.if_contains("credit_note"); c && c->is_string()) {
      inv.credit_note = c->as_string();
    }
    for (const auto& c : Arr(o, "consumed_lines")) {
      if (!c.is_string()) throw Corrupt("consumed_lines[]: not a string");
      inv.consumed_lines.emplace_back(c.as_string());
    }
    for (const auto& bv : Arr(o, "billed")) {
      const auto& b = AsObj(bv, "billed[]");
      auto m = catalog::ParseMetric(Str(b, "metric"));
      if (!m) throw Corrupt("billed[].metric: unknown");
      inv.billed.push_back(
          BilledUsage{Time(b, "period_start"), Time(b, "slice_from"), *m, Dec(b, "units")});
    }
    inv.credit_pending = Bool(o, "credit_pending");
    if (o.contains("carry_pending")) inv.carry_pending = Bool(o, "carry_pending");
    if (const auto* p = o.if_contains("pdf"); p && !p->is_null()) {
      const auto& po = AsObj(*p, "pdf");
      inv.pdf = PdfRef{Str(po, "key"), Str(po, "sha256"), Int(po, "bytes")};
    }
    if (const auto* e = o.if_contains("email"); e && !e->is_null()) {
      const auto& eo = AsObj(*e, "email");
      inv.email = EmailRecord{Str(eo, "status"), Str(eo, "to"), Str(eo, "message_id"),
                              OptTime(eo, "at"), Str(eo, "error")};
    }
    for (const auto& e : Arr(o, "outbox")) {
      auto ev = events::BillingEventFromJson(e);
      if (!ev) throw Corrupt("outbox[]: not a billing event");
      inv.outbox.push_back(std::move(*ev));
    }
    return inv;
  } catch (const Corrupt& e) {
    return Error::Make(ErrorCode::kInternal, e.what());
  }
}

}  // namespace caas::invoices
