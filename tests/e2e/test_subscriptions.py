"""Plans and subscriptions end to end, on a manual clock (simulated time)."""
import json
import os
import subprocess

import pytest

from conftest import ADMIN_KEY, BIN, Server, assert_problem, make_tenant


def manual_server(tmp_path, now):
    tmp_path.mkdir(parents=True, exist_ok=True)
    return Server(tmp_path / "data", extra_env={"CAAS_BILLING_CLOCK": "manual",
                                                "CAAS_BILLING_NOW": now}).start()


@pytest.fixture
def clock_server(tmp_path):
    s = manual_server(tmp_path / "clock", "2026-03-01T00:00:00Z")  # its own data directory
    yield s
    s.stop()


def advance(server, to):
    status, _, body = server.request("POST", "/v1/clock/advance", {"to": to})
    assert status == 200, body
    return body


def change(server, tenant, body, key="admin", path="/subscription"):
    status, _, r = server.request("POST", "/v1/tenants/%s%s" % (tenant, path), body, key=key)
    assert status == 200, r
    return r


def amounts(result):
    return [l["amount"]["amount_minor"] for l in result["lines"]]


def test_clock_modes(clock_server, server):
    status, _, c = clock_server.request("GET", "/v1/clock")
    assert status == 200 and c == {"now": "2026-03-01T00:00:00Z", "mode": "manual"}
    assert server.request("GET", "/v1/clock")[2]["mode"] == "system"
    assert_problem(server.request("POST", "/v1/clock/advance", {"to": "2030-01-01T00:00:00Z"}), 409)
    assert_problem(clock_server.request("POST", "/v1/clock/advance", {"to": "2026-02-01T00:00:00Z"}),
                   400, field="to")
    assert_problem(clock_server.request("POST", "/v1/clock/advance", {"to": "soon"}), 400, field="to")
    # At most 400 days per call (each transition on the way runs at its own instant).
    assert_problem(clock_server.request("POST", "/v1/clock/advance", {"to": "2027-04-05T00:00:01Z"}),
                   400, field="to")
    assert clock_server.request("GET", "/v1/clock")[2]["now"] == "2026-03-01T00:00:00Z"
    t = make_tenant(clock_server)["id"]
    status, _, k = clock_server.request("POST", "/v1/tenants/%s/api_keys" % t, {})
    assert_problem(clock_server.request("POST", "/v1/clock/advance", {"to": "2026-03-02T00:00:00Z"},
                                        key=k["secret"]), 403)


