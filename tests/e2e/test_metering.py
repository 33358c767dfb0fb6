"""Metering end to end: the real binary, real HTTP, real restarts and kill -9."""
import datetime as dt
import json
import os
import random
import signal
import subprocess
import threading

import pytest

from conftest import ADMIN_KEY, BIN, Server, assert_problem, make_tenant

BATCH = "application/cloudevents-batch+json"
SINGLE = "application/cloudevents+json"
NDJSON = "application/x-ndjson"


def now():
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def ev(tenant, id, type="message.sent", time=None, **extra):
    e = {"specversion": "1.0", "id": str(id), "source": "/e2e", "type": type,
         "time": iso(time or now()), "tenant": tenant}
    e.update(extra)
    return e


def post_events(server, events, content_type=BATCH, key="admin", conn=None):
    if content_type == NDJSON:
        body = "".join(json.dumps(e) + "\n" for e in events)
    elif content_type == SINGLE:
        body = json.dumps(events)
    else:
        body = json.dumps(events)
    return server.request("POST", "/v1/events", body, key=key, content_type=content_type, conn=conn)


def usage(server, tenant, at=None, key="admin"):
    path = "/v1/tenants/%s/usage" % tenant + ("?at=" + at if at else "")
    status, _, body = server.request("GET", path, key=key)
    assert status == 200, body
    return body


def test_outcomes_per_event_and_nothing_else_changes(server):
    t = make_tenant(server)["id"]
    other = make_tenant(server, name="Other")["id"]
    good = ev(t, "a", data={"quantity": 3})
    events = [
        good,
        dict(good),                                            # exact re-send
        dict(good, data={"quantity": 4}),                      # same key, other payload
        ev(t, "late", time=now() - dt.timedelta(days=36)),     # beyond the late window
        ev(t, "future", time=now() + dt.timedelta(minutes=10)),
        ev(t, "bad-type", type="message.deleted"),
        ev("tnt_00000000000000000000000000", "nobody"),        # unknown tenant
        {"id": "no-spec"},
        ev(t, "u1", type="user.active", subject="alice"),
        ev(t, "s1", type="media.stored", data={"bytes": 5000}),
        ev(t, "c1", type="api.call"),
    ]
    status, _, body = post_events(server, events)
    assert status == 200, body
    assert body["outcomes"] == ["accepted", "duplicate", "conflict", "rejected", "rejected",
                                "rejected", "rejected", "rejected", "accepted", "accepted",
                                "accepted"]
    assert (body["accepted"], body["duplicate"], body["conflict"], body["rejected"]) == (4, 1, 1, 5)
    errors = {e["index"]: e for e in body["errors"]}
    assert errors[2]["outcome"] == "conflict" and errors[2]["field"] == "id"
    assert errors[3]["field"] == "time" and "late-arrival window" in errors[3]["reason"]
    assert errors[4]["field"] == "time" and "future" in errors[4]["reason"]
    assert errors[5]["field"] == "type"
    assert errors[6]["field"] == "tenant"
    assert errors[7]["field"] == "specversion"
    u = usage(server, t)
    assert u["metrics"]["messages"]["used"] == 3
    assert u["metrics"]["mau"]["used"] == 1
    assert u["metrics"]["api_calls"]["used"] == 1
    assert usage(server, other)["metrics"]["messages"]["used"] == 0
    status, _, metrics = server.request("GET", "/metrics", key=None)
    assert status == 200
    assert 'caas_usage_events_total{outcome="accepted"} 4' in metrics, metrics
    assert 'caas_usage_events_total{outcome="rejected"} 5' in metrics
    assert "caas_usage_event_keys 4" in metrics


