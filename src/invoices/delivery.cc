// Delivery of final documents: the PDF rendered once into the blob port and
// e-mailed through the Mailer, by a retried job (docs/invoices.md, "PDF",
// "E-mail").
#include <boost/json.hpp>

#include "core/hash.h"
#include "invoices/collections.h"
#include "invoices/invoices.h"

namespace caas::invoices {
namespace json = boost::json;

void InvoiceService::EnableDelivery(jobs::JobQueue& jobs, storage::BlobStore& blobs,
                                    mail::Mailer& mailer) {
  jobs_ = &jobs;
  blobs_ = &blobs;
  mailer_ = &mailer;
  jobs.Register("invoice.deliver", [this](const jobs::Job& j) { return Deliver(j, false); });
  jobs.Register("invoice.email", [this](const jobs::Job& j) { return Deliver(j, true); });
}

Result<std::string> InvoiceService::Pdf(std::string_view id, bool credit_note) {
  const char* collection = credit_note ? kCreditNotes : kInvoices;
  auto l = Load(collection, id);
  if (!l) return l.error();
  const Invoice& inv = l->inv;
  if (inv.status == InvoiceStatus::kDraft) return RenderPdf(inv, options_.pdf);
  const std::string key = std::string(collection) + "/" + inv.id + ".pdf";
  auto record = [&](const std::string& pdf) -> Status {
    if (inv.pdf) return Status::Ok();
    const PdfRef ref{key, Sha256Hex(pdf), static_cast<int64_t>(pdf.size())};
    return Update(collection, id, [&](Invoice& i) { i.pdf = ref; });
  };
  if (blobs_) {
    auto stored = blobs_->Get(key);
    if (stored) {
      if (Status s = record(*stored); !s) return s.error();  // a crash came between
      return stored;
    }
    if (stored.error().code != ErrorCode::kNotFound) return stored.error();
  }
  // Rendered once: the figures of a final document never change, and the
  // rendering is deterministic, so this is the PDF that is (or was) stored.
  auto pdf = RenderPdf(inv, options_.pdf);
  if (!pdf) return pdf.error();
  if (blobs_) {
    if (Status s = blobs_->Put(key, *pdf); !s) return s.error();
    if (Status s = record(*pdf); !s) return s.error();
  }
  return pdf;
}

Status InvoiceService::Deliver(const jobs::Job& job, bool resend) {
  const auto* idv = job.payload.if_contains("id");
  const auto* cnv = job.payload.if_contains("credit_note");
  if (!idv || !idv->is_string() || !cnv || !cnv->is_bool()) {
    return Error::Invalid("payload", "needs id and credit_note");
  }
  const std::string id(idv->as_string());
  const bool credit_note = cnv->as_bool();
  const char* collection = credit_note ? kCreditNotes : kInvoices;
  auto pdf = Pdf(id, credit_note);  // rendered and stored first, e-mailed or not
  if (!pdf) return pdf.error();
  auto l = Load(collection, id);
  if (!l) return l.error();
  const Invoice& inv = l->inv;
  if (inv.status == InvoiceStatus::kDraft) return Error::Invalid("id", "a draft is not delivered");
  if (inv.email.status == "sent" && !resend) return Status::Ok();  // recorded once
  auto record = [&](EmailRecord r) {
    return Update(collection, id, [&](Invoice& i) { i.email = r; });
  };
  const bool cn = inv.doc_kind == DocKind::kCreditNote;
  if (inv.customer.email.empty()) {
    return record({"skipped", "", "", Now(), "the tenant has no billing e-mail"});
  }
  if (inv.total.amount_minor() == 0 && !options_.email_zero && !resend) {
    return record({"skipped", inv.customer.email, "", Now(), "a $0 invoice (email_zero is off)"});
  }
  mail::Mail m;
  // The same id on every retry of this job, so a receiver can drop a
  // duplicate from a send whose answer was lost.
  m.message_id = (resend ? job.id : "deliver") + "." + inv.id + "@caas-billing";
  m.from = options_.mail_from.empty() ? "billing@localhost" : options_.mail_from;
  m.from_name = inv.issuer.name;
  m.to = inv.customer.email;
  const std::string what = cn ? "Credit note" : "Invoice";
  m.subject = what + " " + inv.number + " from " + inv.issuer.name;
  m.date = mail::Rfc5322Date(
      std::chrono::duration_cast<std::chrono::seconds>(
          (inv.finalized_at ? *inv.finalized_at : inv.created_at).time_since_epoch())
          .count());
  const std::string cur(inv.currency->code);
  m.text = "Hello " + inv.customer.name + ",\n\nyour " + (cn ? "credit note " : "invoice ") +
           inv.number + " is attached.\n\nTotal: " + inv.total.ToDecimalString() + " " + cur +
           "\nAmount due: " + inv.amount_due.ToDecimalString() + " " + cur + "\n\n" +
           inv.issuer.name + "\n";
  m.attachments.push_back({inv.number + ".pdf", "application/pdf", *pdf});
  Status sent = mailer_->Send(m);
  if (sent) return record({"sent", m.to, m.message_id, Now(), ""});
  const bool last =
      sent.error().code == ErrorCode::kInvalidArgument || job.attempts >= job.max_attempts;
  if (last) {
    // A permanent failure shows on the document.
    if (Status s = record({"failed", m.to, m.message_id, Now(), sent.error().message}); !s) {
      return s;
    }
  }
  return sent;
}

Result<jobs::Job> InvoiceService::Send(std::string_view id, bool credit_note) {
  if (!jobs_) return Error::Make(ErrorCode::kFailedPrecondition, "delivery is not enabled");
  auto l = Load(credit_note ? kCreditNotes : kInvoices, id);
  if (!l) return l.error();
  if (l->inv.status == InvoiceStatus::kDraft) {
    return Error::Make(ErrorCode::kFailedPrecondition, "a draft is not sent: finalize it first");
  }
  jobs::JobSpec spec;
  spec.type = "invoice.email";
  spec.payload = json::object{{"id", std::string(id)}, {"credit_note", credit_note}};
  spec.run_at = clock_.Now();
  return jobs_->Enqueue(std::move(spec));
}

}  // namespace caas::invoices
