#include "payments/payments.h"

#include <boost/json.hpp>

#include "core/log.h"
#include "events/billing_events.h"
#include "invoices/codec.h"
#include "payments/stripe_gateway.h"
#include "payments/webhook_signature.h"
#include "storage/json_fields.h"

namespace caas::payments {
namespace json = boost::json;
namespace inv = caas::invoices;

namespace {

constexpr const char* kProfiles = "payment_profiles";
constexpr const char* kAttempts = "payment_attempts";
constexpr const char* kEvents = "stripe_events";
constexpr size_t kMaxWebhookBody = 1 << 20;

std::string S(const json::object& o, std::string_view k) {
  const auto* v = o.if_contains(k);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

json::object CardJson(const Card& c) {
  return {{"id", c.id},
          {"brand", c.brand},
          {"last4", c.last4},
          {"exp_month", c.exp_month},
          {"exp_year", c.exp_year},
          {"fingerprint", c.fingerprint}};
}

Card CardFromJson(const json::object& o) {
  Card c;
  c.id = S(o, "id");
  c.brand = S(o, "brand");
  c.last4 = S(o, "last4");
  c.fingerprint = S(o, "fingerprint");
  c.exp_month = static_cast<int>(storage::fields::Int(o, "exp_month"));
  c.exp_year = static_cast<int>(storage::fields::Int(o, "exp_year"));
  return c;
}

// How far along an attempt is: a state never moves to a lower rank.
int Rank(std::string_view status) {
  if (status == "open") return 0;
  if (status == "processing") return 1;
  if (status == "action_required" || status == "failed" || status == "canceled") return 2;
  if (status == "succeeded") return 3;
  return 0;
}

std::string StatusOf(ChargeOutcome::Kind k) {
  switch (k) {
    case ChargeOutcome::Kind::kSucceeded:
      return "succeeded";
    case ChargeOutcome::Kind::kProcessing:
      return "processing";
    case ChargeOutcome::Kind::kDeclined:
      return "failed";
    case ChargeOutcome::Kind::kAuthenticationRequired:
      return "action_required";
    case ChargeOutcome::Kind::kFailed:
      return "failed";
    case ChargeOutcome::Kind::kUnknown:
      return "open";
  }
  return "open";
}

}  // namespace

storage::CollectionSpec PaymentProfilesCollectionSpec() {
  return {kProfiles, {{"customer", true}, {"default_card", false}}};
}
storage::CollectionSpec PaymentAttemptsCollectionSpec() {
  return {kAttempts, {{"invoice", false}, {"payment_intent", true}}};
}
storage::CollectionSpec StripeEventsCollectionSpec() { return {kEvents, {}}; }

json::object AttemptToJson(const PaymentAttempt& a) {
  json::object o{{"id", a.id},
                 {"object", "payment_attempt"},
                 {"invoice", a.invoice},
                 {"tenant", a.tenant},
                 {"attempt", a.n},
                 {"status", a.status},
                 {"amount", inv::MoneyToJson(a.amount)},
                 {"created_at", FormatRfc3339(a.created_at)},
                 {"updated_at", FormatRfc3339(a.updated_at)}};
  if (!a.payment_intent.empty()) o["payment_intent"] = a.payment_intent;
  if (!a.code.empty()) o["code"] = a.code;
  if (!a.decline_code.empty()) o["decline_code"] = a.decline_code;
  if (!a.advice_code.empty()) o["advice_code"] = a.advice_code;
  if (!a.message.empty()) o["message"] = a.message;
  return o;
}

namespace {

PaymentAttempt AttemptFromDoc(const storage::Document& d) {
  const auto v = json::parse(d.body);
  const auto& o = v.as_object();
  PaymentAttempt a;
  a.id = d.id;
  a.version = d.version;
  a.invoice = S(o, "invoice");
  a.tenant = S(o, "tenant");
  a.n = static_cast<int>(storage::fields::Int(o, "attempt"));
  a.status = S(o, "status");
  a.payment_intent = S(o, "payment_intent");
  const auto& amount = storage::fields::Obj(o, "amount");
  const Currency* cur = Currency::Find(S(amount, "currency"));
  a.amount = Money(storage::fields::Int(amount, "amount_minor"), cur ? *cur : Currency::Usd());
  a.code = S(o, "code");
  a.decline_code = S(o, "decline_code");
  a.advice_code = S(o, "advice_code");
  a.message = S(o, "message");
  a.created_at = storage::fields::Time(o, "created_at");
  a.updated_at = storage::fields::Time(o, "updated_at");
  return a;
}

storage::Document AttemptDoc(const PaymentAttempt& a) {
  json::object o = AttemptToJson(a);
  o["amount"] = json::object{{"amount_minor", a.amount.amount_minor()},
                             {"currency", std::string(a.amount.currency().code)}};
  storage::Document d{a.id, a.version, json::serialize(o), {{"invoice", a.invoice}}};
  if (!a.payment_intent.empty()) d.keys["payment_intent"] = a.payment_intent;
  return d;
}

}  // namespace

PaymentService::PaymentService(storage::DocumentStore& store, const Clock& clock, IdGenerator& ids,
                               tenants::TenantService& tenants, inv::InvoiceService& invoices,
                               PaymentGateway& gateway, std::string webhook_secret)
    : store_(store),
      clock_(clock),
      ids_(ids),
      tenants_(tenants),
      invoices_(invoices),
      gateway_(gateway),
      webhook_secret_(std::move(webhook_secret)) {}

void PaymentService::EnableCharging(jobs::JobQueue& jobs) {
  jobs.Register("payment.charge", [this](const jobs::Job& j) {
    const auto* id = j.payload.if_contains("invoice");
    if (!id || !id->is_string()) return Status(Error::Invalid("invoice", "missing"));
    return Charge(id->as_string());
  });
  invoices_.AlsoOnFinalized("payment.charge");
}

// --- profiles and cards -----------------------------------------------------

Result<PaymentProfile> PaymentService::Profile(std::string_view tenant) {
  auto d = store_.Get(kProfiles, tenant);
  if (!d) return d.error();
  const auto v = json::parse(d->body);
  const auto& o = v.as_object();
  PaymentProfile p;
  p.tenant = std::string(tenant);
  p.customer = S(o, "customer");
  p.setups = static_cast<int>(storage::fields::Int(o, "setups"));
  if (const auto* c = o.if_contains("default_card"); c && c->is_object()) {
    p.default_card = CardFromJson(c->as_object());
  }
  p.version = d->version;
  return p;
}

Status PaymentService::SaveProfile(PaymentProfile& p, bool insert) {
  json::object o{{"tenant", p.tenant}, {"customer", p.customer}, {"setups", p.setups}};
  storage::Document d{p.tenant, p.version, {}, {{"customer", p.customer}}};
  if (p.default_card) {
    o["default_card"] = CardJson(*p.default_card);
    d.keys["default_card"] = p.default_card->id;
  }
  d.body = json::serialize(o);
  if (insert) return store_.Insert(kProfiles, d);
  auto v = store_.Replace(kProfiles, d, p.version);
  if (!v) return v.error();
  p.version = *v;
  return Status::Ok();
}

Result<PaymentService::Setup> PaymentService::StartSetup(std::string_view tenant) {
  auto t = tenants_.Get(tenant);
  if (!t) return t.error();
  for (int round = 0; round < 8; ++round) {
    auto p = Profile(tenant);
    if (!p && p.error().code != ErrorCode::kNotFound) return p.error();
    if (!p) {
      // The customer is created once: its key is the tenant id, so a retry
      // after a crash gets the same customer back.
      auto cus = gateway_.CreateCustomer(tenant, t->billing_email, t->name);
      if (!cus) return cus.error();
      PaymentProfile fresh;
      fresh.tenant = std::string(tenant);
      fresh.customer = *cus;
      Status s = SaveProfile(fresh, true);
      if (!s && s.error().code != ErrorCode::kAlreadyExists) return s.error();
      continue;
    }
    ++p->setups;
    Status s = SaveProfile(*p, false);
    if (!s) {
      if (s.error().code == ErrorCode::kConflict) continue;
      return s.error();
    }
    auto secret = gateway_.CreateSetupIntent(p->customer, tenant, p->setups);
    if (!secret) return secret.error();
    return Setup{p->customer, *secret};
  }
  return Error::Make(ErrorCode::kConflict, "the payment profile kept changing");
}

Result<PaymentService::Cards> PaymentService::ListCards(std::string_view tenant) {
  auto p = Profile(tenant);
  if (!p) {
    if (p.error().code == ErrorCode::kNotFound && tenants_.Get(tenant)) return Cards{};
    return p.error();
  }
  auto cards = gateway_.ListCards(p->customer);
  if (!cards) return cards.error();
  return Cards{std::move(*cards), p->default_card};
}

Result<Card> PaymentService::SetDefault(std::string_view tenant, std::string_view pm) {
  auto card = gateway_.GetCard(pm);
  if (!card) return card.error();
  for (int round = 0; round < 8; ++round) {
    auto p = Profile(tenant);
    if (!p) {
      if (p.error().code == ErrorCode::kNotFound) {
        return Error::Invalid("payment_method", "the tenant has no saved card yet");
      }
      return p.error();
    }
    if (card->customer != p->customer) {
      return Error::Invalid("payment_method", "is not a card of this tenant");
    }
    p->default_card = *card;
    Status s = SaveProfile(*p, false);
    if (s) return *card;
    if (s.error().code != ErrorCode::kConflict) return s.error();
  }
  return Error::Make(ErrorCode::kConflict, "the payment profile kept changing");
}

Status PaymentService::Detach(std::string_view tenant, std::string_view pm) {
  auto p = Profile(tenant);
  if (!p) return p.error();
  auto card = gateway_.GetCard(pm);
  if (!card) return card.error();
  if (card->customer != p->customer) {
    return Error{ErrorCode::kNotFound, "no such card for this tenant", "payment_method"};
  }
  if (Status s = gateway_.DetachCard(pm); !s) return s;
  json::object detached = CardJson(*card);
  detached["id"] = std::string(pm);
  return ApplyCardChanged(detached, true);
}

Status PaymentService::ApplyCardChanged(const json::object& pm, bool detached) {
  const std::string id = S(pm, "id");
  storage::ListQuery q;
  q.where_key = "default_card";
  q.where_value = id;
  q.limit = 10;
  for (const auto& d : store_.List(kProfiles, q).items) {
    for (int round = 0; round < 8; ++round) {
      auto p = Profile(d.id);
      if (!p) return p.error();
      if (!p->default_card || p->default_card->id != id) break;
      if (detached) {
        p->default_card.reset();
      } else if (const auto* c = pm.if_contains("card"); c && c->is_object()) {
        Card fresh = CardFromJson(c->as_object());
        fresh.id = id;
        p->default_card = fresh;
      }
      Status s = SaveProfile(*p, false);
      if (s) break;
      if (s.error().code != ErrorCode::kConflict) return s;
    }
  }
  return Status::Ok();
}

// --- charging ---------------------------------------------------------------

Result<PaymentAttempt> PaymentService::LoadAttempt(std::string_view id) {
  auto d = store_.Get(kAttempts, id);
  if (!d) return d.error();
  return AttemptFromDoc(*d);
}

std::vector<PaymentAttempt> PaymentService::Attempts(std::string_view invoice_id) {
  storage::ListQuery q;
  q.where_key = "invoice";
  q.where_value = std::string(invoice_id);
  q.limit = 1000;
  std::vector<PaymentAttempt> out;
  for (const auto& d : store_.List(kAttempts, q).items) out.push_back(AttemptFromDoc(d));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.n < b.n; });
  return out;
}