def test_upgrade_mid_period_then_downgrade_at_period_end(clock_server):
    s = clock_server
    t = make_tenant(s)["id"]
    sub = s.request("GET", "/v1/tenants/%s/subscription" % t)[2]["subscription"]
    assert (sub["plan"], sub["status"]) == ("free", "active")
    assert sub["current_period"] == {"start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"}
    advance(s, "2026-03-16T12:00:00Z")  # 15.5 of 31 days left
    preview = change(s, t, {"plan": "pro"}, path="/subscription/preview")
    assert amounts(preview) == [4950]
    assert s.request("GET", "/v1/tenants/%s/subscription" % t)[2]["subscription"]["plan"] == "free"
    up = change(s, t, {"plan": "pro"})
    assert up["effect"] == "upgraded" and amounts(up) == [4950] and up["total_minor"] == 4950
    ent = s.request("GET", "/v1/tenants/%s/entitlements" % t)[2]
    assert ent["plan"] == "pro" and ent["features"]["webhooks"] is True
    assert ent["limits"]["messages"] == {"included": 100000, "limit": None}
    down = change(s, t, {"plan": "free"})
    assert down["effect"] == "downgrade_scheduled" and down["lines"] == []
    assert down["subscription"]["subscription"]["scheduled_change"]["at"] == "2026-04-01T00:00:00Z"
    # Metering follows the plan: Pro limits are soft now...
    q = s.request("POST", "/v1/quota/check", {"tenant": t, "metric": "messages", "quantity": 50000})[2]
    assert q["allowed"] is True and q["included"] == 100000 and q["limit"] is None
    r = advance(s, "2026-04-01T00:00:00Z")
    assert r["transitions_run"] >= 1
    sub = s.request("GET", "/v1/tenants/%s/subscription" % t)[2]
    assert sub["subscription"]["plan"] == "free"
    assert sub["subscription"]["current_period"]["start"] == "2026-04-01T00:00:00Z"
    # The upgrade's proration was invoiced at once; the period's invoice (no
    # fee: Free) takes the rest. Nothing waits.
    assert sub["pending_lines"] == []
    invs = s.request("GET", "/v1/invoices?tenant=" + t)[2]["data"]
    assert [(i["kind"], i["total"]["amount_minor"]) for i in invs] == [("change", 4950), ("period", 0)]
    # ...and Free's hard limits again after the downgrade.
    q = s.request("POST", "/v1/quota/check", {"tenant": t, "metric": "messages", "quantity": 50000})[2]
    assert q["allowed"] is False and q["limit"] == 10000
    audit = sub["audit"]
    for a, b in zip(audit, audit[1:]):
        assert a["to"] == b["from"]
    assert audit[-1]["to"]["plan"] == "free"
    events = [e["type"] for e in s.request("GET", "/v1/tenants/%s/billing-events?limit=100" % t)[2]["data"]]
    for want in ("subscription.upgraded", "subscription.downgrade_scheduled", "subscription.plan_changed",
                 "subscription.renewed"):
        assert want in events, events


def test_upgrade_on_day_one_and_last_second(tmp_path):
    # At the last second the charge rounds to $0.00: a zero line is not written.
    for when, want in (("2026-03-01T00:00:00Z", [9900]), ("2026-03-31T23:59:59Z", [])):
        s = manual_server(tmp_path / when.replace(":", ""), "2026-03-01T00:00:00Z")
        try:
            t = make_tenant(s)["id"]
            if when != "2026-03-01T00:00:00Z":
                advance(s, when)
            assert amounts(change(s, t, {"plan": "pro"})) == want
        finally:
            s.stop()


@pytest.mark.parametrize("created,starts", [
    ("2026-01-31T00:00:00Z", ["2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"]),
    ("2026-01-30T00:00:00Z", ["2026-02-28T00:00:00Z", "2026-03-30T00:00:00Z"]),
    ("2028-01-29T00:00:00Z", ["2028-02-29T00:00:00Z", "2028-03-29T00:00:00Z"]),
    ("2028-01-31T00:00:00Z", ["2028-02-29T00:00:00Z", "2028-03-31T00:00:00Z"]),
])
def test_anchors_across_february(tmp_path, created, starts):
    s = manual_server(tmp_path, created)
    try:
        t = make_tenant(s)["id"]
        change(s, t, {"plan": "pro"})
        for start in starts:
            advance(s, start)
            sub = s.request("GET", "/v1/tenants/%s/subscription" % t)[2]["subscription"]
            assert sub["current_period"]["start"] == start
        # Usage follows the same periods.
        assert s.request("GET", "/v1/tenants/%s/usage" % t)[2]["period"]["start"] == starts[-1]
    finally:
        s.stop()


