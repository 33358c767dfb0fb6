#include "invoices/pdf.h"

#include <cairo-pdf.h>
#include <cairo.h>
#include <pango/pangocairo.h>

#include <cstring>
#include <memory>
#include <vector>

namespace caas::invoices {
namespace {

constexpr double kMargin = 50;  // points
const char* const kFont = "Noto Sans";

std::string Day(Instant t) { return FormatRfc3339(t).substr(0, 10); }

std::string Amount(const Money& m) {
  return m.ToDecimalString() + " " + std::string(m.currency().code);
}

// Groups of three digits in the integer part: "150000" -> "150,000".
std::string Grouped(const std::string& s) {
  const size_t dot = s.find('.');
  std::string whole = s.substr(0, dot == std::string::npos ? s.size() : dot);
  const std::string rest = dot == std::string::npos ? "" : s.substr(dot);
  std::string sign;
  if (!whole.empty() && whole[0] == '-') {
    sign = "-";
    whole.erase(0, 1);
  }
  std::string out;
  for (size_t i = 0; i < whole.size(); ++i) {
    if (i > 0 && (whole.size() - i) % 3 == 0) out += ',';
    out += whole[i];
  }
  return sign + out + rest;
}

struct PngReader {
  const std::string* bytes;
  size_t at = 0;
};
cairo_status_t ReadPng(void* closure, unsigned char* data, unsigned int length) {
  auto* r = static_cast<PngReader*>(closure);
  if (r->at + length > r->bytes->size()) return CAIRO_STATUS_READ_ERROR;
  std::memcpy(data, r->bytes->data() + r->at, length);
  r->at += length;
  return CAIRO_STATUS_SUCCESS;
}
cairo_status_t WritePdf(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

// Writes text with one reused pango layout.
class Writer {
 public:
  Writer(cairo_t* cr) : cr_(cr), layout_(pango_cairo_create_layout(cr)) {}
  ~Writer() {
    g_object_unref(layout_);
    for (auto* d : fonts_) pango_font_description_free(d);
  }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Draws `text` at (x, y) in a box `width` wide (0: no wrapping), aligned;
  // returns the height used.
  double Text(double x, double y, const std::string& text, double size, bool bold = false,
              double width = 0, PangoAlignment align = PANGO_ALIGN_LEFT) {
    pango_layout_set_font_description(layout_, Font(size, bold));
    pango_layout_set_width(layout_, width > 0 ? static_cast<int>(width * PANGO_SCALE) : -1);
    pango_layout_set_alignment(layout_, align);
    pango_layout_set_wrap(layout_, PANGO_WRAP_WORD_CHAR);
    pango_layout_set_text(layout_, text.c_str(), static_cast<int>(text.size()));
    cairo_move_to(cr_, x, y);
    pango_cairo_show_layout(cr_, layout_);
    int w = 0, h = 0;
    pango_layout_get_size(layout_, &w, &h);
    return static_cast<double>(h) / PANGO_SCALE;
  }

 private:
  PangoFontDescription* Font(double size, bool bold) {
    const int i = (bold ? 1 : 0) + (size >= 14 ? 2 : size >= 10 ? 4 : 0);
    if (fonts_.size() < 6) fonts_.resize(6, nullptr);
    if (!fonts_[i] ||
        pango_font_description_get_size(fonts_[i]) != static_cast<int>(size * PANGO_SCALE)) {
      if (fonts_[i]) pango_font_description_free(fonts_[i]);
      fonts_[i] = pango_font_description_new();
      pango_font_description_set_family(fonts_[i], kFont);
      pango_font_description_set_weight(fonts_[i], bold ? PANGO_WEIGHT_BOLD : PANGO_WEIGHT_NORMAL);
      pango_font_description_set_size(fonts_[i], static_cast<int>(size * PANGO_SCALE));
    }
    return fonts_[i];
  }

  cairo_t* cr_;
  PangoLayout* layout_;
  std::vector<PangoFontDescription*> fonts_;
};

std::string Title(const Invoice& inv) {
  const bool cn = inv.doc_kind == DocKind::kCreditNote;
  std::string t = cn ? "Credit note" : "Invoice";
  if (!inv.number.empty()) t += " " + inv.number;
  if (inv.status == InvoiceStatus::kDraft) t += " (draft)";
  return t;
}

std::string StatusText(const Invoice& inv) {
  switch (inv.status) {
    case InvoiceStatus::kDraft:
      return "Draft: not yet final";
    case InvoiceStatus::kFinalized:
      if (inv.subtotal.amount_minor() < 0) {
        return "Nothing to pay: a credit of " +
               Amount(Money(-inv.subtotal.amount_minor(), inv.subtotal.currency())) +
               " (before tax) is carried to the next invoice";
      }
      return inv.amount_due.amount_minor() > 0 ? "Payment due" : "Nothing to pay";
    case InvoiceStatus::kPaid:
      return "Paid";
    case InvoiceStatus::kVoid:
      return "Void: credited by credit note";
    case InvoiceStatus::kUncollectible:
      return "Uncollectible";
  }
  return "";
}

}  // namespace

Result<std::string> RenderPdf(const Invoice& inv, const PdfOptions& options) {
  const double width = options.paper == Paper::kA4 ? 595.276 : 612;
  const double height = options.paper == Paper::kA4 ? 841.89 : 792;
  std::string out;
  std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)> surface(
      cairo_pdf_surface_create_for_stream(WritePdf, &out, width, height), cairo_surface_destroy);
  // The document's own dates, never the time of rendering: same bytes.
  const Instant when = inv.finalized_at ? *inv.finalized_at : inv.created_at;
  const std::string date = FormatRfc3339(when);
  cairo_pdf_surface_set_metadata(surface.get(), CAIRO_PDF_METADATA_CREATE_DATE, date.c_str());
  cairo_pdf_surface_set_metadata(surface.get(), CAIRO_PDF_METADATA_MOD_DATE, date.c_str());
  cairo_pdf_surface_set_metadata(surface.get(), CAIRO_PDF_METADATA_TITLE, Title(inv).c_str());
  cairo_pdf_surface_set_metadata(surface.get(), CAIRO_PDF_METADATA_AUTHOR, inv.issuer.name.c_str());
  cairo_pdf_surface_set_metadata(surface.get(), CAIRO_PDF_METADATA_CREATOR, "caas-billing");
  std::unique_ptr<cairo_t, decltype(&cairo_destroy)> cr_owner(cairo_create(surface.get()),
                                                              cairo_destroy);
  cairo_t* cr = cr_owner.get();
  Writer w(cr);
  const double right = width - kMargin;
  const double content = right - kMargin;