Result<bool> PaymentService::Advance(PaymentAttempt a, const std::string& next,
                                     const ChargeOutcome& o) {
  for (int round = 0; round < 8; ++round) {
    if (a.status == "succeeded") return false;  // final
    const bool moves = next != a.status && Rank(next) >= Rank(a.status) && Rank(next) > 0;
    const bool learns_pi = a.payment_intent.empty() && !o.payment_intent.empty();
    if (!moves && !learns_pi) return false;
    if (moves) {
      a.status = next;
      a.code = o.code;
      a.decline_code = o.decline_code;
      a.advice_code = o.advice_code;
      a.message = o.message.substr(0, 500);
    }
    if (learns_pi) a.payment_intent = o.payment_intent;
    a.updated_at = clock_.Now();
    auto v = store_.Replace(kAttempts, AttemptDoc(a), a.version);
    if (v) {
      if (moves && (a.status == "failed" || a.status == "action_required")) {
        // The event's id is made from the attempt and its state: a second
        // publication (a job run again after a crash) is a no-op.
        events::BillingEvent e;
        e.id = "bev_" + a.id + "_" + a.status;
        e.type = a.status == "failed" ? "payment.failed" : "payment.action_required";
        e.tenant = a.tenant;
        e.occurred_at = a.updated_at;
        e.data = json::object{{"invoice", a.invoice},
                              {"attempt", a.n},
                              {"payment_intent", a.payment_intent},
                              {"code", a.code},
                              {"decline_code", a.decline_code},
                              {"advice_code", a.advice_code}};
        events::PublishBillingEvent(store_, clock_, std::move(e));
      }
      return true;
    }
    if (v.error().code != ErrorCode::kConflict) return v.error();
    auto fresh = LoadAttempt(a.id);
    if (!fresh) return fresh.error();
    a = std::move(*fresh);
  }
  return Error::Make(ErrorCode::kConflict, "the payment attempt kept changing");
}