def test_whole_request_errors_change_nothing(server):
    t = make_tenant(server)["id"]
    assert_problem(server.request("POST", "/v1/events", "[" + json.dumps(ev(t, "x")) + ",",
                                  content_type=BATCH), 400, field="body")
    assert_problem(server.request("POST", "/v1/events", json.dumps([ev(t, "x")]),
                                  content_type="application/json"), 415)
    too_many = [ev(t, "m%d" % i) for i in range(10_001)]
    assert_problem(post_events(server, too_many), 413, field="body")
    big = json.dumps([ev(t, "b", pad="x" * 1000)] * 11_000)
    assert len(big) > 10 << 20
    status, _, body = server.request("POST", "/v1/events", big, content_type=BATCH)
    assert status == 413, body
    # A single rejected event is a 422 problem naming the field; a conflict is 409.
    assert_problem(post_events(server, ev(t, "s", time=now() + dt.timedelta(hours=1)), SINGLE),
                   422, field="time")
    assert post_events(server, ev(t, "one"), SINGLE)[0] == 200
    assert_problem(post_events(server, ev(t, "one", data={"quantity": 2}), SINGLE), 409, field="id")
    assert usage(server, t)["metrics"]["messages"]["used"] == 1


def test_tenant_keys_send_and_see_only_their_own(server):
    t = make_tenant(server)["id"]
    other = make_tenant(server, name="Other")["id"]
    status, _, k = server.request("POST", "/v1/tenants/%s/api_keys" % t, {"name": "ingest"})
    assert status == 201
    key = k["secret"]
    own = ev(t, "k1")
    del own["tenant"]
    status, _, body = post_events(server, [own, ev(other, "k2")], key=key)
    assert status == 200
    assert body["outcomes"] == ["accepted", "rejected"]
    assert body["errors"][0]["field"] == "tenant"
    assert usage(server, t, key=key)["metrics"]["messages"]["used"] == 1
    assert usage(server, other)["metrics"]["messages"]["used"] == 0
    assert_problem(server.request("GET", "/v1/tenants/%s/usage" % other, key=key), 404)
    assert_problem(server.request("POST", "/v1/quota/check",
                                  {"tenant": other, "metric": "messages"}, key=key), 400,
                   field="tenant")
    status, _, q = server.request("POST", "/v1/quota/check", {"metric": "messages"}, key=key)
    assert status == 200 and q["used"] == 1
    assert_problem(server.request("POST", "/v1/events/k1/void",
                                  {"tenant": t, "source": "/e2e", "reason": "x"}, key=key), 403)


def test_quota_thresholds_void_daily_and_billing_events(server):
    t = make_tenant(server)["id"]
    big = ev(t, "big", data={"quantity": 7_999})  # re-sent below exactly as it was
    status, _, body = post_events(server, [big])
    assert body["accepted"] == 1
    q = server.request("POST", "/v1/quota/check", {"tenant": t, "metric": "messages", "quantity": 2001})[2]
    assert q["allowed"] is True and q["used"] == 7_999 and q["limit"] == 10_000 and q["remaining"] == 2_001
    q = server.request("POST", "/v1/quota/check", {"tenant": t, "metric": "messages", "quantity": 2002})[2]
    assert q["allowed"] is False
    post_events(server, [ev(t, "more", data={"quantity": 2_001})])
    q = server.request("POST", "/v1/quota/check", {"tenant": t, "metric": "messages"})[2]
    assert q["allowed"] is False and q["remaining"] == 0
    # Thresholds: 80% and 100% recorded once each (listing reads what was
    # announced: no polling).
    events = server.request("GET", "/v1/tenants/%s/billing-events" % t)[2]["data"]
    assert sorted(e["data"]["percent"] for e in events) == [80, 100]
    assert all(e["type"] == "usage.threshold_reached" and e["data"]["metric"] == "messages"
               for e in events)
    # Void the big one: usage drops, the id stays taken, the audit trail has it.
    status, _, v = server.request("POST", "/v1/events/big/void",
                                  {"tenant": t, "source": "/e2e", "reason": "load test traffic"})
    assert status == 200, v
    assert v["quantity"] == 7_999 and v["voided_by"].startswith("key_")
    assert usage(server, t)["metrics"]["messages"]["used"] == 2_001
    assert_problem(server.request("POST", "/v1/events/big/void",
                                  {"tenant": t, "source": "/e2e", "reason": "again"}), 409)
    assert_problem(server.request("POST", "/v1/events/nope/void",
                                  {"tenant": t, "source": "/e2e", "reason": "x"}), 404)
    assert_problem(server.request("POST", "/v1/events/big/void", {"tenant": t}), 400, field="source")
    assert post_events(server, [big])[2]["outcomes"] == ["duplicate"]
    voids = server.request("GET", "/v1/tenants/%s/usage/voids" % t)[2]["data"]
    assert [x["reason"] for x in voids] == ["load test traffic"]
    # Daily buckets: the day the events are dated (not today's date, which a
    # run across UTC midnight would change).
    today = big["time"][:10]
    status, _, d = server.request("GET", "/v1/tenants/%s/usage/daily?from=%s&to=%s" % (t, today, today))
    assert status == 200 and d["days"] == [{"date": today, "messages": 2_001, "api_calls": 0,
                                            "active_users": 0, "storage_bytes": 0}]
    assert_problem(server.request("GET", "/v1/tenants/%s/usage/daily?from=2026-13-01" % t), 400,
                   field="from")
    assert_problem(server.request("GET", "/v1/tenants/%s/usage/daily?from=2025-01-01&to=2026-06-01" % t),
                   400, field="to")
    assert_problem(server.request("POST", "/v1/quota/check", {"tenant": t, "metric": "bananas"}),
                   400, field="metric")
    assert_problem(server.request("POST", "/v1/quota/check", {"tenant": t, "metric": "messages",
                                                              "quantity": -1}), 400, field="quantity")
    assert_problem(server.request("POST", "/v1/quota/check",
                                  {"tenant": "tnt_00000000000000000000000000", "metric": "mau"}), 404)


