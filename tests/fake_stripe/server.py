#!/usr/bin/env python3
"""A stateful fake of the parts of Stripe's API v1 that caas-billing calls.

Written from Stripe's documentation (see ../../../shared/reference/stripe.md
and docs.stripe.com): form-encoded requests with bracketed names, Bearer
authentication, idempotency keys (a replay answers the first answer with
`Idempotent-Replayed: true`; the same key with other parameters is an
`idempotency_error`; the same key in flight is a 409
`idempotency_key_in_use`), Stripe's error bodies, and the documented
behaviour of the `pm_card_*` test payment methods.

Endpoints: customers (create, retrieve), setup_intents (create), payment
methods (attach, detach, list), payment_intents (create, retrieve),
refunds (create).

Faults for tests, queued with POST /_fake/faults (JSON list; each fault
applies once, to the next request whose path starts with `path`):
  {"path": "/v1/payment_intents", "kind": "status", "status": 500}
  {"path": ..., "kind": "rate_limit", "code": "lock_timeout" | "rate_limit"}
  {"path": ..., "kind": "drop"}                 close without answering, before any work
  {"path": ..., "kind": "timeout_after_success", "seconds": 2}
                                                do the work, record it, then stall
GET /_fake/state answers what happened: charges per invoice, requests.

Usage: server.py [--port N] [--port-file FILE]   (port 0: any free port)
"""
import argparse
import base64
import hashlib
import hmac
import random
import urllib.request
import json
import secrets
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.RLock()
STATE = {
    "customers": {},
    "payment_methods": {},
    "setup_intents": {},
    "payment_intents": {},
    "refunds": {},
    "idempotency": {},  # key -> {"fingerprint", "status", "body"} or {"in_flight": True}
    "faults": [],
    "requests": 0,
    "charges": [],  # every successful charge: {"payment_intent", "invoice_id", "amount"}
    "events": [],  # every event made, in order
    "webhook": {"url": None, "secret": None, "clock_offset": 0, "deliveries": 0, "failures": 0},
}
OUTBOX = []  # events waiting for delivery
OUTBOX_CV = threading.Condition(LOCK)


def sign(secret, t, body):
    mac = hmac.new(secret.encode(), ("%d." % t).encode() + body, hashlib.sha256).hexdigest()
    return "t=%d,v1=%s" % (t, mac)


def emit(type_, obj):
    """Makes an event (a snapshot of the object) and queues its delivery."""
    ev = {"id": new_id("evt"), "object": "event", "type": type_, "api_version": "2026-07-29.dahlia",
          "created": now(), "livemode": False, "pending_webhooks": 1,
          "data": {"object": json.loads(json.dumps(obj))}}
    STATE["events"].append(ev)
    OUTBOX.append(ev)
    OUTBOX_CV.notify()


def deliver(ev):
    """One delivery, signed as Stripe signs, on the clock the test set."""
    with LOCK:
        hook = dict(STATE["webhook"])
    if not hook["url"] or not hook["secret"]:
        return False
    body = json.dumps(ev).encode()
    t = now() + int(hook["clock_offset"])
    req = urllib.request.Request(hook["url"], data=body, method="POST", headers={
        "Content-Type": "application/json", "Stripe-Signature": sign(hook["secret"], t, body)})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            ok = 200 <= r.status < 300
    except Exception:
        ok = False
    with LOCK:
        STATE["webhook"]["deliveries"] += 1
        if not ok:
            STATE["webhook"]["failures"] += 1
    return ok


def delivery_loop():
    while True:
        with LOCK:
            while not OUTBOX:
                OUTBOX_CV.wait()
            ev = OUTBOX.pop(0)
        for attempt in range(3):  # a sandbox retries a few times
            if deliver(ev):
                break
            time.sleep(0.2 * (attempt + 1))