Status PaymentService::ApplySucceeded(const PaymentAttempt& a, const ChargeOutcome& o) {
  const int64_t amount = o.amount_received > 0 ? o.amount_received : a.amount.amount_minor();
  auto paid =
      invoices_.RecordPayment(a.invoice,
                              {Money(amount, a.amount.currency()), "card",
                               o.payment_intent.empty() ? a.payment_intent : o.payment_intent},
                              gateway_.Name());
  if (paid || paid.error().code == ErrorCode::kAlreadyExists) return Status::Ok();
  if (paid.error().code == ErrorCode::kFailedPrecondition ||
      paid.error().code == ErrorCode::kInvalidArgument) {
    // Charged, but the invoice cannot take it (paid another way meanwhile,
    // or voided): the money is ours to return. Logged for an operator; the
    // refund is part of the refunds work (issue 13, item 6).
    Log(LogLevel::kError, "charge_not_applied",
        {{"invoice", a.invoice},
         {"payment_intent", a.payment_intent},
         {"reason", paid.error().message}});
    return Status::Ok();
  }
  return paid.error();
}

Status PaymentService::Settle(const PaymentAttempt& a, const ChargeOutcome& o) {
  auto moved = Advance(a, StatusOf(o.kind), o);
  if (!moved) return moved.error();
  if (o.kind == ChargeOutcome::Kind::kSucceeded) return ApplySucceeded(a, o);
  if (o.kind == ChargeOutcome::Kind::kUnknown || o.kind == ChargeOutcome::Kind::kProcessing) {
    // The job runs again later: the same attempt, the same key.
    return Error::Make(ErrorCode::kUnavailable, "the charge's outcome is not known yet");
  }
  return Status::Ok();
}

