"""Payments recorded by an operator (the manual gateway: bank transfers),
end to end over HTTP on a manual clock."""
from conftest import assert_problem
from test_invoices import advance, clock_server, invoices, ok, pro_with_march_usage  # noqa: F401


def pay(s, inv_id, body, key="admin"):
    return s.request("POST", "/v1/invoices/%s/payments" % inv_id, body, key=key)


def test_partial_payments_add_up_and_the_last_one_makes_the_invoice_paid(clock_server):
    s = clock_server
    t = pro_with_march_usage(s, tax_rate="19")
    advance(s, "2026-04-01T02:00:00Z")
    march = invoices(s, t)[1]
    assert march["status"] == "finalized" and march["amount_due"]["amount_minor"] == 15205
    assert march["amount_paid"]["amount_minor"] == 0 and march["payments"] == []
    first = ok(pay(s, march["id"], {"amount": "100.00", "method": "bank_transfer",
                                    "reference": "SEPA-0001"}), 201)
    assert first["status"] == "finalized"
    assert first["amount_paid"] == {"amount_minor": 10000, "currency": "USD"}
    assert first["amount_remaining"] == {"amount_minor": 5205, "currency": "USD"}
    assert [p["reference"] for p in first["payments"]] == ["SEPA-0001"]
    assert first["payments"][0]["id"].startswith("py_")
    # The invoice's figures are as finalized.
    for k in ("number", "lines", "taxes", "total", "amount_due"):
        assert first[k] == march[k]
    # More than remains is refused and changes nothing.
    assert_problem(pay(s, march["id"], {"amount": "52.06", "method": "bank_transfer"}), 400,
                   field="amount")
    # The same transfer recorded twice is refused.
    assert_problem(pay(s, march["id"], {"amount": "1.00", "method": "bank_transfer",
                                        "reference": "SEPA-0001"}), 409, field="reference")
    # A partly paid invoice is not voided (its credit note would credit money received).
    assert_problem(s.request("POST", "/v1/invoices/%s/void" % march["id"]), 409)
    assert ok(s.request("GET", "/v1/invoices/" + march["id"])) == first
    last = ok(pay(s, march["id"], {"amount": "52.05", "currency": "USD", "method": "check"}), 201)
    assert last["status"] == "paid" and last["paid_at"] == "2026-04-01T02:00:00Z"
    assert last["amount_paid"]["amount_minor"] == 15205
    assert last["amount_remaining"]["amount_minor"] == 0
    # Paid: nothing more is taken, and it is not voided.
    assert_problem(pay(s, march["id"], {"amount": "0.01", "method": "cash"}), 409)
    assert_problem(s.request("POST", "/v1/invoices/%s/void" % march["id"]), 409)
    events = ok(s.request("GET", "/v1/tenants/%s/billing-events?limit=100" % t))["data"]
    paid = [e for e in events if e["type"] in ("payment.succeeded", "invoice.paid")]
    assert [e["type"] for e in paid] == ["payment.succeeded", "payment.succeeded", "invoice.paid"]
    assert [e["data"]["amount"]["amount_minor"] for e in paid[:2]] == [10000, 5205]
    assert paid[2]["data"]["amount_paid"]["amount_minor"] == 15205
    # The tenant sees its payments; the list filters by status.
    listed = ok(s.request("GET", "/v1/invoices?tenant=%s&status=paid" % t))["data"]
    assert [i["id"] for i in listed] == [march["id"]]
    # A restart keeps all of it.
    s.stop()
    s.start()
    assert ok(s.request("GET", "/v1/invoices/" + march["id"])) == last


def test_bad_payments_are_refused_naming_the_field_and_change_nothing(clock_server):
    s = clock_server
    t = pro_with_march_usage(s)
    advance(s, "2026-04-01T00:10:00Z")
    draft = invoices(s, t)[1]
    assert draft["status"] == "draft"
    assert_problem(pay(s, draft["id"], {"amount": "1.00", "method": "bank_transfer"}), 409)
    advance(s, "2026-04-01T02:00:00Z")
    inv = ok(s.request("GET", "/v1/invoices/" + draft["id"]))
    assert inv["status"] == "finalized"
    for body, field in [
        ({"method": "bank_transfer"}, "amount"),
        ({"amount": 12.5, "method": "bank_transfer"}, "amount"),
        ({"amount": "0", "method": "bank_transfer"}, "amount"),
        ({"amount": "-5.00", "method": "bank_transfer"}, "amount"),
        ({"amount": "1.001", "method": "bank_transfer"}, "amount"),
        ({"amount": "1e3", "method": "bank_transfer"}, "amount"),
        ({"amount": "1.00"}, "method"),
        ({"amount": "1.00", "method": "card"}, "method"),
        ({"amount": "1.00", "method": "cash", "currency": "EUR"}, "currency"),
        ({"amount": "1.00", "method": "cash", "reference": "x" * 201}, "reference"),
        ({"amount": "1.00", "method": "cash", "reference": "a\nb"}, "reference"),
        ({"amount": "1.00", "method": "cash", "tip": "1.00"}, "tip"),
    ]:
        assert_problem(pay(s, inv["id"], body), 400, field=field)
    assert_problem(pay(s, inv["id"], "not json"), 400)
    assert_problem(pay(s, "in_nope", {"amount": "1.00", "method": "cash"}), 400, field="id")
    other = inv["id"][:-1] + ("0" if inv["id"][-1] != "0" else "1")
    assert_problem(pay(s, other, {"amount": "1.00", "method": "cash"}), 404)
    # Only an operator records payments.
    key = ok(s.request("POST", "/v1/tenants/%s/api_keys" % t, {}), 201)["secret"]
    code, _, _ = pay(s, inv["id"], {"amount": "1.00", "method": "cash"}, key=key)
    assert code == 403
    assert ok(s.request("GET", "/v1/invoices/" + inv["id"])) == inv


def test_the_cli_records_a_bank_transfer(clock_server):
    import os
    import subprocess
    from conftest import BIN
    s = clock_server
    t = pro_with_march_usage(s)
    advance(s, "2026-04-01T02:00:00Z")
    march = invoices(s, t)[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAAS_BILLING_")}
    env.update({"CAAS_BILLING_URL": "http://127.0.0.1:%d" % s.port,
                "CAAS_BILLING_API_KEY": s.admin_key})

    def cli(*args):
        return subprocess.run([BIN, "invoices", *args], capture_output=True, text=True, env=env,
                              timeout=60)

    r = cli("pay", march["id"], "--amount", "27.77", "--reference", "SEPA-77")
    assert r.returncode == 0, r.stderr
    assert "bank_transfer SEPA-77" in r.stdout and "USD 27.77" in r.stdout
    assert "amount remaining" in r.stdout and "USD 100.00" in r.stdout
    # An overpayment: refused, exit 2, and the problem on stderr.
    r = cli("pay", march["id"], "--amount", "100.01")
    assert r.returncode == 2 and "amount" in r.stderr
    r = cli("pay", march["id"], "--amount", "100.00", "--method", "check")
    assert r.returncode == 0, r.stderr
    assert " paid " in r.stdout
    assert ok(s.request("GET", "/v1/invoices/" + march["id"]))["status"] == "paid"