# The documented test payment methods: what an off-session charge does.
TEST_CARDS = {
    "pm_card_visa": ("visa", "4242", None),
    "pm_card_mastercard": ("mastercard", "4444", None),
    "pm_card_chargeDeclined": ("visa", "0002", ("card_declined", "generic_decline")),
    "pm_card_visa_chargeDeclined": ("visa", "0002", ("card_declined", "generic_decline")),
    "pm_card_visa_chargeDeclinedInsufficientFunds": ("visa", "9995", ("card_declined", "insufficient_funds")),
    "pm_card_visa_chargeDeclinedLostCard": ("visa", "9987", ("card_declined", "lost_card")),
    "pm_card_visa_chargeDeclinedStolenCard": ("visa", "9979", ("card_declined", "stolen_card")),
    "pm_card_chargeDeclinedExpiredCard": ("visa", "0069", ("expired_card", "expired_card")),
    "pm_card_chargeDeclinedIncorrectCvc": ("visa", "0127", ("incorrect_cvc", "incorrect_cvc")),
    "pm_card_chargeDeclinedProcessingError": ("visa", "0119", ("processing_error", "processing_error")),
    "pm_card_chargeCustomerFail": ("visa", "0341", ("card_declined", "generic_decline")),
    "pm_card_authenticationRequired": ("visa", "3184", ("authentication_required", None)),
    "pm_card_authenticationRequiredOnSetup": ("visa", "3155", None),
}

ADVICE = {"lost_card": "do_not_try_again", "stolen_card": "do_not_try_again",
          "expired_card": "confirm_card_data", "incorrect_cvc": "confirm_card_data",
          "insufficient_funds": "try_again_later", "generic_decline": "try_again_later"}


def new_id(prefix):
    return prefix + "_" + secrets.token_hex(12)


def now():
    return int(time.time())


def error(status, type_, message, code=None, decline_code=None, param=None, extra=None):
    e = {"type": type_, "message": message}
    if code:
        e["code"] = code
        e["doc_url"] = "https://stripe.com/docs/error-codes/" + code.replace("_", "-")
    if decline_code:
        e["decline_code"] = decline_code
    if param:
        e["param"] = param
    if extra:
        e.update(extra)
    return status, {"error": e}


def nested(form, name):
    """metadata[a]=1&metadata[b]=2 -> {"a": "1", "b": "2"}"""
    out = {}
    prefix = name + "["
    for k, v in form.items():
        if k.startswith(prefix) and k.endswith("]"):
            out[k[len(prefix):-1]] = v
    return out


def require(form, *names):
    for n in names:
        if not form.get(n):
            return error(400, "invalid_request_error", "Missing required param: %s." % n, "parameter_missing", param=n)
    return None


def pm_object(pm):
    return {"id": pm["id"], "object": "payment_method", "type": "card", "customer": pm["customer"],
            "card": {"brand": pm["brand"], "last4": pm["last4"], "exp_month": 12, "exp_year": 2034,
                     "fingerprint": hashlib.sha256(pm["test_id"].encode()).hexdigest()[:16]},
            "created": pm["created"], "livemode": False}


def resolve_pm(pm_id, customer=None):
    """A test id (pm_card_visa) becomes a new PaymentMethod, as in Stripe's test mode."""
    if pm_id in STATE["payment_methods"]:
        return STATE["payment_methods"][pm_id]
    if pm_id in TEST_CARDS:
        brand, last4, _ = TEST_CARDS[pm_id]
        pm = {"id": new_id("pm"), "test_id": pm_id, "brand": brand, "last4": last4,
              "customer": customer, "created": now()}
        STATE["payment_methods"][pm["id"]] = pm
        return pm
    return None


def create_customer(form):
    c = {"id": new_id("cus"), "object": "customer", "email": form.get("email"), "name": form.get("name"),
         "metadata": nested(form, "metadata"), "created": now(), "livemode": False,
         "invoice_settings": {"default_payment_method": None}}
    STATE["customers"][c["id"]] = c
    return 200, c


def create_setup_intent(form):
    bad = require(form, "customer")
    if bad:
        return bad
    if form["customer"] not in STATE["customers"]:
        return error(400, "invalid_request_error", "No such customer: '%s'" % form["customer"], "resource_missing", param="customer")
    si = {"id": new_id("seti"), "object": "setup_intent", "customer": form["customer"],
          "usage": form.get("usage", "off_session"), "status": "requires_payment_method",
          "metadata": nested(form, "metadata"), "created": now(), "livemode": False}
    si["client_secret"] = si["id"] + "_secret_" + secrets.token_hex(12)
    STATE["setup_intents"][si["id"]] = si
    return 200, si