Status PaymentService::Charge(std::string_view invoice_id) {
  auto invoice = invoices_.Get(invoice_id);
  if (!invoice) {
    return invoice.error().code == ErrorCode::kNotFound ? Status::Ok() : Status(invoice.error());
  }
  auto attempts = Attempts(invoice_id);
  // Settle what is in flight first: the same attempt, never a new one.
  if (!attempts.empty()) {
    PaymentAttempt last = attempts.back();
    if (last.status == "succeeded") {
      return ApplySucceeded(
          last,
          ChargeOutcome{ChargeOutcome::Kind::kSucceeded, last.payment_intent, 0, {}, {}, {}, {}});
    }
    if (last.status != "open" && last.status != "processing") return Status::Ok();
    auto p = Profile(invoice->tenant);
    ChargeOutcome o;
    if (!last.payment_intent.empty()) {
      o = gateway_.Retrieve(last.payment_intent);
    } else if (p && p->default_card) {
      // No PaymentIntent known: the same key replays the first answer.
      o = gateway_.Charge({last.invoice, last.n, last.amount.amount_minor(),
                           std::string(last.amount.currency().code), p->customer,
                           p->default_card->id});
    } else {
      return Error::Make(ErrorCode::kUnavailable, "an open attempt without its card");
    }
    return Settle(last, o);
  }
  // Nothing tried yet: charge if something is owed and a card is on file.
  if (invoice->status != inv::InvoiceStatus::kFinalized &&
      invoice->status != inv::InvoiceStatus::kUncollectible) {
    return Status::Ok();
  }
  const int64_t owed = invoice->amount_due.amount_minor() - invoice->amount_paid.amount_minor();
  if (owed <= 0) return Status::Ok();
  auto p = Profile(invoice->tenant);
  if (!p) return p.error().code == ErrorCode::kNotFound ? Status::Ok() : Status(p.error());
  if (!p->default_card) return Status::Ok();  // paid by transfer, or later with a card

  PaymentAttempt a;
  a.id = std::string(invoice_id) + ":1";
  a.invoice = std::string(invoice_id);
  a.tenant = invoice->tenant;
  a.n = 1;
  a.status = "open";
  a.amount = Money(owed, *invoice->currency);
  a.created_at = a.updated_at = clock_.Now();
  a.version = 1;
  if (Status s = store_.Insert(kAttempts, AttemptDoc(a)); !s) {
    // Another run made it first: it settles it (or the next run does).
    if (s.error().code == ErrorCode::kAlreadyExists) return Status::Ok();
    return s;
  }
  // The one-payment-path check, just before the PaymentIntent: still unpaid?
  auto again = invoices_.Get(invoice_id);
  if (!again) return again.error();
  if (again->status == inv::InvoiceStatus::kPaid || again->status == inv::InvoiceStatus::kVoid ||
      again->amount_paid.amount_minor() != invoice->amount_paid.amount_minor()) {
    ChargeOutcome none;
    none.message = "paid or changed before the charge: not charged";
    auto moved = Advance(a, "canceled", none);
    return moved ? Status::Ok() : Status(moved.error());
  }
  const ChargeOutcome o =
      gateway_.Charge({a.invoice, a.n, owed, std::string(invoice->currency->code), p->customer,
                       p->default_card->id});
  Log(LogLevel::kInfo, "invoice_charged",
      {{"invoice", a.invoice},
       {"attempt", std::to_string(a.n)},
       {"outcome", std::string(ChargeKindName(o.kind))},
       {"payment_intent", o.payment_intent},
       {"decline_code", o.decline_code}});
  return Settle(a, o);
}