@pytest.mark.parametrize("card", [True, False])
def test_trial_with_and_without_a_card(clock_server, card):
    s = clock_server
    t = make_tenant(s)["id"]
    r = change(s, t, {"plan": "pro", "trial": True})
    assert r["effect"] == "trial_started" and r["lines"] == []
    assert r["subscription"]["subscription"]["trial_end"] == "2026-03-15T00:00:00Z"
    assert s.request("GET", "/v1/tenants/%s/entitlements" % t)[2]["status"] == "trialing"
    if card:
        status, _, _ = s.request("POST", "/v1/tenants/%s/subscription/payment-method" % t, {"on_file": True})
        assert status == 200
    advance(s, "2026-03-12T00:00:00Z")
    types = [e["type"] for e in s.request("GET", "/v1/tenants/%s/billing-events?limit=100" % t)[2]["data"]]
    assert "subscription.trial_will_end" in types
    advance(s, "2026-03-15T00:00:01Z")
    sub = s.request("GET", "/v1/tenants/%s/subscription" % t)[2]["subscription"]
    assert (sub["plan"], sub["status"]) == (("pro", "active") if card else ("free", "active"))
    invs = s.request("GET", "/v1/invoices?tenant=" + t)[2]["data"]
    trial_end = [i for i in invs if i["period"] and i["period"]["end"] == "2026-03-15T00:00:00Z"]
    assert len(trial_end) == 1
    lines = [(l["type"], l["amount"]["amount_minor"]) for l in trial_end[0]["lines"]]
    if card:
        assert sub["current_period"] == {"start": "2026-03-15T00:00:00Z", "end": "2026-04-15T00:00:00Z"}
        # The first paid period's fee, charged at its start, is on the trial's
        # closing invoice; the trial cost nothing.
        assert lines == [("base_fee", 9900)]
    else:
        assert lines == []
    # One trial per tenant, whichever way the first one ended.
    body = assert_problem(s.request("POST", "/v1/tenants/%s/subscription" % t,
                                    {"plan": "pro", "trial": True}), 409)
    assert "had its trial" in body["detail"]


def test_cancel_reactivate_and_cancel_now(clock_server):
    s = clock_server
    t = make_tenant(s)["id"]
    change(s, t, {"plan": "pro"})
    r = change(s, t, {"at": "period_end"}, path="/subscription/cancel")
    assert r["effect"] == "cancel_scheduled"
    assert change(s, t, {}, path="/subscription/reactivate")["effect"] == "reactivated"
    assert_problem(s.request("POST", "/v1/tenants/%s/subscription/reactivate" % t, {}), 409)
    advance(s, "2026-03-16T12:00:00Z")
    r = change(s, t, {"at": "now"}, path="/subscription/cancel")
    assert r["effect"] == "canceled" and amounts(r) == [-4950]
    sub = r["subscription"]
    assert sub["subscription"]["plan"] == "free"
    assert sub["previous"][-1]["plan"] == "pro" and sub["previous"][-1]["status"] == "canceled"
    assert_problem(s.request("POST", "/v1/tenants/%s/subscription/cancel" % t, {}), 409)


def test_enterprise_terms_and_permissions(clock_server):
    s = clock_server
    t = make_tenant(s)["id"]
    status, _, k = s.request("POST", "/v1/tenants/%s/api_keys" % t, {})
    key = k["secret"]
    assert_problem(s.request("POST", "/v1/tenants/%s/subscription" % t, {"plan": "enterprise"}, key=key), 403)
    assert_problem(s.request("POST", "/v1/tenants/%s/subscription/terms" % t, {"base_fee": "1.00"}, key=key), 403)
    change(s, t, {"plan": "pro"}, key=key)  # tenants may upgrade themselves
    status, _, _ = s.request("POST", "/v1/tenants/%s/subscription/terms" % t, {
        "base_fee": "5000.00",
        "metrics": {"messages": {"included": 5000000, "unit_price": "0.00005"}},
        "features": {"sso": True}})
    assert status == 200
    assert_problem(s.request("POST", "/v1/tenants/%s/subscription/terms" % t, {"base_fee": "-1"}), 400,
                   field="base_fee")
    assert_problem(s.request("POST", "/v1/tenants/%s/subscription/terms" % t,
                             {"features": {"teleport": True}}), 400, field="features.teleport")
    advance(s, "2026-03-16T12:00:00Z")
    r = change(s, t, {"plan": "enterprise"})
    assert amounts(r) == [-4950, 250000]
    ent = s.request("GET", "/v1/tenants/%s/entitlements" % t)[2]
    assert ent["plan"] == "enterprise" and ent["features"]["sso"] is True
    assert ent["limits"]["messages"]["included"] == 5000000