def attach(pm_id, form):
    bad = require(form, "customer")
    if bad:
        return bad
    if form["customer"] not in STATE["customers"]:
        return error(400, "invalid_request_error", "No such customer: '%s'" % form["customer"], "resource_missing", param="customer")
    pm = resolve_pm(pm_id, form["customer"])
    if pm is None:
        return error(404, "invalid_request_error", "No such PaymentMethod: '%s'" % pm_id, "resource_missing", param="payment_method")
    pm["customer"] = form["customer"]
    return 200, pm_object(pm)


def detach(pm_id):
    pm = STATE["payment_methods"].get(pm_id)
    if pm is None:
        return error(404, "invalid_request_error", "No such PaymentMethod: '%s'" % pm_id, "resource_missing")
    if pm["customer"] is None:
        return error(400, "invalid_request_error", "The payment method you provided is not attached to a customer so detachment is impossible.")
    pm["customer"] = None
    emit("payment_method.detached", pm_object(pm))
    return 200, pm_object(pm)


def list_pms(query):
    cust = query.get("customer")
    items = [pm_object(p) for p in STATE["payment_methods"].values() if cust and p["customer"] == cust]
    return 200, {"object": "list", "data": items, "has_more": False, "url": "/v1/payment_methods"}


def create_payment_intent(form):
    bad = require(form, "amount", "currency")
    if bad:
        return bad
    try:
        amount = int(form["amount"])
    except ValueError:
        return error(400, "invalid_request_error", "Invalid integer: %s" % form["amount"], param="amount")
    if amount < 1:
        return error(400, "invalid_request_error", "Amount must be at least 1", "amount_too_small", param="amount")
    if form.get("off_session") == "true" and form.get("confirm") != "true":
        return error(400, "invalid_request_error", "off_session can only be used when confirm=true.", param="off_session")
    pi = {"id": new_id("pi"), "object": "payment_intent", "amount": amount, "currency": form["currency"],
          "customer": form.get("customer"), "payment_method": None, "status": "requires_payment_method",
          "metadata": nested(form, "metadata"), "created": now(), "livemode": False,
          "last_payment_error": None, "latest_charge": None, "amount_received": 0}
    pi["client_secret"] = pi["id"] + "_secret_" + secrets.token_hex(12)
    STATE["payment_intents"][pi["id"]] = pi
    if form.get("payment_method"):
        pm = resolve_pm(form["payment_method"], form.get("customer"))
        if pm is None:
            return error(400, "invalid_request_error", "No such PaymentMethod: '%s'" % form["payment_method"], "resource_missing", param="payment_method")
        if pm["customer"] and form.get("customer") and pm["customer"] != form.get("customer"):
            return error(400, "invalid_request_error", "The provided PaymentMethod belongs to another customer.", param="payment_method")
        pi["payment_method"] = pm["id"]
        pi["status"] = "requires_confirmation"
        if form.get("confirm") == "true":
            return confirm(pi, pm, form.get("off_session") == "true")
    return 200, pi


def confirm(pi, pm, off_session):
    outcome = TEST_CARDS.get(pm["test_id"], ("visa", "0000", None))[2]
    if outcome is None:
        charge = new_id("ch")
        pi.update(status="succeeded", latest_charge=charge, amount_received=pi["amount"])
        STATE["charges"].append({"payment_intent": pi["id"], "charge": charge,
                                 "invoice_id": pi["metadata"].get("invoice_id"), "amount": pi["amount"]})
        emit("payment_intent.succeeded", pi)
        return 200, pi
    code, decline = outcome
    if code == "authentication_required":
        if not off_session:
            pi.update(status="requires_action", next_action={"type": "use_stripe_sdk"})
            emit("payment_intent.requires_action", pi)
            return 200, pi
        message = "Your card was declined. This transaction requires authentication."
        decline = None
    else:
        message = "Your card was declined."
    last = {"type": "card_error", "code": code, "message": message}
    if decline:
        last["decline_code"] = decline
    if decline in ADVICE:  # the PaymentIntent's last_payment_error is the whole error
        last["advice_code"] = ADVICE[decline]
    pi.update(status="requires_payment_method", last_payment_error=last)
    emit("payment_intent.payment_failed", pi)
    extra = {"payment_intent": pi, "charge": new_id("ch")}
    if decline in ADVICE:
        extra["advice_code"] = ADVICE[decline]
    return error(402, "card_error", message, code, decline, extra=extra)