// --- webhooks ---------------------------------------------------------------

Status PaymentService::ApplyPaymentIntentEvent(const json::object& pi) {
  const auto* md = pi.if_contains("metadata");
  if (!md || !md->is_object()) return Status::Ok();
  const std::string invoice = S(md->as_object(), "invoice_id");
  const std::string attempt = S(md->as_object(), "attempt");
  if (invoice.empty() || attempt.empty()) return Status::Ok();  // not one of our charges
  auto a = LoadAttempt(invoice + ":" + attempt);
  if (!a) return a.error().code == ErrorCode::kNotFound ? Status::Ok() : Status(a.error());
  const ChargeOutcome o = OutcomeOfPaymentIntent(pi);
  auto moved = Advance(*a, StatusOf(o.kind), o);
  if (!moved) return moved.error();
  if (o.kind == ChargeOutcome::Kind::kSucceeded) return ApplySucceeded(*a, o);
  return Status::Ok();
}

Status PaymentService::ApplySetupSucceeded(const json::object& si) {
  const std::string customer = S(si, "customer");
  const std::string pm = S(si, "payment_method");
  if (customer.empty() || pm.empty()) return Status::Ok();
  auto d = store_.FindUnique(kProfiles, "customer", customer);
  if (!d) return d.error().code == ErrorCode::kNotFound ? Status::Ok() : Status(d.error());
  auto p = Profile(d->id);
  if (!p) return p.error();
  if (p->default_card) return Status::Ok();  // the tenant chooses; the first card becomes default
  auto card = SetDefault(d->id, pm);
  return card ? Status::Ok() : Status(card.error());
}

