"""Card payments through Stripe, end to end over HTTP on a manual clock,
against the stateful fake Stripe in tests/fake_stripe/ (started here: a fake
that does not start fails the test). The fake signs its webhooks with the
service's clock (the test tells it the offset)."""
import calendar
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import assert_problem, make_tenant
from test_invoices import advance, manual_server, ok

SECRET_KEY = "sk_test_caas_e2e_" + "s" * 24
WEBHOOK_SECRET = "whsec_e2e_" + "w" * 24


class FakeStripe:
    def __init__(self, tmp_path):
        port_file = tmp_path / "fake-stripe.port"
        script = os.path.join(os.environ["CAAS_REPO"], "tests", "fake_stripe", "server.py")
        self.proc = subprocess.Popen([sys.executable, script, "--port-file", str(port_file)],
                                     stdout=subprocess.DEVNULL)
        deadline = time.time() + 30
        while not port_file.exists():
            assert self.proc.poll() is None, "the fake Stripe exited"
            assert time.time() < deadline, "the fake Stripe did not start"
            time.sleep(0.05)
        self.base = "http://127.0.0.1:%s" % port_file.read_text().strip()

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def state(self):
        return self.call("GET", "/_fake/state")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def unix(rfc3339):
    return calendar.timegm(time.strptime(rfc3339[:19], "%Y-%m-%dT%H:%M:%S"))


def sync_clock(s, fake):
    """The fake signs with the service's (manual) now."""
    now = ok(s.request("GET", "/v1/clock"))["now"]
    fake.call("POST", "/_fake/config", {"clock_offset": unix(now) - int(time.time())})


def wait_for(what, check, timeout=20):
    deadline = time.time() + timeout
    while True:
        v = check()
        if v:
            return v
        assert time.time() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


@pytest.fixture
def stripe(tmp_path):
    fake = FakeStripe(tmp_path)
    s = manual_server(tmp_path / "svc", "2026-03-01T00:00:00Z", {
        "CAAS_BILLING_STRIPE_SECRET_KEY": SECRET_KEY,
        "CAAS_BILLING_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CAAS_BILLING_STRIPE_API_BASE": fake.base,
        "CAAS_BILLING_STRIPE_TIMEOUT_MS": "500",
        "CAAS_BILLING_LOG_LEVEL": "debug"})
    fake.call("POST", "/_fake/config", {"url": "http://127.0.0.1:%d/v1/webhooks/stripe" % s.port,
                                        "secret": WEBHOOK_SECRET})
    sync_clock(s, fake)
    yield s, fake
    s.stop()
    fake.stop()


def save_card(s, fake, tenant, test_pm):
    """The Admin Portal's flow: a SetupIntent's client secret to the browser,
    which confirms the card with Stripe; the webhook makes it the default."""
    setup = ok(s.request("POST", "/v1/tenants/%s/payment-methods/setup" % tenant), 201)
    assert setup["customer"].startswith("cus_")
    secret = setup["client_secret"]
    assert "_secret_" in secret
    fake.call("POST", "/_fake/confirm_setup_intent",
              {"setup_intent": secret.split("_secret_")[0], "payment_method": test_pm})
    cards = wait_for("the default card", lambda: (lambda c: c if c["default_payment_method"] else None)(
        ok(s.request("GET", "/v1/tenants/%s/payment-methods" % tenant))))
    return secret, cards


def events_of(s, tenant):
    return ok(s.request("GET", "/v1/tenants/%s/billing-events?limit=100" % tenant))["data"]


