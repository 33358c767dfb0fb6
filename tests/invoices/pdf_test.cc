// The PDF: the same bytes for the same invoice, text that extracts, every
// script of a tenant's name, A4 and Letter, long invoices over pages.
#include "invoices/pdf.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "test_dir.h"

namespace caas::invoices {
namespace {

Instant At(const char* s) { return ParseRfc3339(s).value(); }

Invoice Sample(std::string customer) {
  Invoice inv;
  inv.id = "in_01KN35E00070RV6EXCN0VQFJF6";
  inv.tenant = "tnt_01KJKB3Q0070PZ473FXNCHRPTA";
  inv.status = InvoiceStatus::kFinalized;
  inv.number = "INV-2026-000042";
  inv.period = Period{At("2026-03-01T00:00:00Z"), At("2026-04-01T00:00:00Z")};
  inv.created_at = At("2026-04-01T00:00:00Z");
  inv.finalized_at = At("2026-04-01T01:00:00Z");
  inv.issuer = {"Chat Cloud Ltd", {"1 Main Street", "Dublin D01", "IE"}, "IE1234567X", ""};
  inv.customer = {std::move(customer),
                  {"Hauptstr. 1", "10115 Berlin", "DE"},
                  "DE123456789",
                  "billing@acme.example"};
  auto line = [](const char* d, const char* q, const char* p, int64_t a) {
    InvoiceLine l;
    l.description = d;
    l.period = Period{At("2026-03-01T00:00:00Z"), At("2026-04-01T00:00:00Z")};
    l.quantity = Decimal::Parse(q).value();
    l.unit_price = Decimal::Parse(p).value();
    l.amount = Money(a, Currency::Usd());
    return l;
  };
  inv.lines = {line("Pro monthly fee, 2026-04-01 to 2026-05-01", "1", "99", 9900),
               line("Messages beyond 100,000 included", "50000", "0.0001", 500),
               line("Monthly active users beyond 10,000 included", "2345", "0.01", 2345),
               line("Media storage (GB-month)", "3.2", "0.1", 32)};
  inv.subtotal = inv.total = inv.amount_due = Money(12777, Currency::Usd());
  inv.tax = Money(0, Currency::Usd());
  inv.taxes = {TaxLine{"Reverse charge", Decimal(), inv.subtotal, inv.tax}};
  inv.tax_note = "Reverse charge: VAT liability shifted to the customer";
  return inv;
}

// Runs a poppler tool on the PDF; its stdout. A missing tool fails.
std::string Poppler(const std::string& tool, const std::string& pdf) {
  caas::testing::TempDir dir;
  std::filesystem::create_directories(dir.str());
  const std::string path = dir.str() + "/in.pdf";
  std::ofstream(path, std::ios::binary) << pdf;
  FILE* p = popen((tool + " " + path + (tool == "pdftotext" ? " -" : "") + " 2>&1").c_str(), "r");
  EXPECT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  EXPECT_EQ(rc, 0) << tool
                   << " failed (is poppler-utils installed? scripts/setup installs it): " << out;
  return out;
}

TEST(Pdf, SameInvoiceSameBytes) {
  auto a = RenderPdf(Sample("Acme GmbH"), {});
  auto b = RenderPdf(Sample("Acme GmbH"), {});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->substr(0, 5), "%PDF-");
  EXPECT_EQ(*a, *b);
  auto letter = RenderPdf(Sample("Acme GmbH"), {Paper::kLetter, ""});
  ASSERT_TRUE(letter.ok());
  EXPECT_NE(*letter, *a);
  EXPECT_NE(Poppler("pdfinfo", *letter).find("612 x 792 pts (letter)"), std::string::npos);
  EXPECT_NE(Poppler("pdfinfo", *a).find("595.276 x 841.89 pts (A4)"), std::string::npos);
}

TEST(Pdf, TheTextExtractsAndTheFontsAreEmbedded) {
  auto pdf = RenderPdf(Sample("Acme GmbH"), {});
  ASSERT_TRUE(pdf.ok());
  const std::string text = Poppler("pdftotext", *pdf);
  for (const char* want :
       {"Invoice INV-2026-000042", "Chat Cloud Ltd", "VAT IE1234567X", "Acme GmbH",
        "VAT DE123456789", "Messages beyond 100,000 included", "50,000", "0.0001", "5.00 USD",
        "2,345", "23.45 USD", "127.77 USD", "Reverse charge: VAT liability shifted to the customer",
        "Payment due", "Period 2026-03-01 to 2026-04-01"}) {
    EXPECT_NE(text.find(want), std::string::npos) << want << " not in:\n" << text;
  }
  const std::string fonts = Poppler("pdffonts", *pdf);
  EXPECT_NE(fonts.find("NotoSans"), std::string::npos) << fonts;
  EXPECT_EQ(fonts.find(" no  "), std::string::npos) << "a font is not embedded:\n" << fonts;
}

TEST(Pdf, TenantNamesInEveryScript) {
  for (const char* name : {"Ромашка ООО", "Ελληνική Εταιρεία", "شركة الدردشة", "חברת צ'אט",
                           "चैट कंपनी", "聊天有限公司", "チャット株式会社", "채팅 주식회사"}) {
    auto pdf = RenderPdf(Sample(name), {});
    ASSERT_TRUE(pdf.ok());
    const std::string text = Poppler("pdftotext", *pdf);
    // Right-to-left names may extract in visual order: check each word.
    std::string word;
    for (std::string_view rest = name;;) {
      const size_t sp = rest.find(' ');
      word = std::string(rest.substr(0, sp));
      if (word.find("'") == std::string::npos) {
        EXPECT_NE(text.find(word), std::string::npos) << word << " of " << name << " not in:\n"
                                                      << text;
      }
      if (sp == std::string_view::npos) break;
      rest.remove_prefix(sp + 1);
    }
    const std::string fonts = Poppler("pdffonts", *pdf);
    EXPECT_EQ(fonts.find(" no  "), std::string::npos) << name << ": a font is not embedded";
  }
}

TEST(Pdf, ManyLinesGoOnSeveralPages) {
  Invoice inv = Sample("Acme GmbH");
  for (int i = 0; i < 80; ++i) inv.lines.push_back(inv.lines[1]);
  auto pdf = RenderPdf(inv, {});
  ASSERT_TRUE(pdf.ok());
  const std::string info = Poppler("pdfinfo", *pdf);
  EXPECT_EQ(info.find("Pages:           1\n"), std::string::npos) << info;
  EXPECT_NE(Poppler("pdftotext", *pdf).find("127.77 USD"), std::string::npos);
}

TEST(Pdf, ABadLogoIsAClearError) {
  auto pdf = RenderPdf(Sample("Acme GmbH"), {Paper::kA4, "not a png"});
  ASSERT_FALSE(pdf.ok());
  EXPECT_NE(pdf.error().message.find("logo"), std::string::npos);
}

}  // namespace
}  // namespace caas::invoices
