// Invoices: period close, the draft → finalized → paid | void |
// uncollectible lifecycle, gapless numbers, credit notes, late usage, the
// upcoming invoice and the figures behind a usage line (docs/invoices.md).
//
// Every step is one atomic write of one document, and every multi-step
// protocol is rolled forward by a due source on the scheduler, so a crash at
// any point leaves a state the next pass completes:
// - close: the subscription document holds the boundary (a Closing, written
//   with the transition); the draft is inserted under the closing's invoice
//   id (and a unique key per subscription and period), then the closing and
//   the lines it took leave the subscription document;
// - finalize: recompute the draft, reserve a number (numbering.h), write it
//   into the invoice, release the reservation;
// - void: mark the invoice void with its credit note pending, insert the
//   credit note, number it, clear the mark.
// Billing events (invoice.created, invoice.finalized, invoice.voided,
// credit_note.issued) are written into the document's outbox with the change
// and relayed by id.
#pragma once

#include <boost/json/object.hpp>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "core/status.h"
#include "invoices/model.h"
#include "invoices/numbering.h"
#include "invoices/pdf.h"
#include "invoices/rating.h"
#include "jobs/queue.h"
#include "jobs/scheduler.h"
#include "mail/mailer.h"
#include "storage/blob_store.h"
#include "storage/document_store.h"
#include "subscriptions/subscriptions.h"
#include "tenants/tenant_service.h"

namespace caas::invoices {

storage::CollectionSpec InvoicesCollectionSpec();
storage::CollectionSpec CreditNotesCollectionSpec();

struct InvoiceOptions {
  // Late events for a period are taken into its draft until it is
  // finalized this long after the period's end.
  std::chrono::seconds grace = std::chrono::hours(1);
  // Earlier periods are checked for late usage as long as events for them
  // are accepted (metering's late window).
  std::chrono::seconds late_window = std::chrono::hours(24 * 35);
  Party issuer;             // from configuration
  PdfOptions pdf;           // paper size and the issuer's logo
  std::string mail_from;    // the sender of invoice e-mails
  bool email_zero = false;  // e-mail $0 invoices too (they are finalized either way)
};

// A day of usage behind a line (metering's daily aggregates).
struct DayFigures {
  int64_t day;  // days since 1970-01-01
  int64_t messages = 0, api_calls = 0, active_users = 0, storage_bytes = 0;
};

class InvoiceService {
 public:
  // The rated usage of a billing period as metering reads it now.
  using UsageSource = std::function<Result<PeriodUsage>(std::string_view tenant, Instant at)>;
  using DailySource = std::function<Result<std::vector<DayFigures>>(
      std::string_view tenant, int64_t from_day, int64_t to_day)>;

  InvoiceService(storage::DocumentStore& store, const Clock& clock, IdGenerator& ids,
                 subscriptions::SubscriptionService& subscriptions, tenants::TenantService& tenants,
                 UsageSource usage, DailySource daily, InvoiceOptions options);
  InvoiceService(const InvoiceService&) = delete;
  InvoiceService& operator=(const InvoiceService&) = delete;

  // Period close on demand: brings the tenant's subscription up to now (its
  // transitions record the boundaries), then makes the draft of every
  // boundary at or before `at`. All tenants with a boundary due when
  // `tenant` is empty. Returns the invoices made (drafts, or finalized when
  // nothing waits for late usage). Throws StorageError.
  Result<std::vector<Invoice>> Close(std::string_view tenant, Instant at);

  // draft → finalized: recomputed, numbered, announced. Idempotent.
  // kFailedPrecondition for a voided invoice.
  Result<Invoice> Finalize(std::string_view id, std::string_view actor);
  // finalized (or uncollectible) → void, with a credit note for it.
  // kFailedPrecondition for a draft or a paid invoice.
  Result<Invoice> Void(std::string_view id, std::string_view actor, std::string_view reason);

  // A payment received for a finalized (or uncollectible) invoice: recorded
  // in the invoice with its event `payment.succeeded`, in one write; the
  // payment that covers what remains makes it paid (`invoice.paid`).
  // kInvalidArgument naming `amount` for a non-positive amount, another
  // currency or more than remains; kAlreadyExists naming `reference` for a
  // reference recorded on this invoice before; kFailedPrecondition for a
  // draft, a void or a paid invoice. The payments module decides where a
  // payment comes from (an operator, a gateway).
  struct PaymentIn {
    Money amount;
    std::string method;
    std::string reference;
  };
  Result<Invoice> RecordPayment(std::string_view id, const PaymentIn& payment,
                                std::string_view actor);