def test_a_saved_card_pays_the_upgrade_invoice_once_whatever_the_webhooks_do(stripe, tmp_path):
    s, fake = stripe
    t = make_tenant(s)["id"]
    client_secret, cards = save_card(s, fake, t, "pm_card_visa")
    assert len(cards["data"]) == 1
    card = cards["data"][0]
    assert card["default"] is True and card["id"] == cards["default_payment_method"]
    assert (card["brand"], card["last4"], card["exp_year"]) == ("visa", "4242", 2034)
    assert set(card) == {"id", "object", "brand", "last4", "exp_month", "exp_year",
                         "fingerprint", "default"}  # never more than this
    # Free -> Pro is invoiced at once, and charged off-session by a job.
    ok(s.request("POST", "/v1/tenants/%s/subscription" % t, {"plan": "pro"}))
    advance(s, "2026-03-01T00:01:00Z")
    sync_clock(s, fake)
    inv = wait_for("the invoice paid", lambda: (lambda i: i if i["status"] == "paid" else None)(
        ok(s.request("GET", "/v1/invoices?tenant=" + t))["data"][0]))
    assert inv["amount_paid"]["amount_minor"] == inv["amount_due"]["amount_minor"] > 0
    assert len(inv["payments"]) == 1
    pay = inv["payments"][0]
    assert pay["method"] == "card" and pay["reference"].startswith("pi_")
    attempts = ok(s.request("GET", "/v1/invoices/%s/payment-attempts" % inv["id"]))["data"]
    assert [(a["attempt"], a["status"], a["payment_intent"]) for a in attempts] == \
        [(1, "succeeded", pay["reference"])]
    st = fake.state()
    assert st["charges_per_invoice"] == {inv["id"]: 1}
    assert st["charges"][0]["amount"] == inv["amount_due"]["amount_minor"]
    # Stripe's payment_intent.succeeded arrives too; then every event again,
    # three times each, shuffled: one payment, the same card.
    wait_for("the webhooks", lambda: fake.state()["outbox"] == 0)
    fake.call("POST", "/_fake/redeliver", {"times": 3, "seed": 7})
    wait_for("the redeliveries", lambda: fake.state()["outbox"] == 0)
    after = ok(s.request("GET", "/v1/invoices/" + inv["id"]))
    assert after["status"] == "paid" and len(after["payments"]) == 1
    assert ok(s.request("GET", "/v1/tenants/%s/payment-methods" % t))["default_payment_method"] == \
        card["id"]
    assert fake.state()["webhook"]["failures"] == 0
    kinds = [e["type"] for e in events_of(s, t)]
    assert kinds.count("payment.succeeded") == 1 and kinds.count("invoice.paid") == 1
    # No secret anywhere: not the API key, not the webhook secret, not the
    # SetupIntent's client secret; not in the log, not in the data files.
    secrets = [SECRET_KEY, WEBHOOK_SECRET, client_secret]
    log = s.logs()
    assert "invoice_charged" in log
    for sec in secrets:
        assert sec not in log
    for root, _, files in os.walk(s.data_dir):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                blob = fh.read()
            for sec in secrets:
                assert sec.encode() not in blob, (f, sec)


def test_a_decline_is_recorded_and_a_manual_payment_settles_the_invoice(stripe):
    s, fake = stripe
    t = make_tenant(s)["id"]
    save_card(s, fake, t, "pm_card_visa_chargeDeclinedInsufficientFunds")
    ok(s.request("POST", "/v1/tenants/%s/subscription" % t, {"plan": "pro"}))
    advance(s, "2026-03-01T00:01:00Z")
    inv = ok(s.request("GET", "/v1/invoices?tenant=" + t))["data"][0]
    attempts = wait_for("the failed attempt", lambda: [
        a for a in ok(s.request("GET", "/v1/invoices/%s/payment-attempts" % inv["id"]))["data"]
        if a["status"] == "failed"])
    a = attempts[0]
    assert (a["code"], a["decline_code"], a["advice_code"]) == \
        ("card_declined", "insufficient_funds", "try_again_later")
    assert ok(s.request("GET", "/v1/invoices/" + inv["id"]))["status"] == "finalized"
    # The event follows the attempt's write (published right after it).
    failed = wait_for("payment.failed", lambda: [
        e for e in events_of(s, t) if e["type"] == "payment.failed"])
    assert len(failed) == 1 and failed[0]["data"]["decline_code"] == "insufficient_funds"
    assert fake.state()["charges_per_invoice"] == {}
    # The webhook of the same failure, again and shuffled, changes nothing.
    wait_for("the webhooks", lambda: fake.state()["outbox"] == 0)
    fake.call("POST", "/_fake/redeliver", {"times": 2, "seed": 3})
    wait_for("the redeliveries", lambda: fake.state()["outbox"] == 0)
    assert len([e for e in events_of(s, t) if e["type"] == "payment.failed"]) == 1
    # A bank transfer settles it.
    due = inv["amount_due"]["amount_minor"]
    paid = ok(s.request("POST", "/v1/invoices/%s/payments" % inv["id"],
                        {"amount": "%d.%02d" % (due // 100, due % 100), "method": "bank_transfer",
                         "reference": "SEPA-1"}), 201)
    assert paid["status"] == "paid"


def test_forged_stale_altered_and_unsigned_webhooks_are_refused_and_change_nothing(stripe):
    s, fake = stripe
    import hashlib
    import hmac
    now = unix(ok(s.request("GET", "/v1/clock"))["now"])
    body = json.dumps({"id": "evt_forged", "object": "event", "type": "payment_intent.succeeded",
                       "data": {"object": {"id": "pi_x", "status": "succeeded",
                                           "metadata": {"invoice_id": "in_x", "attempt": "1"}}}})

    def signed(secret, t, payload):
        mac = hmac.new(secret.encode(), ("%d." % t).encode() + payload.encode(), hashlib.sha256)
        return "t=%d,v1=%s" % (t, mac.hexdigest())

    def post(headers, payload=body):
        return s.request("POST", "/v1/webhooks/stripe", payload, key=None, headers=headers)

    assert_problem(post({}), 400, field="Stripe-Signature")
    assert_problem(post({"Stripe-Signature": signed("whsec_forged", now, body)}), 400,
                   field="Stripe-Signature")
    assert_problem(post({"Stripe-Signature": signed(WEBHOOK_SECRET, now - 301, body)}), 400,
                   field="Stripe-Signature")
    assert_problem(post({"Stripe-Signature": signed(WEBHOOK_SECRET, now, body)}, body + " "), 400,
                   field="Stripe-Signature")
    v0 = signed(WEBHOOK_SECRET, now, body).replace("v1=", "v0=")
    assert_problem(post({"Stripe-Signature": v0}), 400, field="Stripe-Signature")
    # The genuine one is taken once; the same event again is a duplicate.
    good = {"Stripe-Signature": signed(WEBHOOK_SECRET, now, body)}
    assert ok(post(good))["duplicate"] is False
    assert ok(post(good))["duplicate"] is True


def test_without_a_stripe_key_cards_are_refused_with_a_clear_problem(tmp_path):
    s = manual_server(tmp_path / "manual", "2026-03-01T00:00:00Z")
    t = make_tenant(s)["id"]
    r = s.request("POST", "/v1/tenants/%s/payment-methods/setup" % t)
    assert_problem(r, 409)
    assert "bank transfer" in r[2]["detail"]
    assert_problem(s.request("POST", "/v1/webhooks/stripe", {"id": "evt_1"}, key=None), 409)
    s.stop()


def node_stripe(mode, arg):
    """Stripe's official Node library (npm `stripe`, installed by scripts/test)."""
    modules = os.environ.get("CAAS_NODE_MODULES", "")
    assert modules and os.path.isdir(os.path.join(modules, "stripe")), \
        "CAAS_NODE_MODULES must point at node_modules with the npm stripe package (scripts/test)"
    script = os.path.join(os.environ["CAAS_REPO"], "tests", "npm", "webhook_check.js")
    return subprocess.run(["node", script, mode, json.dumps(arg)], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, NODE_PATH=modules))