def test_mau_subject_already_active_costs_nothing(server):
    t = make_tenant(server)["id"]
    post_events(server, [ev(t, "u%d" % i, type="user.active", subject="user-%d" % i)
                         for i in range(1000)])
    q = server.request("POST", "/v1/quota/check", {"tenant": t, "metric": "mau"})[2]
    assert q["used"] == 1000 and q["allowed"] is False
    q = server.request("POST", "/v1/quota/check", {"tenant": t, "metric": "mau", "subject": "user-7"})[2]
    assert q["allowed"] is True


def add_months_clamped(anchor, k):
    """The anchor's day and time of day, k months later, clamped to the month's end."""
    import calendar
    month0 = anchor.month - 1 + k
    year, month = anchor.year + month0 // 12, month0 % 12 + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def period_start(anchor, t):
    """The start of the monthly billing period (anniversary of `anchor`) containing t."""
    k = (t.year - anchor.year) * 12 + (t.month - anchor.month)
    while add_months_clamped(anchor, k) > t:
        k -= 1
    while add_months_clamped(anchor, k + 1) <= t:
        k += 1
    return add_months_clamped(anchor, k)


def parse_ts(text):
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


class Oracle:
    """Counts what the server must count, from what was sent, in the order sent.
    Periods follow each tenant's subscription anchor (anniversary of its start)."""

    def __init__(self, anchors):
        self.anchors = anchors  # tenant -> datetime
        self.first = {}        # key -> canonical payload of the first occurrence
        self.expected = []     # outcome per event sent
        self.periods = {}      # (tenant, period start) -> [messages, api_calls, set(users)]
        self.days = {}         # (tenant, date) -> [messages, api_calls, set(users), bytes delta]

    def send(self, e):
        key = (e["tenant"], e["source"], e["id"])
        payload = (e["type"], e["time"], json.dumps(e.get("data")), e.get("subject"))
        if key in self.first:
            self.expected.append("duplicate" if self.first[key] == payload else "conflict")
            return
        self.first[key] = payload
        self.expected.append("accepted")
        start = period_start(self.anchors[e["tenant"]], parse_ts(e["time"]))
        p = self.periods.setdefault((e["tenant"], start), [0, 0, set()])
        d = self.days.setdefault((e["tenant"], e["time"][:10]), [0, 0, set(), 0])
        q = (e.get("data") or {}).get("quantity", 1)
        if e["type"] == "message.sent":
            p[0] += q
            d[0] += q
        elif e["type"] == "api.call":
            p[1] += q
            d[1] += q
        elif e["type"] == "user.active":
            p[2].add(e["subject"])
            d[2].add(e["subject"])
        else:
            d[3] += e["data"]["bytes"]


