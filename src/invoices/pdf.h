// The PDF of an invoice or credit note: cairo + pango (Debian), Noto fonts,
// text extractable, A4 or Letter, as many pages as the lines need.
//
// Deterministic: the same document renders to the same bytes (the PDF's
// dates are the document's own, never the time of rendering), so a PDF
// rendered again after a crash is the one that was stored or sent.
#pragma once

#include <string>

#include "core/status.h"
#include "invoices/model.h"

namespace caas::invoices {

enum class Paper { kA4, kLetter };

struct PdfOptions {
  Paper paper = Paper::kA4;
  std::string logo_png;  // the issuer's logo (PNG bytes); empty: none
};

// kInternal when cairo fails (out of memory, a bad logo).
Result<std::string> RenderPdf(const Invoice& inv, const PdfOptions& options);

}  // namespace caas::invoices