def create_refund(form):
    bad = require(form, "payment_intent")
    if bad:
        return bad
    pi = STATE["payment_intents"].get(form["payment_intent"])
    if pi is None:
        return error(400, "invalid_request_error", "No such payment_intent: '%s'" % form["payment_intent"], "resource_missing", param="payment_intent")
    refunded = sum(r["amount"] for r in STATE["refunds"].values() if r["payment_intent"] == pi["id"])
    amount = int(form.get("amount", pi["amount_received"] - refunded))
    if pi["status"] != "succeeded" or amount < 1 or refunded + amount > pi["amount_received"]:
        return error(400, "invalid_request_error", "Refund amount (%d) is greater than unrefunded amount on charge." % amount, "amount_too_large", param="amount")
    r = {"id": new_id("re"), "object": "refund", "amount": amount, "payment_intent": pi["id"],
         "charge": pi["latest_charge"], "currency": pi["currency"], "status": "succeeded",
         "metadata": nested(form, "metadata"), "created": now()}
    STATE["refunds"][r["id"]] = r
    return 200, r


def route(method, path, form, query):
    parts = [p for p in path.split("/") if p]
    if method == "POST" and path == "/v1/customers":
        return create_customer(form)
    if method == "GET" and len(parts) == 3 and parts[1] == "customers":
        c = STATE["customers"].get(parts[2])
        return (200, c) if c else error(404, "invalid_request_error", "No such customer: '%s'" % parts[2], "resource_missing", param="id")
    if method == "POST" and path == "/v1/setup_intents":
        return create_setup_intent(form)
    if method == "POST" and len(parts) == 4 and parts[1] == "payment_methods" and parts[3] == "attach":
        return attach(parts[2], form)
    if method == "POST" and len(parts) == 4 and parts[1] == "payment_methods" and parts[3] == "detach":
        return detach(parts[2])
    if method == "GET" and path == "/v1/payment_methods":
        return list_pms(query)
    if method == "GET" and len(parts) == 3 and parts[1] == "payment_methods":
        pm = STATE["payment_methods"].get(parts[2])
        return (200, pm_object(pm)) if pm else error(404, "invalid_request_error", "No such PaymentMethod: '%s'" % parts[2], "resource_missing", param="id")
    if method == "POST" and path == "/v1/payment_intents":
        return create_payment_intent(form)
    if method == "GET" and len(parts) == 3 and parts[1] == "payment_intents":
        pi = STATE["payment_intents"].get(parts[2])
        return (200, pi) if pi else error(404, "invalid_request_error", "No such payment_intent: '%s'" % parts[2], "resource_missing", param="intent")
    if method == "POST" and path == "/v1/refunds":
        return create_refund(form)
    return error(404, "invalid_request_error", "Unrecognized request URL (%s: %s)." % (method, path))