def make_traffic(tenants, unique, dup_share, seed, base):
    rng = random.Random(seed)
    uniques = []
    for i in range(unique):
        t = tenants[rng.randrange(len(tenants))]
        when = base - dt.timedelta(seconds=rng.randrange(30 * 86400))
        kind = rng.random()
        if kind < 0.55:
            e = ev(t, "m%d" % i, time=when, data={"quantity": rng.randint(1, 5)})
        elif kind < 0.8:
            e = ev(t, "a%d" % i, type="api.call", time=when)
        elif kind < 0.97:
            e = ev(t, "u%d" % i, type="user.active", time=when, subject="user-%d" % rng.randrange(5000))
        else:
            e = ev(t, "s%d" % i, type="media.stored", time=when, data={"bytes": rng.randint(1, 10**9)})
        uniques.append(e)
    events = list(uniques)
    n_dups = int(len(uniques) * dup_share / (1 - dup_share))
    for _ in range(n_dups):
        e = dict(uniques[rng.randrange(len(uniques))])
        if rng.random() < 0.02:  # a few re-sends with changed contents: conflicts
            e["time"] = iso(dt.datetime.strptime(e["time"], "%Y-%m-%dT%H:%M:%SZ") - dt.timedelta(seconds=1))
        events.append(e)
    rng.shuffle(events)
    return events


def check_against_oracle(server, oracle, tenants, today):
    for (tenant, start), (messages, api_calls, users) in oracle.periods.items():
        u = usage(server, tenant, at=iso(start))
        assert u["period"]["start"] == iso(start), (u["period"], start)
        assert u["metrics"]["messages"]["used"] == messages, (tenant, start)
        assert u["metrics"]["api_calls"]["used"] == api_calls, (tenant, start)
        assert u["metrics"]["mau"]["used"] == len(users), (tenant, start)
    first = min(day for _, day in oracle.days)
    last = today.date().isoformat()
    for tenant in tenants:
        status, _, body = server.request(
            "GET", "/v1/tenants/%s/usage/daily?from=%s&to=%s" % (tenant, first, last))
        assert status == 200, body
        span = (dt.date.fromisoformat(last) - dt.date.fromisoformat(first)).days + 1
        assert len(body["days"]) == span > 25, (first, last, len(body["days"]))
        level = 0
        for day in body["days"]:
            m, a, users, delta = oracle.days.get((tenant, day["date"]), [0, 0, set(), 0])
            level += delta
            assert (day["messages"], day["api_calls"], day["active_users"], day["storage_bytes"]) == \
                (m, a, len(users), level), (tenant, day["date"])


def test_million_events_with_duplicates_across_restarts(tmp_path):
    """1,000,000 events, 30% re-sent (a few with changed contents), shuffled, sent
    over four server lifetimes (graceful stops and kill -9 between them): every
    aggregate equals the oracle, nothing lost, nothing counted twice."""
    seed = int(os.environ.get("CAAS_TEST_SEED") or random.randrange(1 << 30))
    print("seed", seed, "(replay with CAAS_TEST_SEED=%d)" % seed)
    # A manual clock: the traffic does not depend on the wall clock. The
    # tenants exist from Jan 1; the events fall in the 30 days after.
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    today = start + dt.timedelta(days=31)
    server = Server(tmp_path / "data", extra_env={"CAAS_BILLING_CLOCK": "manual",
                                                  "CAAS_BILLING_NOW": iso(start)}).start()
    tenants = [make_tenant(server, name="T%d" % i)["id"] for i in range(3)]
    status, _, body = server.request("POST", "/v1/clock/advance", {"to": iso(today)})
    assert status == 200, body
    server.extra_env["CAAS_BILLING_NOW"] = iso(today)  # restarts keep the time
    events = make_traffic(tenants, 700_000, 0.30, seed, start + dt.timedelta(days=30))
    assert len(events) == 1_000_000
    anchors = {}
    for t in tenants:
        status, _, sub = server.request("GET", "/v1/tenants/%s/subscription" % t)
        assert status == 200, sub
        anchors[t] = parse_ts(sub["subscription"]["anchor"])
    oracle = Oracle(anchors)
    for e in events:
        oracle.send(e)
    got = []
    parts = 4
    size = len(events) // parts
    try:
        for part in range(parts):
            chunk = events[part * size:(part + 1) * size]
            conn = server.connect()
            for i in range(0, len(chunk), 10_000):
                status, _, body = post_events(server, chunk[i:i + 10_000], NDJSON, conn=conn)
                assert status == 200, body
                got.extend(body["outcomes"])
            conn.close()
            server.stop(signal.SIGKILL if part % 2 else signal.SIGTERM)
            server.start()
        assert got == oracle.expected, "seed %d" % seed
        assert got.count("accepted") == 700_000
        check_against_oracle(server, oracle, tenants, today)
    finally:
        server.stop()