def test_signatures_agree_with_stripes_node_library(stripe):
    s, _ = stripe
    now = unix(ok(s.request("GET", "/v1/clock"))["now"])
    body = json.dumps({"id": "evt_node_1", "object": "event", "type": "customer.updated",
                       "data": {"object": {"id": "cus_1"}}})
    # stripe-node signs; the service verifies.
    made = node_stripe("sign", {"payload": body, "secret": WEBHOOK_SECRET, "timestamp": now})
    assert made.returncode == 0, made.stderr
    r = ok(s.request("POST", "/v1/webhooks/stripe", body, key=None,
                     headers={"Stripe-Signature": made.stdout}))
    assert r["id"] == "evt_node_1" and r["duplicate"] is False
    other = node_stripe("sign", {"payload": body, "secret": "whsec_other", "timestamp": now})
    assert_problem(s.request("POST", "/v1/webhooks/stripe", body, key=None,
                             headers={"Stripe-Signature": other.stdout}), 400,
                   field="Stripe-Signature")
    # The fake signs as Stripe does: stripe-node's constructEvent accepts it.
    sys.path.insert(0, os.path.join(os.environ["CAAS_REPO"], "tests", "fake_stripe"))
    import server as fake_server
    header = fake_server.sign(WEBHOOK_SECRET, int(time.time()), body.encode())
    v = node_stripe("verify", {"payload": body, "header": header, "secret": WEBHOOK_SECRET})
    assert v.returncode == 0 and v.stdout == "evt_node_1", v.stderr
    bad = node_stripe("verify", {"payload": body + " ", "header": header, "secret": WEBHOOK_SECRET})
    assert bad.returncode == 1