Result<PaymentService::WebhookResult> PaymentService::HandleWebhook(std::string_view header,
                                                                    std::string_view raw_body) {
  if (webhook_secret_.empty()) {
    return Error::Make(ErrorCode::kFailedPrecondition,
                       "no webhook secret is configured (CAAS_BILLING_STRIPE_WEBHOOK_SECRET)");
  }
  if (raw_body.size() > kMaxWebhookBody) return Error::Invalid("body", "is too large");
  if (Status s = VerifyStripeSignature(header, raw_body, webhook_secret_, clock_.Now()); !s) {
    return s.error();
  }
  json::value v;
  try {
    v = json::parse(raw_body);
  } catch (const std::exception&) {
    return Error::Invalid("body", "is not JSON");
  }
  if (!v.is_object()) return Error::Invalid("body", "must be a Stripe event object");
  const auto& ev = v.as_object();
  WebhookResult r;
  r.event_id = S(ev, "id");
  r.type = S(ev, "type");
  if (r.event_id.rfind("evt_", 0) != 0 || r.event_id.size() > 255 || r.type.empty()) {
    return Error::Invalid("id", "must be a Stripe event with an evt_ id and a type");
  }
  const auto* data = ev.if_contains("data");
  const json::object* object = nullptr;
  if (data && data->is_object()) {
    if (const auto* o = data->as_object().if_contains("object"); o && o->is_object()) {
      object = &o->as_object();
    }
  }
  if (!object) return Error::Invalid("data.object", "must be an object");

  // Applied, then stored: each effect is idempotent and only moves state
  // forward, so a crash between the two (the event applied, not stored)
  // is made good by Stripe's redelivery, which applies it again to no
  // effect. A stored event is a duplicate: answered, not applied again.
  if (store_.Get(kEvents, r.event_id)) {
    r.duplicate = true;
    return r;
  }
  Status applied = Status::Ok();
  r.handled = true;
  if (r.type.rfind("payment_intent.", 0) == 0) {
    applied = ApplyPaymentIntentEvent(*object);
  } else if (r.type == "setup_intent.succeeded") {
    applied = ApplySetupSucceeded(*object);
  } else if (r.type == "payment_method.detached") {
    applied = ApplyCardChanged(*object, true);
  } else if (r.type == "payment_method.updated" ||
             r.type == "payment_method.automatically_updated") {
    applied = ApplyCardChanged(*object, false);
  } else {
    r.handled = false;  // recorded; acted on by later work (refunds, disputes)
  }
  if (!applied) return applied.error();  // not stored: Stripe delivers it again
  json::object rec{{"id", r.event_id},
                   {"type", r.type},
                   {"object", S(*object, "id")},
                   {"received_at", FormatRfc3339(clock_.Now())}};
  Status s = store_.Insert(kEvents, storage::Document{r.event_id, 1, json::serialize(rec), {}});
  if (!s && s.error().code != ErrorCode::kAlreadyExists) return s.error();
  return r;
}

}  // namespace caas::payments
