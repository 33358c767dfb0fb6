// The collections of the invoices module (internal to it).
#pragma once

namespace caas::invoices {

inline constexpr const char* kInvoices = "invoices";
inline constexpr const char* kCreditNotes = "credit_notes";

}  // namespace caas::invoices