  Result<Invoice> Get(std::string_view id);
  // The API form of an invoice as JSON text, and its tenant: GET's fast
  // path. The text is cached by document version (a stored invoice changes
  // rarely: finalized, voided, its PDF or e-mail recorded), so a read is one
  // store lookup.
  struct ApiText {
    std::string tenant;
    std::string json;
  };
  Result<ApiText> GetApiText(std::string_view id);
  Result<Invoice> GetCreditNote(std::string_view id);
  struct Filter {
    std::string tenant;                   // empty: all
    std::optional<InvoiceStatus> status;  // invoices only
    std::optional<Instant> period_at;     // the invoice whose period contains this instant
  };
  struct ListPage {
    std::vector<Invoice> items;
    bool has_more = false;
  };
  ListPage List(const Filter& f, std::string_view starting_after, int limit);
  ListPage ListCreditNotes(std::string_view tenant, std::string_view starting_after, int limit);

  // What the next invoice would hold if the current period ended now, from
  // live usage. Writes nothing.
  Result<Invoice> Upcoming(std::string_view tenant);

  // The figures behind usage line `n` (0-based) of an invoice: anyone can
  // recompute the line from them.
  Result<boost::json::object> LineUsage(std::string_view id, size_t n);

  // Due sources: boundaries to close, drafts to finalize, outboxes to
  // relay, reservations and credit notes a crash left.
  void RegisterWith(jobs::Scheduler& scheduler);

  // Delivery: once a document is finalized (its event relayed), a job
  // renders its PDF into `blobs` and e-mails it with `mailer`, retried with
  // backoff; the outcome is recorded on the document. Without this, nothing
  // is rendered or sent until asked (Pdf()).
  void EnableDelivery(jobs::JobQueue& jobs, storage::BlobStore& blobs, mail::Mailer& mailer);
  // Also enqueues a job of `type` (payload {"invoice": id}, key
  // "<type>:<id>": one per invoice, ever) when an invoice's finalization is
  // relayed: how the payments module charges invoices without invoices
  // knowing about payments. Set up before use.
  void AlsoOnFinalized(std::string type) { on_finalized_jobs_.push_back(std::move(type)); }
  // The PDF of an invoice (`credit_note`: of a credit note): the stored one,
  // else rendered (and stored once final). A draft renders as a draft.
  Result<std::string> Pdf(std::string_view id, bool credit_note);
  // E-mails a finalized document again (a new job); returns the job.
  Result<jobs::Job> Send(std::string_view id, bool credit_note);

  // Publishes an invoice's (or credit note's) outbox. Throws StorageError.
  bool RelayOutbox(std::string_view collection, std::string_view id);

  NumberSeries& numbers() { return numbers_; }

 private:
  struct Loaded {
    Invoice inv;
    int64_t version;
  };
  Result<Loaded> Load(std::string_view collection, std::string_view id);
  Status Insert(std::string_view collection, Invoice& inv);
  Status Replace(std::string_view collection, Invoice& inv);
  storage::Document ToDocument(const Invoice& inv) const;
  // Turns the tenant's first closing into a draft; false when none is due
  // by `until`.
  Result<bool> CloseNext(std::string_view tenant, Instant until);
  // Recomputes a draft's usage and late-usage lines, tax and totals.
  Status Recompute(Invoice& inv);
  Result<Invoice> FinalizeIn(std::string_view collection, std::string_view id,
                             std::optional<std::string> series, std::string_view actor);
  Status IssueCreditNote(const Invoice& inv);
  Status CarryCredit(std::string_view id);
  Status Deliver(const jobs::Job& job, bool resend);
  // Applies `f` to the stored document with versioned retries.
  Status Update(std::string_view collection, std::string_view id,
                const std::function<void(Invoice&)>& f);
  void Emit(Invoice& inv, std::string type, boost::json::object data, std::string_view actor);
  // What a new invoice takes from its tenant and the issuer: currency,
  // tax, both parties.
  void Address(Invoice& inv, const tenants::Tenant& t, const Currency& currency) const;
  Party CustomerOf(const tenants::Tenant& t) const;
  Instant Now() const;

  storage::DocumentStore& store_;
  const Clock& clock_;
  IdGenerator& ids_;
  subscriptions::SubscriptionService& subscriptions_;
  tenants::TenantService& tenants_;
  UsageSource usage_;
  DailySource daily_;
  InvoiceOptions options_;
  NumberSeries numbers_;
  std::mutex api_cache_mu_;  // guards api_cache_
  struct CachedText {
    int64_t version;
    ApiText text;
  };
  std::unordered_map<std::string, CachedText> api_cache_;  // bounded: cleared when full
  jobs::JobQueue* jobs_ = nullptr;                         // delivery; set up before use
  std::vector<std::string> on_finalized_jobs_;             // AlsoOnFinalized; set up before use
  storage::BlobStore* blobs_ = nullptr;
  mail::Mailer* mailer_ = nullptr;
};

}  // namespace caas::invoices