def test_kill_9_during_sustained_ingest_loses_nothing_acknowledged(tmp_path):
    server = Server(tmp_path / "data").start()
    t = make_tenant(server)["id"]
    sent = []          # every batch sent (acknowledged or not)
    acked = []         # ids of acknowledged accepted events
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w):
        conn = server.connect()
        n = 0
        while not stop.is_set():
            batch = [ev(t, "w%d-%d" % (w, n + i)) for i in range(500)]
            n += 500
            with lock:
                sent.append(batch)
            try:
                status, _, body = post_events(server, batch, conn=conn)
            except Exception:
                return
            if status == 200:
                with lock:
                    acked.extend(e["id"] for e, o in zip(batch, body["outcomes"]) if o == "accepted")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for th in threads:
        th.start()
    # The kill comes after 5,000 acknowledgements, however long that takes
    # (sanitizer builds are slow): a condition with a generous deadline.
    import time as _time
    deadline = _time.time() + 300
    while len(acked) < 5_000 and _time.time() < deadline:
        _time.sleep(0.01)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    stop.set()
    for th in threads:
        th.join()
    server.stop(signal.SIGKILL)
    assert len(acked) >= 5_000, "only %d acknowledged in 300 s" % len(acked)
    server.start()
    try:
        counted = usage(server, t)["metrics"]["messages"]["used"]
        total = sum(len(b) for b in sent)
        assert len(acked) <= counted <= total
        # Re-send everything: acknowledged events are duplicates, the rest are
        # accepted now, and the count ends exact.
        acked_set = set(acked)
        for batch in sent:
            status, _, body = post_events(server, batch)
            assert status == 200
            for e, o in zip(batch, body["outcomes"]):
                if e["id"] in acked_set:
                    assert o == "duplicate", e["id"]
                else:
                    assert o in ("accepted", "duplicate")
        assert usage(server, t)["metrics"]["messages"]["used"] == total
    finally:
        server.stop()


def test_cli_ingest_and_usage(server, tmp_path):
    t = make_tenant(server)["id"]
    path = tmp_path / "events.ndjson"
    lines = [json.dumps(ev(t, "c%d" % i, type="api.call")) for i in range(2500)]
    lines += lines[:500]                       # duplicates
    lines.append("{not json")
    lines.append("")
    lines.append(json.dumps(ev(t, "late", time=now() - dt.timedelta(days=40))))
    path.write_text("\n".join(lines) + "\n")
    env = {"PATH": os.environ.get("PATH", ""), "CAAS_BILLING_API_KEY": ADMIN_KEY}
    url = "http://127.0.0.1:%d" % server.port
    r = subprocess.run([BIN, "ingest", str(path), "--url", url, "--batch", "1000"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1, r.stderr        # some events were rejected
    assert "accepted 2,500, duplicate 500, conflict 0, rejected 2" in r.stdout, r.stdout
    assert "line 3001: rejected: malformed JSON" in r.stdout
    assert "line 3003: rejected: time" in r.stdout
    assert "events/s" in r.stderr              # the progress line
    r = subprocess.run([BIN, "ingest", "-", "--url", url, "--no-progress"], input="\n".join(lines[:10]),
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and "duplicate 10" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([BIN, "usage", t, "--url", url], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert any(l.split()[:2] == ["api_calls", "2500"] for l in r.stdout.splitlines()), r.stdout
    r = subprocess.run([BIN, "usage", t, "--url", url, "--json"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert json.loads(r.stdout)["metrics"]["api_calls"]["used"] == 2500
    r = subprocess.run([BIN, "usage", t, "--url", url], capture_output=True, text=True,
                       env={"PATH": ""}, timeout=60)
    assert r.returncode == 2 and "API key" in r.stderr