def test_faults_around_charges_never_charge_twice_and_every_invoice_is_settled(stripe):
    """Randomized (seed printed): each charge meets a timeout after Stripe
    charged, a dropped connection, a 500, a lock_timeout, or nothing; the
    client retries under the same key, an unknown outcome is settled by the
    job's next run. Every invoice ends paid by exactly one charge."""
    import random
    s, fake = stripe
    seed = int(os.environ.get("CAAS_TEST_SEED", "20261201"))
    rng = random.Random(seed)
    kinds = [{"kind": "timeout_after_success", "seconds": 1}, {"kind": "drop"},
             {"kind": "status", "status": 500}, {"kind": "rate_limit", "code": "lock_timeout"}, None]
    tenants = []
    for i in range(30):
        t = make_tenant(s, name="F%d" % i, email="f%d@x.example" % i)["id"]
        save_card(s, fake, t, "pm_card_visa")
        tenants.append(t)
    faults = []
    for _ in range(len(tenants) * 2):
        f = rng.choice(kinds)
        if f:
            faults.append(dict(f, path="/v1/payment_intents"))
    fake.call("POST", "/_fake/faults", faults)
    for t in tenants:
        ok(s.request("POST", "/v1/tenants/%s/subscription" % t, {"plan": "pro"}))
    invs = {t: ok(s.request("GET", "/v1/invoices?tenant=" + t))["data"][0]["id"] for t in tenants}
    minute = 1
    while True:
        advance(s, "2026-03-01T%02d:%02d:00Z" % (minute // 60, minute % 60))
        sync_clock(s, fake)
        paid = [ok(s.request("GET", "/v1/invoices/" + i))["status"] == "paid" for i in invs.values()]
        if all(paid):
            break
        assert minute < 180, "seed %d: %d invoices still unpaid" % (seed, paid.count(False))
        minute += 5
    st = fake.state()
    assert len(faults) - st["faults_left"] >= 10, "seed %d: too few faults met" % seed
    assert st["charges_per_invoice"] == {i: 1 for i in invs.values()}, "seed %d" % seed
    for i in invs.values():
        inv = ok(s.request("GET", "/v1/invoices/" + i))
        assert len(inv["payments"]) == 1, ("seed %d" % seed, inv)
        attempts = ok(s.request("GET", "/v1/invoices/%s/payment-attempts" % i))["data"]
        assert [a["status"] for a in attempts] == ["succeeded"], ("seed %d" % seed, attempts)


def test_kill_9_between_a_charge_and_its_recording_charges_once(stripe):
    """Stripe charged, the answer is late, and the process dies waiting for
    it. After the restart the job runs again under the same key: one charge,
    recorded once."""
    import signal
    import threading
    s, fake = stripe
    t = make_tenant(s)["id"]
    save_card(s, fake, t, "pm_card_visa")
    ok(s.request("POST", "/v1/tenants/%s/subscription" % t, {"plan": "pro"}))
    inv = ok(s.request("GET", "/v1/invoices?tenant=" + t))["data"][0]["id"]
    # Stripe charges, its answer is late, and the client's retries are
    # dropped: the charge stays unknown to the service however slow the kill.
    fake.call("POST", "/_fake/faults",
              [{"path": "/v1/payment_intents", "kind": "timeout_after_success", "seconds": 5},
               {"path": "/v1/payment_intents", "kind": "drop"},
               {"path": "/v1/payment_intents", "kind": "drop"}])
    # No webhooks for now: the job alone must settle it.
    fake.call("POST", "/_fake/config", {"url": ""})

    def run():
        try:
            s.request("POST", "/v1/clock/advance", {"to": "2026-03-01T00:01:00Z"})
        except OSError:
            pass

    threading.Thread(target=run, daemon=True).start()
    wait_for("the charge at Stripe", lambda: fake.state()["charges_per_invoice"].get(inv))
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait()
    s.stop(sig=signal.SIGKILL, check=False)
    s.start()
    # Not recorded: the process died before the answer.
    assert ok(s.request("GET", "/v1/invoices/" + inv))["status"] == "finalized"
    attempts = ok(s.request("GET", "/v1/invoices/%s/payment-attempts" % inv))["data"]
    assert [a["status"] for a in attempts] == ["open"]
    # The clock moves on: the job's lease expires (or its backoff ends) and it
    # runs again under the same key (faults left over are met and retried).
    for minute in range(5, 120, 5):
        advance(s, "2026-03-01T%02d:%02d:00Z" % (minute // 60, minute % 60))
        paid = ok(s.request("GET", "/v1/invoices/" + inv))
        if paid["status"] == "paid":
            break
    assert paid["status"] == "paid", paid
    assert len(paid["payments"]) == 1
    assert fake.state()["charges_per_invoice"] == {inv: 1}
    # The webhooks arrive late, twice each: nothing changes.
    # (The restarted server listens on a new port.)
    fake.call("POST", "/_fake/config", {"url": "http://127.0.0.1:%d/v1/webhooks/stripe" % s.port})
    sync_clock(s, fake)
    before = fake.state()["webhook"]
    fake.call("POST", "/_fake/redeliver", {"times": 2})
    wait_for("the redeliveries", lambda: fake.state()["outbox"] == 0)
    after = fake.state()["webhook"]
    assert after["deliveries"] > before["deliveries"]
    assert after["failures"] == before["failures"]  # taken (as duplicates), not refused
    assert ok(s.request("GET", "/v1/invoices/" + inv)) == paid
