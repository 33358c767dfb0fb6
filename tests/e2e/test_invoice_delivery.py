"""Invoice PDFs and e-mail, end to end: the .eml default, and a real SMTP
server (aiosmtpd, STARTTLS + AUTH) started here on a port the kernel picks.
PDFs are checked with poppler's pdftotext."""
import email
import email.policy
import glob
import hashlib
import os
import subprocess
import time

import pytest

from conftest import BIN, assert_problem, make_tenant
from test_invoices import Usage, advance, invoices, manual_server, ok

HERE = os.path.dirname(os.path.abspath(__file__))


def pdf_text(data, tmp_path):
    path = tmp_path / ("doc-%d.pdf" % time.monotonic_ns())
    path.write_bytes(data)
    r = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, "pdftotext (poppler-utils, installed by scripts/setup): " + r.stderr
    return r.stdout


def messages(directory):
    out = []
    for path in sorted(glob.glob(os.path.join(directory, "*.eml"))):
        with open(path, "rb") as f:
            out.append(email.message_from_binary_file(f, policy=email.policy.default))
    return out


def attachment(msg):
    parts = [p for p in msg.iter_attachments()]
    assert len(parts) == 1 and parts[0].get_content_type() == "application/pdf"
    return parts[0].get_content()


@pytest.fixture
def smtp(tmp_path):
    d = tmp_path / "smtp"
    d.mkdir()
    cert, key = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "smtp_server.py"), "--dir",
                             str(d), "--cert", str(cert), "--key", str(key), "--user", "mailer",
                             "--password", "s3cret-pw"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("port "), "the SMTP server (python3-aiosmtpd) did not start: " + line
    yield {"port": int(line.split()[1]), "dir": str(d), "cert": str(cert)}
    proc.terminate()
    proc.wait(timeout=30)


def test_a_final_invoice_is_rendered_and_written_as_eml_by_default(tmp_path):
    s = manual_server(tmp_path, "2026-03-01T00:00:00Z")
    try:
        t = make_tenant(s, name="Ромашка ООО", email="billing@romashka.example")["id"]
        ok(s.request("POST", "/v1/tenants/%s/subscription" % t, {"plan": "pro"}))
        Usage(s, t).send("2026-03-01T00:00:00Z", messages=150000, mau=12345,
                         storage_bytes=3200000000)
        advance(s, "2026-04-01T02:00:00Z")  # the jobs run as the clock moves
        inv = invoices(s, t)[1]
        assert inv["total"]["amount_minor"] == 12777
        assert inv["email"]["status"] == "sent" and inv["email"]["to"] == "billing@romashka.example"
        assert inv["pdf"]["bytes"] > 1000
        c = s.connect()
        c.request("GET", "/v1/invoices/%s/pdf" % inv["id"],
                  headers={"Authorization": "Bearer " + s.admin_key})
        r = c.getresponse()
        raw = r.read()
        c.close()
        assert r.status == 200 and r.getheader("Content-Type") == "application/pdf"
        assert hashlib.sha256(raw).hexdigest() == inv["pdf"]["sha256"]
        # The stored PDF is what was mailed: one rendering, recorded by its hash.
        mails = [m for m in messages(os.path.join(s.data_dir, "outbox"))
                 if inv["number"] in m["Subject"]]
        assert len(mails) == 1
        m = mails[0]
        assert "billing@romashka.example" in str(m["To"]) and m["Message-ID"]
        att = attachment(m)
        assert hashlib.sha256(att).hexdigest() == inv["pdf"]["sha256"]
        text = pdf_text(att, tmp_path)
        for want in ("Ромашка ООО", inv["number"], "127.77 USD", "23.45 USD",
                     "Monthly active users beyond 10,000 included"):
            assert want in text, (want, text)
        # The upgrade's invoice was mailed too; Free tenants' $0 invoices are not.
        free = make_tenant(s, name="Free Co")["id"]  # created 04-01 02:00
        advance(s, "2026-05-01T03:00:00Z")
        zero = invoices(s, free)[0]
        assert zero["total"]["amount_minor"] == 0 and zero["status"] == "finalized"
        assert zero["email"]["status"] == "skipped" and zero["pdf"] is not None
        assert_problem(s.request("GET", "/v1/invoices/in_01KN00000000000000000000XX/pdf"), 404)
    finally:
        s.stop()