  // Header: logo and issuer on the left, the title and dates on the right.
  double y = kMargin;
  if (!options.logo_png.empty()) {
    PngReader reader{&options.logo_png};
    std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)> logo(
        cairo_image_surface_create_from_png_stream(ReadPng, &reader), cairo_surface_destroy);
    if (cairo_surface_status(logo.get()) != CAIRO_STATUS_SUCCESS) {
      return Error::Make(ErrorCode::kInternal, "the issuer logo is not a PNG image");
    }
    const double lw = cairo_image_surface_get_width(logo.get());
    const double lh = cairo_image_surface_get_height(logo.get());
    const double scale = std::min(140.0 / lw, 48.0 / lh);
    cairo_save(cr);
    cairo_translate(cr, kMargin, y);
    cairo_scale(cr, scale, scale);
    cairo_set_source_surface(cr, logo.get(), 0, 0);
    cairo_paint(cr);
    cairo_restore(cr);
    y += lh * scale + 8;
  }
  cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
  y += w.Text(kMargin, y, inv.issuer.name, 11, true, content / 2);
  for (const auto& line : inv.issuer.address) y += w.Text(kMargin, y, line, 9, false, content / 2);
  if (!inv.issuer.tax_id.empty()) y += w.Text(kMargin, y, "VAT " + inv.issuer.tax_id, 9);
  if (!inv.issuer.email.empty()) y += w.Text(kMargin, y, inv.issuer.email, 9);

  double ry = kMargin;
  ry += w.Text(kMargin + content * 0.4, ry, Title(inv), 16, true, content * 0.6, PANGO_ALIGN_RIGHT);
  std::string dates = "Date " + Day(when);
  if (inv.period) {
    dates += "\nPeriod " + Day(inv.period->start) + " to " + Day(inv.period->end);
  }
  if (inv.doc_kind == DocKind::kCreditNote) dates += "\nCredits invoice " + inv.credits;
  ry += w.Text(kMargin + content / 2, ry + 4, dates, 9, false, content / 2, PANGO_ALIGN_RIGHT);
  y = std::max(y, ry) + 24;