def test_bad_requests_change_nothing(clock_server):
    s = clock_server
    t = make_tenant(s)["id"]
    assert_problem(s.request("POST", "/v1/tenants/%s/subscription" % t, {"plan": "gold"}), 400, field="plan")
    assert_problem(s.request("POST", "/v1/tenants/%s/subscription" % t, {}), 400, field="plan")
    assert_problem(s.request("POST", "/v1/tenants/%s/subscription" % t, {"plan": "pro", "at": "later"}), 400,
                   field="at")
    assert_problem(s.request("POST", "/v1/tenants/%s/subscription" % t, {"plan": "pro", "colour": 1}), 400,
                   field="colour")
    assert_problem(s.request("POST", "/v1/tenants/%s/subscription" % t, {"plan": "free"}), 409)
    assert_problem(s.request("GET", "/v1/tenants/tnt_00000000000000000000000000/subscription"), 404)
    sub = s.request("GET", "/v1/tenants/%s/subscription" % t)[2]
    assert sub["subscription"]["plan"] == "free" and len(sub["audit"]) == 1


def test_plans_cli_and_bad_catalog(tmp_path):
    r = subprocess.run([BIN, "plans", "list"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "99.00 USD" in r.stdout and "enterprise" in r.stdout
    r = subprocess.run([BIN, "plans", "show", "pro"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "0.0001" in r.stdout and "14 days" in r.stdout
    bad = tmp_path / "plans.json"
    catalog = json.load(open(os.path.join(os.environ["CAAS_REPO"], "catalog", "plans.json")))
    catalog["plans"][1]["base_fee"] = 99
    bad.write_text(json.dumps(catalog))
    r = subprocess.run([BIN, "plans", "list", "--catalog", str(bad)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and "plans[1] (pro): base_fee" in r.stderr, r.stderr
    # The server refuses to start on a bad catalog, naming the file, plan and field.
    env = {"PATH": os.environ.get("PATH", ""), "CAAS_BILLING_ADMIN_KEY": ADMIN_KEY}
    r = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"),
                        "--catalog", str(bad)], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode != 0 and "plans[1] (pro): base_fee" in r.stderr, r.stderr


def test_subscriptions_cli(clock_server):
    s = clock_server
    t = make_tenant(s)["id"]
    env = {"PATH": os.environ.get("PATH", ""), "CAAS_BILLING_API_KEY": ADMIN_KEY,
           "CAAS_BILLING_URL": "http://127.0.0.1:%d" % s.port}
    advance(s, "2026-03-16T12:00:00Z")

    def run(*args):
        return subprocess.run([BIN, *args], capture_output=True, text=True, env=env, timeout=60)

    r = run("subscriptions", "change", t, "pro", "--preview")
    assert r.returncode == 0 and "would be: upgraded" in r.stdout and "4950" in r.stdout, r.stdout + r.stderr
    assert s.request("GET", "/v1/tenants/%s/subscription" % t)[2]["subscription"]["plan"] == "free"
    r = run("subscriptions", "change", t, "pro")
    assert r.returncode == 0 and "plan pro v1" in r.stdout, r.stdout + r.stderr
    r = run("subscriptions", "show", t)
    assert r.returncode == 0 and "plan pro v1" in r.stdout, r.stdout
    r = run("invoices", "list", "--tenant", t)  # the upgrade was invoiced at once
    assert r.returncode == 0 and "INV-2026-000001" in r.stdout and "USD 49.50" in r.stdout, r.stdout
    r = run("subscriptions", "cancel", t)
    assert r.returncode == 0 and "cancels at period end" in r.stdout, r.stdout
    r = run("subscriptions", "cancel", t)
    assert r.returncode == 1 and "409" in r.stderr
    r = run("subscriptions", "show", t, "--json")
    assert json.loads(r.stdout)["subscription"]["cancel_at_period_end"] is True
    r = run("plans", "migrate", "pro", "--to-version", "1")
    assert r.returncode == 0 and "migrated 0" in r.stdout, r.stdout + r.stderr
    r = run("plans", "migrate", "pro", "--to-version", "2")
    assert r.returncode == 2 and "to_version" in r.stderr
    status, _, plans = s.request("GET", "/v1/plans")
    assert status == 200 and {p["id"] for p in plans["data"]} == {"free", "pro", "enterprise"}


def usage_at(server, tenant, at):
    status, _, body = server.request("GET", "/v1/tenants/%s/usage?at=%s" % (tenant, at))
    assert status == 200, body
    return body


def send(server, tenant, id, time, quantity=1, type="message.sent", subject=None):
    e = {"specversion": "1.0", "id": id, "source": "/e2e", "type": type, "time": time,
         "tenant": tenant}
    if type == "user.active":
        e["subject"] = subject
    else:
        e["data"] = {"quantity": quantity}
    status, _, body = server.request("POST", "/v1/events", json.dumps([e]),
                                     content_type="application/cloudevents-batch+json")
    assert status == 200 and body["outcomes"] == ["accepted"], body


def test_a_past_period_keeps_its_terms_and_reanchoring_keeps_usage_in_place(tmp_path):
    """Regressions over HTTP: March's Pro overage survives a downgrade and a
    restart; a re-anchoring upgrade leaves earlier usage in its own period."""
    s = manual_server(tmp_path / "a", "2026-03-01T00:00:00Z")
    try:
        t = make_tenant(s)["id"]
        change(s, t, {"plan": "pro"})
        advance(s, "2026-03-10T00:00:00Z")
        send(s, t, "m1", "2026-03-10T00:00:00Z", 150_000)
        change(s, t, {"plan": "free"})  # at Apr 1
        advance(s, "2026-04-02T00:00:00Z")
        s.stop()
        s.extra_env["CAAS_BILLING_NOW"] = "2026-04-02T00:00:00Z"
        s.start()
        march = usage_at(s, t, "2026-03-20T00:00:00Z")
        assert march["plan"] == "pro"
        assert march["metrics"]["messages"]["included"] == 100_000
        assert march["metrics"]["messages"]["overage"] == 50_000
        assert usage_at(s, t, "2026-04-02T00:00:00Z")["plan"] == "free"
    finally:
        s.stop()
    s = manual_server(tmp_path / "b", "2026-03-10T12:00:00Z")
    try:
        t = make_tenant(s)["id"]
        advance(s, "2026-03-15T00:00:00Z")
        send(s, t, "m1", "2026-03-15T00:00:00Z", 500)
        advance(s, "2026-03-20T00:00:00Z")
        change(s, t, {"plan": "pro", "billing_anchor": "calendar"})
        send(s, t, "m2", "2026-03-20T00:00:00Z", 7)
        for _ in range(2):
            old = usage_at(s, t, "2026-03-15T00:00:00Z")
            assert old["period"] == {"start": "2026-03-10T12:00:00Z", "end": "2026-03-20T00:00:00Z"}
            assert old["metrics"]["messages"]["used"] == 500
            cur = usage_at(s, t, "2026-03-20T00:00:00Z")
            assert cur["period"] == {"start": "2026-03-20T00:00:00Z", "end": "2026-04-01T00:00:00Z"}
            assert cur["metrics"]["messages"]["used"] == 7
            s.stop()
            s.extra_env["CAAS_BILLING_NOW"] = "2026-03-20T00:00:00Z"
            s.start()
        # A setting that would not apply is refused, naming it.
        assert_problem(s.request("POST", "/v1/tenants/%s/subscription" % t,
                                 {"plan": "enterprise", "billing_anchor": "calendar"}),
                       400, field="billing_anchor")
    finally:
        s.stop()
