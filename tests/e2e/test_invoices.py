"""Invoices end to end over HTTP on a manual clock.

Golden scenarios: each file in invoice_scenarios/ holds the tenant, its plan
changes and usage on a timeline, and the invoices expected, line by line, to
the cent (computed by hand; the file says how in "why")."""
import glob
import json
import os

import pytest

from conftest import Server, assert_problem, make_tenant

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = sorted(glob.glob(os.path.join(HERE, "invoice_scenarios", "*.json")))
BATCH = "application/cloudevents-batch+json"


def manual_server(tmp_path, now, extra=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = {"CAAS_BILLING_CLOCK": "manual", "CAAS_BILLING_NOW": now}
    env.update(extra or {})
    return Server(tmp_path / "data", extra_env=env).start()


def ok(resp, status=200):
    code, _, body = resp
    assert code == status, body
    return body


def advance(server, to):
    return ok(server.request("POST", "/v1/clock/advance", {"to": to}))


def now(server):
    return ok(server.request("GET", "/v1/clock"))["now"]


class Usage:
    """Sends usage events with unique ids."""

    def __init__(self, server, tenant, prefix="e"):
        self.server, self.tenant, self.n, self.prefix = server, tenant, 0, prefix

    def _id(self):
        self.n += 1
        return "%s%d" % (self.prefix, self.n)

    def send(self, time, messages=0, mau=0, storage_bytes=0, mau_offset=0, api_calls=0):
        evs = []
        base = {"specversion": "1.0", "source": "/golden", "time": time, "tenant": self.tenant}
        if messages:
            evs.append(dict(base, id=self._id(), type="message.sent", data={"quantity": messages}))
        if api_calls:
            evs.append(dict(base, id=self._id(), type="api.called", data={"quantity": api_calls}))
        if storage_bytes:
            evs.append(dict(base, id=self._id(), type="media.stored", data={"bytes": storage_bytes}))
        for i in range(mau):
            evs.append(dict(base, id=self._id(), type="user.active",
                            subject="user-%d" % (mau_offset + i)))
        for k in range(0, len(evs), 10000):
            body = ok(self.server.request("POST", "/v1/events", json.dumps(evs[k:k + 10000]),
                                          content_type=BATCH))
            assert body["accepted"] == len(body["outcomes"]), body


def invoices(server, tenant):
    out, after = [], None
    while True:
        path = "/v1/invoices?limit=100&tenant=" + tenant + ("&starting_after=" + after if after else "")
        page = ok(server.request("GET", path))
        out += page["data"]
        if not page["has_more"]:
            return out
        after = page["next_starting_after"]


def summary(inv):
    lines = [[l["type"], l.get("metric"), l["quantity"], l["amount"]["amount_minor"]]
             for l in inv["lines"]]
    s = {"kind": inv["kind"], "status": inv["status"], "lines": lines,
         "tax": inv["tax"]["amount_minor"], "total": inv["total"]["amount_minor"]}
    if inv["period"]:
        s["period"] = [inv["period"]["start"], inv["period"]["end"]]
    return s


def check_invariants(inv):
    """What holds for every invoice, whatever the scenario."""
    total = sum(l["amount"]["amount_minor"] for l in inv["lines"])
    assert inv["subtotal"]["amount_minor"] == total
    assert inv["tax"]["amount_minor"] == sum(t["amount"]["amount_minor"] for t in inv["taxes"])
    assert inv["total"]["amount_minor"] == total + inv["tax"]["amount_minor"]
    assert inv["amount_due"]["amount_minor"] == max(0, inv["total"]["amount_minor"])
    for l in inv["lines"]:
        assert l["amount"]["currency"] == inv["currency"]
    if inv["status"] in ("finalized", "paid", "void", "uncollectible"):
        assert inv["number"] and inv["number"].startswith("INV-")
    else:
        assert inv["number"] is None


def run_scenario(server, sc):
    t = make_tenant(server, name=sc.get("tenant_name", "Golden GmbH"), **sc.get("tenant", {}))
    tid = t["id"]
    usage = Usage(server, tid)
    voided = []
    for step in sc["steps"]:
        if "at" in step and step["at"] > now(server):
            advance(server, step["at"])
        if "change" in step:
            ok(server.request("POST", "/v1/tenants/%s/subscription" % tid, step["change"]))
        if "cancel" in step:
            ok(server.request("POST", "/v1/tenants/%s/subscription/cancel" % tid, step["cancel"]))
        if "terms" in step:
            ok(server.request("POST", "/v1/tenants/%s/subscription/terms" % tid, step["terms"]))
        if "payment_method" in step:
            ok(server.request("POST", "/v1/tenants/%s/subscription/payment-method" % tid,
                              {"on_file": step["payment_method"]}))
        if "usage" in step:
            u = dict(step["usage"])
            when = u.pop("time", step.get("at") or now(server))
            if when > now(server):  # events from the future are refused
                advance(server, when)
            usage.send(when, **u)
        if "void" in step:
            inv = invoices(server, tid)[step["void"]]
            voided.append(ok(server.request("POST", "/v1/invoices/%s/void" % inv["id"],
                                            {"reason": "golden"})))
    got = invoices(server, tid)
    for inv in got:
        check_invariants(inv)
        assert inv["currency"] == sc.get("tenant", {}).get("currency", "USD")
    assert [summary(i) for i in got] == sc["invoices"], json.dumps([summary(i) for i in got],
                                                                    indent=1)
    return tid, got


@pytest.mark.parametrize("path", SCENARIOS, ids=[os.path.basename(p)[:-5] for p in SCENARIOS])
def test_golden_scenario(tmp_path, path):
    with open(path) as f:
        sc = json.load(f)
    s = manual_server(tmp_path, sc["start"], sc.get("env"))
    try:
        run_scenario(s, sc)
        # A restart changes nothing about what was invoiced.
        before = invoices(s, ok(s.request("GET", "/v1/tenants?limit=1"))["data"][0]["id"])
        s.stop()
        s.start()
        after = invoices(s, before[0]["tenant"]) if before else []
        assert after == before
    finally:
        s.stop()


@pytest.fixture
def clock_server(tmp_path):
    s = manual_server(tmp_path / "clock", "2026-03-01T00:00:00Z",
                      {"CAAS_BILLING_ISSUER_NAME": "Chat Cloud Ltd",
                       "CAAS_BILLING_ISSUER_ADDRESS": "1 Main St|Dublin D01|IE",
                       "CAAS_BILLING_ISSUER_TAX_ID": "IE1234567X"})
    yield s
    s.stop()


def pro_with_march_usage(s, **tenant):
    t = make_tenant(s, **tenant)["id"]
    ok(s.request("POST", "/v1/tenants/%s/subscription" % t, {"plan": "pro"}))
    Usage(s, t).send("2026-03-01T00:00:00Z", messages=150000, mau=12345, storage_bytes=3200000000)
    return t


def test_reverse_charge_prints_both_vat_ids_and_the_note(clock_server):
    s = clock_server
    t = make_tenant(s, tax_mode="reverse_charge", tax_id="DE123456789",
                    address={"line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115",
                             "country": "DE"})["id"]
    ok(s.request("POST", "/v1/tenants/%s/subscription" % t, {"plan": "pro"}))
    inv = invoices(s, t)[0]
    assert inv["tax_note"] == "Reverse charge: VAT liability shifted to the customer"
    assert inv["issuer"] == {"name": "Chat Cloud Ltd", "address": ["1 Main St", "Dublin D01", "IE"],
                             "tax_id": "IE1234567X", "email": ""}
    assert inv["customer"]["tax_id"] == "DE123456789"
    assert inv["customer"]["address"] == ["Hauptstr. 1", "10115 Berlin", "DE"]
    assert [t["description"] for t in inv["taxes"]] == ["Reverse charge"]
    # Reverse charge needs the customer's VAT id; only admins set tax.
    assert_problem(s.request("POST", "/v1/tenants", {"name": "X", "billing_email": "x@x.example",
                                                     "tax_mode": "reverse_charge"}), 400, "tax_id")
    assert_problem(s.request("POST", "/v1/tenants", {"name": "X", "billing_email": "x@x.example",
                                                     "tax_rate": "101"}), 400, "tax_rate")
    assert_problem(s.request("POST", "/v1/tenants", {"name": "X", "billing_email": "x@x.example",
                                                     "tax_rate": "19.12345"}), 400, "tax_rate")


def test_void_issues_a_credit_note_of_exactly_what_was_charged(clock_server):
    s = clock_server
    t = pro_with_march_usage(s, tax_rate="19")
    advance(s, "2026-04-01T02:00:00Z")
    march = invoices(s, t)[1]
    assert march["status"] == "finalized" and march["total"]["amount_minor"] == 15205  # 12777 + 19%
    # A draft cannot be voided, a finalized one can, once.
    v = ok(s.request("POST", "/v1/invoices/%s/void" % march["id"], {"reason": "wrong address"}))
    assert v["status"] == "void" and v["credit_note"].startswith("cn_")
    again = ok(s.request("POST", "/v1/invoices/%s/void" % march["id"]))
    assert again["credit_note"] == v["credit_note"]
    cn = ok(s.request("GET", "/v1/credit_notes/" + v["credit_note"]))
    assert cn["object"] == "credit_note" and cn["number"] == "CN-2026-000001"
    assert cn["credits"] == march["id"]
    assert cn["total"]["amount_minor"] == -15205
    assert [l["amount"]["amount_minor"] for l in cn["lines"]] == \
        [-l["amount"]["amount_minor"] for l in march["lines"]]
    assert ok(s.request("GET", "/v1/credit_notes?tenant=" + t))["data"][0]["id"] == cn["id"]
    # The invoice's figures and number did not change.
    after = ok(s.request("GET", "/v1/invoices/" + march["id"]))
    for k in ("number", "lines", "taxes", "total", "subtotal"):
        assert after[k] == march[k]
    events = ok(s.request("GET", "/v1/tenants/%s/billing-events?limit=100" % t))["data"]
    types = [e["type"] for e in events]
    assert types.count("invoice.created") == 2 and types.count("invoice.finalized") == 2
    assert types.count("invoice.voided") == 1 and types.count("credit_note.issued") == 1


def test_drafts_wait_for_late_events_then_finalize(clock_server):
    s = clock_server
    t = pro_with_march_usage(s)
    advance(s, "2026-04-01T00:10:00Z")
    draft = invoices(s, t)[1]
    assert draft["status"] == "draft" and draft["number"] is None
    assert_problem(s.request("POST", "/v1/invoices/%s/void" % draft["id"]), 409)
    # 50,000 more messages for March arrive within the grace hour.
    Usage(s, t, prefix="late").send("2026-03-31T23:00:00Z", messages=50000)
    advance(s, "2026-04-01T01:00:00Z")
    final = ok(s.request("GET", "/v1/invoices/" + draft["id"]))
    assert final["status"] == "finalized" and final["number"] == "INV-2026-000002"
    assert final["total"]["amount_minor"] == 12777 + 500


def test_tenant_keys_see_only_their_own_invoices(clock_server):
    s = clock_server
    a = pro_with_march_usage(s)
    b = make_tenant(s, name="Other")["id"]
    key = ok(s.request("POST", "/v1/tenants/%s/api_keys" % a, {}), 201)["secret"]
    mine = ok(s.request("GET", "/v1/invoices", key=key))["data"]
    assert mine and {i["tenant"] for i in mine} == {a}
    assert ok(s.request("GET", "/v1/invoices?tenant=" + b, key=key))["data"] == []
    advance(s, "2026-04-01T02:00:00Z")
    theirs = invoices(s, b)[0]
    assert_problem(s.request("GET", "/v1/invoices/" + theirs["id"], key=key), 404)
    assert_problem(s.request("GET", "/v1/tenants/%s/invoices/upcoming" % b, key=key), 404)
    assert_problem(s.request("POST", "/v1/invoices/%s/void" % mine[0]["id"], key=key), 403)
    assert_problem(s.request("POST", "/v1/invoices/close", {}, key=key), 403)


def test_upcoming_and_the_figures_behind_a_line(clock_server):
    s = clock_server
    t = pro_with_march_usage(s)
    advance(s, "2026-03-20T00:00:00Z")
    up = ok(s.request("GET", "/v1/tenants/%s/invoices/upcoming" % t))
    assert up["object"] == "upcoming_invoice" and up["id"] is None and up["number"] is None
    assert up["period"] == {"start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"}
    assert [(l["type"], l["amount"]["amount_minor"]) for l in up["lines"]] == \
        [("base_fee", 9900), ("usage", 500), ("usage", 2345), ("usage", 20)]  # 3.2 GB x 19/31
    assert invoices(s, t)[-1]["kind"] == "change"  # nothing was written
    advance(s, "2026-04-01T02:00:00Z")
    inv = invoices(s, t)[1]
    mau_line = [i for i, l in enumerate(inv["lines"]) if l.get("metric") == "mau"][0]
    u = ok(s.request("GET", "/v1/invoices/%s/lines/%d/usage" % (inv["id"], mau_line)))
    assert u["metric"] == "mau" and u["quantity"] == "2345" and u["unit_price"] == "0.01"
    assert u["slices"][0]["included"] == "10000" and u["slices"][0]["used"] == "12345"
    assert u["slices"][0]["billable_now"] == "2345"
    assert u["days"][0] == {"date": "2026-03-01", "active_users": 12345}
    assert len(u["days"]) == 31
    assert_problem(s.request("GET", "/v1/invoices/%s/lines/0/usage" % inv["id"]), 400, "n")
    assert_problem(s.request("GET", "/v1/invoices/%s/lines/99/usage" % inv["id"]), 404)
    assert_problem(s.request("GET", "/v1/invoices/in_01KN00000000000000000000XX"), 404)
    assert_problem(s.request("GET", "/v1/invoices/nope"), 400, "id")
    assert_problem(s.request("GET", "/v1/invoices?status=paidish"), 400, "status")
    assert_problem(s.request("GET", "/v1/invoices?period=yesterday"), 400, "period")
    assert [i["id"] for i in ok(s.request("GET", "/v1/invoices?tenant=%s&period=2026-03-15T00:00:00Z"
                                          % t))["data"]] == [inv["id"]]
    assert_problem(s.request("POST", "/v1/invoices/close", {"at": "2030-01-01T00:00:00Z"}), 400, "at")


def test_the_cli_lists_shows_and_closes(clock_server):
    import subprocess
    from conftest import BIN
    s = clock_server
    t = pro_with_march_usage(s)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAAS_BILLING_")}
    env.update({"CAAS_BILLING_URL": "http://127.0.0.1:%d" % s.port,
                "CAAS_BILLING_API_KEY": s.admin_key})

    def cli(*args):
        r = subprocess.run([BIN, "invoices", *args], capture_output=True, text=True, env=env,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    # The period ends; the server's clock moved, the CLI closes on demand
    # (the scheduler would have as well), and twice makes nothing new.
    ok(s.request("POST", "/v1/clock/advance", {"to": "2026-04-01T00:00:00Z"}))
    out = cli("close", "--tenant", t)
    assert "nothing to close" in out or "(draft)" in out
    assert "nothing to close" in cli("close", "--tenant", t)
    advance(s, "2026-04-01T02:00:00Z")
    listed = cli("list", "--tenant", t)
    assert "INV-2026-000001" in listed and "INV-2026-000002" in listed and "USD 127.77" in listed
    inv = invoices(s, t)[1]
    shown = cli("show", inv["id"])
    assert "Monthly active users beyond 10,000 included" in shown and "USD 23.45" in shown
    assert "USD 127.77" in shown


def test_a_plan_without_a_price_in_the_tenants_currency_is_refused(clock_server):
    s = clock_server
    t = make_tenant(s, currency="JPY")["id"]
    body = assert_problem(s.request("POST", "/v1/tenants/%s/subscription" % t, {"plan": "pro"}),
                          400, "plan")
    assert "no price in JPY" in body["detail"] and "USD, EUR" in body["detail"]
    # Free charges nothing, so it needs no price: the tenant stays on it, and
    # its currency is fixed.
    assert ok(s.request("GET", "/v1/tenants/%s/subscription" % t))["subscription"]["plan"] == "free"
    assert_problem(s.request("PATCH", "/v1/tenants/" + t, {"currency": "USD"}), 400, "currency")
