// The one-page invoice of bench/invoice_bench.cc (BM_RenderPdfOnePage), laid
// out with PDFKit in the same font (Noto Sans, embedded), rendered N times in
// memory. Prints the mean per PDF.
//   node bench/pdfkit/render.js [N]
const PDFDocument = require("pdfkit");
const fonts = "/usr/share/fonts/truetype/noto/";
const n = parseInt(process.argv[2] || "200", 10);

function render() {
  return new Promise((resolve) => {
    const doc = new PDFDocument({ size: "A4", margin: 50, info: { CreationDate: new Date(Date.UTC(2026, 3, 1, 1)) } });
    const chunks = [];
    doc.on("data", (c) => chunks.push(c));
    doc.on("end", () => resolve(Buffer.concat(chunks)));
    doc.registerFont("r", fonts + "NotoSans-Regular.ttf");
    doc.registerFont("b", fonts + "NotoSans-Bold.ttf");
    const left = 50, right = 545, w = right - left;
    doc.font("b").fontSize(11).text("Chat Cloud Ltd", left, 50);
    doc.font("r").fontSize(9).text("1 Main Street\nDublin D01\nIE\nVAT IE1234567X");
    doc.font("b").fontSize(16).text("Invoice INV-2026-000042", left + w * 0.4, 50, { width: w * 0.6, align: "right" });
    doc.font("r").fontSize(9).text("Date 2026-04-01\nPeriod 2026-03-01 to 2026-04-01", { width: w * 0.6, align: "right" });
    doc.font("b").fontSize(8).text("Bill to", left, 150);
    doc.font("b").fontSize(10).text("Acme GmbH");
    doc.font("r").fontSize(9).text("Hauptstr. 1\n10115 Berlin\nDE\nVAT DE123456789\nbilling@acme.example");
    let y = 250;
    doc.rect(left, y - 2, w, 16).fill("#eeeeee").fillColor("#1a1a1a");
    doc.font("b").fontSize(8).text("Description", left + 2, y);
    doc.text("Quantity", left + w * 0.55, y, { width: w * 0.15 - 6, align: "right" });
    doc.text("Unit price", left + w * 0.70, y, { width: w * 0.12 - 6, align: "right" });
    doc.text("Amount", left + w * 0.82, y, { width: w * 0.18, align: "right" });
    y += 20;
    const lines = [
      ["Pro monthly fee, 2026-04-01 to 2026-05-01", "1", "99", "99.00 USD"],
      ["Messages beyond 100,000 included", "50,000", "0.0001", "5.00 USD"],
      ["Monthly active users beyond 10,000 included", "2,345", "0.01", "23.45 USD"],
      ["Media storage (GB-month)", "3.2", "0.1", "0.32 USD"],
    ];
    doc.font("r").fontSize(9);
    for (const [d, q, p, a] of lines) {
      doc.text(d + "\n2026-03-01 to 2026-04-01", left + 2, y, { width: w * 0.55 - 10 });
      doc.text(q, left + w * 0.55, y, { width: w * 0.15 - 6, align: "right" });
      doc.text(p, left + w * 0.70, y, { width: w * 0.12 - 6, align: "right" });
      doc.text(a, left + w * 0.82, y, { width: w * 0.18, align: "right" });
      y += 30;
    }
    for (const [label, v, bold] of [["Subtotal", "127.77 USD"], ["Reverse charge", "0.00 USD"], ["Total", "127.77 USD", 1], ["Amount due", "127.77 USD", 1]]) {
      doc.font(bold ? "b" : "r").text(label, left, y, { width: w * 0.82 - 6, align: "right" });
      doc.text(v, left + w * 0.82, y, { width: w * 0.18, align: "right" });
      y += 14;
    }
    doc.font("b").fontSize(10).text("Payment due", left, y + 12);
    doc.font("r").fontSize(9).text("Reverse charge: VAT liability shifted to the customer");
    doc.fontSize(7).fillColor("#666666").text("Chat Cloud Ltd · VAT IE1234567X · INV-2026-000042", left, 800, { width: w, align: "center" });
    doc.end();
  });
}

(async () => {
  for (let i = 0; i < 20; i++) await render();  // warm-up (font parsing, JIT)
  const t0 = process.hrtime.bigint();
  let bytes = 0;
  for (let i = 0; i < n; i++) bytes += (await render()).length;
  const ms = Number(process.hrtime.bigint() - t0) / 1e6 / n;
  console.log(`pdfkit one-page invoice: ${ms.toFixed(3)} ms per PDF (${n} PDFs, ${Math.round(bytes / n)} bytes each)`);
})();