  // The customer.
  y += w.Text(kMargin, y, "Bill to", 8, true);
  y += w.Text(kMargin, y, inv.customer.name, 10, true, content / 2);
  for (const auto& line : inv.customer.address)
    y += w.Text(kMargin, y, line, 9, false, content / 2);
  if (!inv.customer.tax_id.empty()) y += w.Text(kMargin, y, "VAT " + inv.customer.tax_id, 9);
  if (!inv.customer.email.empty()) y += w.Text(kMargin, y, inv.customer.email, 9);
  y += 20;

  // The lines table; a new page when it runs out of room.
  const double c_desc = kMargin, c_qty = kMargin + content * 0.55,
               c_price = kMargin + content * 0.70, c_amount = kMargin + content * 0.82;
  auto header = [&] {
    cairo_set_source_rgb(cr, 0.93, 0.93, 0.93);
    cairo_rectangle(cr, kMargin, y - 2, content, 16);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    w.Text(c_desc + 2, y, "Description", 8, true);
    w.Text(c_qty, y, "Quantity", 8, true, c_price - c_qty - 6, PANGO_ALIGN_RIGHT);
    w.Text(c_price, y, "Unit price", 8, true, c_amount - c_price - 6, PANGO_ALIGN_RIGHT);
    w.Text(c_amount, y, "Amount", 8, true, right - c_amount, PANGO_ALIGN_RIGHT);
    y += 20;
  };
  header();
  for (const auto& l : inv.lines) {
    if (y > height - kMargin - 140) {
      cairo_show_page(cr);
      y = kMargin;
      header();
    }
    std::string desc = l.description;
    desc += "\n" + Day(l.period.start) + " to " + Day(l.period.end);
    const double h = w.Text(c_desc + 2, y, desc, 9, false, c_qty - c_desc - 10);
    w.Text(c_qty, y, Grouped(l.quantity.ToString()), 9, false, c_price - c_qty - 6,
           PANGO_ALIGN_RIGHT);
    w.Text(c_price, y, l.unit_price.ToString(), 9, false, c_amount - c_price - 6,
           PANGO_ALIGN_RIGHT);
    w.Text(c_amount, y, Amount(l.amount), 9, false, right - c_amount, PANGO_ALIGN_RIGHT);
    y += h + 6;
  }
  if (inv.lines.empty()) {
    y += w.Text(c_desc + 2, y, "No charges for this period.", 9) + 6;
  }
  cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
  cairo_set_line_width(cr, 0.5);
  cairo_move_to(cr, c_price, y);
  cairo_line_to(cr, right, y);
  cairo_stroke(cr);
  cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
  y += 6;
  auto total_row = [&](const std::string& label, const Money& m, bool bold) {
    w.Text(c_desc, y, label, 9, bold, c_amount - c_desc - 6, PANGO_ALIGN_RIGHT);
    y += w.Text(c_amount, y, Amount(m), 9, bold, right - c_amount, PANGO_ALIGN_RIGHT) + 3;
  };
  total_row("Subtotal", inv.subtotal, false);
  for (const auto& t : inv.taxes) total_row(t.description, t.amount, false);
  total_row("Total", inv.total, true);
  total_row("Amount due", inv.amount_due, true);
  y += 12;
  y += w.Text(kMargin, y, StatusText(inv), 10, true);
  if (!inv.tax_note.empty()) y += w.Text(kMargin, y + 4, inv.tax_note, 9, false, content) + 4;

  // Footer.
  std::string footer = inv.issuer.name;
  if (!inv.issuer.tax_id.empty()) footer += " · VAT " + inv.issuer.tax_id;
  footer += " · " + (inv.number.empty() ? inv.id : inv.number);
  cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
  w.Text(kMargin, height - kMargin + 10, footer, 7, false, content, PANGO_ALIGN_CENTER);
  cairo_show_page(cr);
  cr_owner.reset();
  cairo_surface_finish(surface.get());
  if (cairo_surface_status(surface.get()) != CAIRO_STATUS_SUCCESS) {
    return Error::Make(ErrorCode::kInternal,
                       std::string("rendering the PDF failed: ") +
                           cairo_status_to_string(cairo_surface_status(surface.get())));
  }
  surface.reset();
  return out;
}

}  // namespace caas::invoices