def take_fault(path):
    for i, f in enumerate(STATE["faults"]):
        if path.startswith(f.get("path", "")):
            return STATE["faults"].pop(i)
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: tests read state, not logs
        pass

    def answer(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", new_id("req"))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def handle_any(self, method):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if url.path.startswith("/_fake/"):
            return self.control(method, url.path, raw)
        with LOCK:
            STATE["requests"] += 1
            fault = take_fault(url.path)
        if fault and fault["kind"] == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):  # curl -u sk_test_...: (the key as the user name)
            try:
                auth = "Bearer " + base64.b64decode(auth[6:]).decode().split(":")[0]
            except ValueError:
                auth = ""
        if not (auth.startswith("Bearer sk_test_") or auth.startswith("Bearer rk_test_")):
            return self.answer(*error(401, "invalid_request_error", "Invalid API Key provided."))
        version = self.headers.get("Stripe-Version", "")
        if len(version) < 10 or version[4] != "-" or version[7] != "-":
            return self.answer(*error(400, "invalid_request_error", "Invalid Stripe API version: %s" % version))
        if fault and fault["kind"] == "status":
            return self.answer(*error(fault["status"], "api_error", "An error occurred with our connection to Stripe."))
        if fault and fault["kind"] == "rate_limit":
            return self.answer(*error(429, "invalid_request_error", "Too many requests.", fault.get("code", "rate_limit")))
        form = dict(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True))
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        key = self.headers.get("Idempotency-Key") if method == "POST" else None
        headers = {}
        if key is not None:
            if len(key) > 255:
                return self.answer(*error(400, "invalid_request_error", "Idempotency-Key is too long.", param="Idempotency-Key"))
            fingerprint = hashlib.sha256((url.path + "?" + json.dumps(sorted(form.items()))).encode()).hexdigest()
            with LOCK:
                seen = STATE["idempotency"].get(key)
                if seen and seen.get("in_flight"):
                    return self.answer(*error(409, "idempotency_error", "There is currently another in-progress request using this Stripe token.", "idempotency_key_in_use"))
                if seen:
                    if seen["fingerprint"] != fingerprint:
                        return self.answer(*error(400, "idempotency_error", "Keys for idempotent requests can only be used with the same parameters they were first used with."))
                    return self.answer(seen["status"], seen["body"], {"Idempotent-Replayed": "true", "Idempotency-Key": key})
                STATE["idempotency"][key] = {"in_flight": True}
            headers["Idempotency-Key"] = key
        with LOCK:
            status, body = route(method, url.path, form, query)
            body = json.loads(json.dumps(body))  # a snapshot: later changes do not alter a replay
            if key is not None:
                if status == 400 and body.get("error", {}).get("code") == "parameter_missing":
                    del STATE["idempotency"][key]  # nothing stored when validation fails
                else:
                    STATE["idempotency"][key] = {"fingerprint": fingerprint, "status": status, "body": body}
        if fault and fault["kind"] == "timeout_after_success":
            time.sleep(float(fault.get("seconds", 2)))
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.answer(status, body, headers)

    def control(self, method, path, raw):
        with LOCK:
            if method == "POST" and path == "/_fake/faults":
                STATE["faults"].extend(json.loads(raw or b"[]"))
                return self.answer(200, {"queued": len(STATE["faults"])})
            if method == "POST" and path == "/_fake/config":
                STATE["webhook"].update({k: v for k, v in json.loads(raw or b"{}").items()
                                         if k in ("url", "secret", "clock_offset")})
                return self.answer(200, {k: v for k, v in STATE["webhook"].items() if k != "secret"})
            if method == "POST" and path == "/_fake/confirm_setup_intent":
                # What Stripe.js does in the tenant's browser: the card (a
                # pm_card_* test id) is confirmed against the SetupIntent and
                # attached to its customer; setup_intent.succeeded follows.
                req = json.loads(raw or b"{}")
                si = STATE["setup_intents"].get(req.get("setup_intent", ""))
                if si is None:
                    return self.answer(404, {"error": {"type": "invalid_request_error", "message": "No such setup_intent"}})
                pm = resolve_pm(req.get("payment_method", "pm_card_visa"), si["customer"])
                if pm is None:
                    return self.answer(400, {"error": {"type": "invalid_request_error", "message": "No such PaymentMethod"}})
                pm["customer"] = si["customer"]
                si.update(status="succeeded", payment_method=pm["id"])
                emit("payment_method.attached", pm_object(pm))
                emit("setup_intent.succeeded", si)
                return self.answer(200, si)
            if method == "POST" and path == "/_fake/redeliver":
                # Every event made so far again, `times` times each, in a
                # shuffled order (seeded): duplicates and reordering.
                req = json.loads(raw or b"{}")
                batch = [e for e in STATE["events"] for _ in range(int(req.get("times", 1)))]
                random.Random(req.get("seed", 1)).shuffle(batch)
                OUTBOX.extend(batch)
                OUTBOX_CV.notify()
                return self.answer(200, {"queued": len(batch)})
            if method == "GET" and path == "/_fake/state":
                per_invoice = {}
                for c in STATE["charges"]:
                    per_invoice[c["invoice_id"]] = per_invoice.get(c["invoice_id"], 0) + 1
                return self.answer(200, {"requests": STATE["requests"], "charges": STATE["charges"],
                                         "charges_per_invoice": per_invoice,
                                         "customers": len(STATE["customers"]),
                                         "events": [{"id": e["id"], "type": e["type"]} for e in STATE["events"]],
                                         "webhook": {k: v for k, v in STATE["webhook"].items() if k != "secret"},
                                         "outbox": len(OUTBOX),
                                         "faults_left": len(STATE["faults"])})
        return self.answer(404, {"error": {"type": "invalid_request_error", "message": "no such control"}})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    a = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=delivery_loop, daemon=True).start()
    port = server.server_address[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(str(port))
        import os
        os.replace(a.port_file + ".tmp", a.port_file)
    print(port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