def test_smtp_with_starttls_and_auth_and_a_permanent_failure_on_the_invoice(tmp_path, smtp):
    s = manual_server(tmp_path, "2026-03-01T00:00:00Z", {
        "CAAS_BILLING_SMTP_URL": "smtp://127.0.0.1:%d" % smtp["port"],
        "CAAS_BILLING_SMTP_USER": "mailer", "CAAS_BILLING_SMTP_PASSWORD": "s3cret-pw",
        "CAAS_BILLING_SMTP_CA_FILE": smtp["cert"], "CAAS_BILLING_MAIL_FROM": "billing@chat.example",
        "CAAS_BILLING_ISSUER_NAME": "Chat Cloud Ltd"})
    try:
        t = make_tenant(s, email="ap@acme.example")["id"]
        bad = make_tenant(s, name="Gone", email="nobody@refuse.example")["id"]
        for x in (t, bad):
            ok(s.request("POST", "/v1/tenants/%s/subscription" % x, {"plan": "pro"}))
        advance(s, "2026-03-01T00:00:10Z")
        got = messages(smtp["dir"])
        assert len(got) == 1, got
        m = got[0]
        with open(sorted(glob.glob(os.path.join(smtp["dir"], "*.meta")))[0]) as f:
            meta = f.read()
        assert "tls=True" in meta and "auth=True" in meta and "to=ap@acme.example" in meta
        assert "Chat Cloud Ltd" in m["From"] and "INV-2026-" in m["Subject"]
        text = pdf_text(attachment(m), tmp_path)
        assert "99.00 USD" in text and "Chat Cloud Ltd" in text
        inv = invoices(s, t)[0]
        assert inv["email"]["status"] == "sent"
        # 550 from the server: permanent, not retried, and shown on the invoice.
        failed = invoices(s, bad)[0]
        assert failed["email"]["status"] == "failed" and "550" in failed["email"]["error"]
        jobs = ok(s.request("GET", "/v1/jobs?state=dead"))["data"]
        assert [j["payload"]["id"] for j in jobs] == [failed["id"]]
        # Sent again on request: a second message, the same PDF.
        r = ok(s.request("POST", "/v1/invoices/%s/send" % inv["id"]), 202)
        assert r["job"].startswith("job_")
        advance(s, "2026-03-01T00:00:20Z")
        again = messages(smtp["dir"])
        assert len(again) == 2
        assert attachment(again[1]) == attachment(again[0])
        assert again[1]["Message-ID"] != again[0]["Message-ID"]
        # The password never reaches the logs.
        assert "s3cret-pw" not in s.logs()
    finally:
        s.stop()


def test_the_cli_writes_the_pdf(tmp_path):
    s = manual_server(tmp_path, "2026-03-01T00:00:00Z")
    try:
        t = make_tenant(s)["id"]
        ok(s.request("POST", "/v1/tenants/%s/subscription" % t, {"plan": "pro"}))
        inv = invoices(s, t)[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAAS_BILLING_")}
        env.update({"CAAS_BILLING_URL": "http://127.0.0.1:%d" % s.port,
                    "CAAS_BILLING_API_KEY": s.admin_key})
        out = tmp_path / "inv.pdf"
        r = subprocess.run([BIN, "invoices", "pdf", inv["id"], "-o", str(out)], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        data = out.read_bytes()
        assert data.startswith(b"%PDF-")
        assert inv["number"] in pdf_text(data, tmp_path)
    finally:
        s.stop()


def test_kill_9_in_the_middle_of_a_month_end_close(tmp_path):
    """The process is killed while it closes, numbers, renders and mails a
    month for 40 tenants; after the restart every tenant has exactly one
    invoice per period, the numbers have no gap, and every invoice was
    e-mailed (an .eml file each) and recorded once."""
    import signal
    import threading
    s = manual_server(tmp_path, "2026-03-01T00:00:00Z")
    tenants = []
    for i in range(40):
        t = make_tenant(s, name="T%d" % i, email="t%d@x.example" % i)["id"]
        ok(s.request("POST", "/v1/tenants/%s/subscription" % t, {"plan": "pro"}))
        tenants.append(t)
    advance(s, "2026-03-01T00:01:00Z")  # the upgrade invoices delivered
    done = threading.Event()

    def close():
        try:
            s.request("POST", "/v1/clock/advance", {"to": "2026-04-01T01:01:00Z"})
        except OSError:
            pass
        done.set()

    threading.Thread(target=close).start()
    time.sleep(0.5)  # well inside the run (it takes several seconds)
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait()
    done.wait(30)
    s.stop(sig=signal.SIGKILL, check=False)
    s.start()
    try:
        # The kill landed mid-run: some of the month was not done.
        left = 0
        for t in tenants:
            period = [i for i in invoices(s, t) if i["kind"] == "period"]
            left += not period or period[0]["email"]["status"] != "sent"
        assert left > 0, "the run ended before the kill: the test proves nothing"
        advance(s, "2026-04-01T01:02:00Z")  # the scheduler rolls everything forward
        numbers = []
        for t in tenants:
            invs = invoices(s, t)
            assert [i["kind"] for i in invs] == ["change", "period"], invs
            for i in invs:
                assert i["status"] == "finalized" and i["email"]["status"] == "sent", i
                numbers.append(int(i["number"].rsplit("-", 1)[1]))
        assert sorted(numbers) == list(range(1, 81))
        sent = {}
        for m in messages(os.path.join(s.data_dir, "outbox")):
            sent.setdefault(m["Message-ID"], 0)
            sent[m["Message-ID"]] += 1
        assert len(sent) == 80  # one message per invoice (a re-send would overwrite its file)
    finally:
        s.stop()
