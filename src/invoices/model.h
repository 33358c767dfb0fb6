// Invoices and credit notes: plain data. The rules live in rating.h (what
// an invoice holds), numbering.h (gapless numbers) and the service
// (invoices.h: close, finalize, void). docs/invoices.md explains them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/terms.h"
#include "core/decimal.h"
#include "core/money.h"
#include "core/time.h"
#include "events/billing_events.h"

namespace caas::invoices {

enum class InvoiceStatus { kDraft, kFinalized, kPaid, kVoid, kUncollectible };
std::string_view StatusName(InvoiceStatus s);
std::optional<InvoiceStatus> ParseStatus(std::string_view s);

enum class LineType {
  kBaseFee,          // a period's fee, in advance
  kProrationCredit,  // the unused part of a fee charged before
  kProrationCharge,  // a new fee for the rest of a period
  kUsage,            // usage of the period that ended, beyond what is included
  kLateUsage,        // usage that arrived after its period was invoiced
  kCredit,           // what an earlier negative invoice left over
};
std::string_view LineTypeName(LineType t);
std::optional<LineType> ParseLineType(std::string_view s);

struct InvoiceLine {
  LineType type = LineType::kUsage;
  std::string description;
  Period period;                     // what it covers (usage: the slice of the period)
  Decimal quantity;                  // units (fees: 1)
  Decimal unit_price;                // in major units (fees: the amount)
  Money amount{0, Currency::Usd()};  // round(quantity × unit_price), once
  std::string plan;                  // the plan whose terms priced it
  int plan_version = 1;
  std::string source;                     // fees and prorations: the subscription line (ii_…)
  std::optional<catalog::Metric> metric;  // usage lines
  Period usage_period;                    // usage lines: the billing period the usage belongs to
};

enum class TaxMode { kStandard, kExempt, kReverseCharge };
std::string_view TaxModeName(TaxMode m);
std::optional<TaxMode> ParseTaxMode(std::string_view s);

struct TaxLine {
  std::string description;  // "VAT 19%", "Exempt", "Reverse charge"
  Decimal rate;             // percent
  Money taxable{0, Currency::Usd()};
  Money amount{0, Currency::Usd()};
};

struct Party {
  std::string name;
  std::vector<std::string> address;  // lines, as printed
  std::string tax_id;
  std::string email;
};

// Units billed for one metric of one slice of a billing period (on the
// invoice of the period, or later as late usage): what later invoices
// compare the current usage with.
struct BilledUsage {
  Instant period_start;
  Instant slice_from;
  catalog::Metric metric = catalog::Metric::kMessages;
  Decimal units;
};

enum class DocKind { kInvoice, kCreditNote };

// The stored PDF (rendered once, after finalization).
struct PdfRef {
  std::string key;     // in the blob store
  std::string sha256;  // of its bytes
  int64_t bytes = 0;
};

// What became of the e-mail: "" (not yet), "sent", "skipped" (no address, or
// a $0 invoice), "failed" (a permanent refusal or every attempt failed).
struct EmailRecord {
  std::string status;
  std::string to;
  std::string message_id;
  std::optional<Instant> at;
  std::string error;
};

// A payment recorded against a finalized invoice (payments/: an operator's
// bank transfer, later a card charge).
struct PaymentRecord {
  std::string id;  // py_…
  Money amount{0, Currency::Usd()};
  std::string method;     // bank_transfer, check, cash, other (a gateway's: card)
  std::string reference;  // the bank's or the gateway's reference, if any
  Instant at;
  std::string actor;
};

struct Invoice {
  std::string id;  // in_… (a credit note: cn_…)
  DocKind doc_kind = DocKind::kInvoice;
  std::string tenant;
  std::string subscription;
  bool period_end = true;        // the invoice of a period boundary; false: a change at once
  std::optional<Period> period;  // the billing period whose usage it bills
  Instant boundary;              // when it was closed
  InvoiceStatus status = InvoiceStatus::kDraft;
  std::string number;  // empty until finalized: INV-2026-000042, CN-2026-000003
  const Currency* currency = &Currency::Usd();
  std::vector<InvoiceLine> lines;
  std::vector<TaxLine> taxes;
  Money subtotal{0, Currency::Usd()};
  Money tax{0, Currency::Usd()};
  Money total{0, Currency::Usd()};
  Money amount_due{0, Currency::Usd()};   // what is owed (never below 0)
  Money amount_paid{0, Currency::Usd()};  // the sum of `payments`; paid when it reaches amount_due
  std::vector<PaymentRecord> payments;
  std::optional<Instant> paid_at;
  TaxMode tax_mode = TaxMode::kStandard;
  Decimal tax_rate;
  std::string tax_note;  // printed (reverse charge)
  Party issuer;
  Party customer;
  std::vector<std::string> consumed_lines;  // subscription lines it took (ii_…)
  std::vector<BilledUsage> billed;
  Instant created_at;
  Instant finalize_at;  // a draft: when the finalize job runs
  std::optional<Instant> finalized_at;
  std::optional<Instant> voided_at;
  std::string credit_note;      // an invoice voided: its credit note (cn_…)
  std::string credits;          // a credit note: the invoice it credits
  bool credit_pending = false;  // voided, its credit note not numbered yet
  bool carry_pending = false;   // negative: its subtotal not yet carried to the next invoice
  std::optional<PdfRef> pdf;
  EmailRecord email;
  std::vector<events::BillingEvent> outbox;
  int64_t version = 0;
};

}  // namespace caas::invoices
