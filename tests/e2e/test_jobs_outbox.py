"""The outbox, the scheduler and the job queue end to end: a preview announces
nothing, every event names its actor, a kill -9 between a change and its relay
announces it exactly once after the restart, and the jobs API and CLI."""
import os
import signal
import subprocess
import threading
import time

from conftest import ADMIN_KEY, BIN, Server, assert_problem, make_tenant


def events(server, tenant, key="admin"):
    status, _, page = server.request("GET", "/v1/tenants/%s/billing-events?limit=100" % tenant,
                                     key=key)
    assert status == 200, page
    return page["data"]


def test_a_preview_announces_nothing_and_changes_nothing(server):
    t = make_tenant(server)["id"]
    before = server.request("GET", "/v1/tenants/%s/subscription" % t)[2]
    status, _, p = server.request("POST", "/v1/tenants/%s/subscription/preview" % t, {"plan": "pro"})
    assert status == 200 and p["effect"] == "upgraded", p
    assert p["lines"] and p["lines"][0]["amount"]["amount_minor"] > 0
    assert [e for e in events(server, t) if e["type"].startswith("subscription.")] == []
    after = server.request("GET", "/v1/tenants/%s/subscription" % t)[2]
    assert after == before  # nothing written: same plan, same audit, same lines
    # The CLI's --preview is the same request.
    env = dict(os.environ, CAAS_BILLING_URL="http://127.0.0.1:%d" % server.port,
               CAAS_BILLING_API_KEY=ADMIN_KEY)
    r = subprocess.run([BIN, "subscriptions", "change", t, "pro", "--preview"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [e for e in events(server, t) if e["type"].startswith("subscription.")] == []
    assert server.request("GET", "/v1/tenants/%s/subscription" % t)[2] == before


def test_every_event_names_its_actor(server):
    t = make_tenant(server)["id"]
    status, _, k = server.request("POST", "/v1/tenants/%s/api_keys" % t, {})
    assert status == 201, k
    status, _, up = server.request("POST", "/v1/tenants/%s/subscription" % t, {"plan": "pro"},
                                   key=k["secret"])
    assert status == 200, up
    status, _, c = server.request("POST", "/v1/tenants/%s/subscription/cancel" % t, {})
    assert status == 200, c
    by_type = {e["type"]: e for e in events(server, t, key=k["secret"])}
    assert by_type["subscription.upgraded"]["data"]["actor"] == k["id"]
    admin_id = by_type["subscription.cancel_scheduled"]["data"]["actor"]
    assert admin_id.startswith("key_") and admin_id != k["id"]
    audit = server.request("GET", "/v1/tenants/%s/subscription" % t)[2]["audit"]
    assert [a["actor"] for a in audit][-2:] == [k["id"], admin_id]


def test_kill_9_between_changes_and_their_relay_announces_each_exactly_once(tmp_path):
    s = Server(tmp_path / "data").start()
    tenants = [make_tenant(s, name="T%d" % i)["id"] for i in range(300)]
    acked, lock, stop = set(), threading.Lock(), threading.Event()

    def upgrade(mine):
        for t in mine:
            if stop.is_set():
                return
            try:
                status, _, r = s.request("POST", "/v1/tenants/%s/subscription" % t, {"plan": "pro"})
            except OSError:
                return  # the server is gone
            if status == 200:
                with lock:
                    acked.add(t)

    threads = [threading.Thread(target=upgrade, args=(tenants[i::4],)) for i in range(4)]
    for th in threads:
        th.start()
    deadline = time.time() + 120
    while len(acked) < 100 and time.time() < deadline:
        time.sleep(0.005)
    assert len(acked) >= 100, "no progress"
    s.proc.kill()  # SIGKILL: changes in flight are cut anywhere, relays too
    s.proc.wait()
    stop.set()
    for th in threads:
        th.join()
    s.stop(signal.SIGKILL)
    r = Server(tmp_path / "data").start()
    try:
        upgraded = 0
        for t in tenants:
            plan = r.request("GET", "/v1/tenants/%s/subscription" % t)[2]["subscription"]["plan"]
            got = [e for e in events(r, t) if e["type"] == "subscription.upgraded"]
            if t in acked:
                assert plan == "pro", t  # acknowledged: never lost
            # Announced exactly when it happened: once on Pro, never on Free.
            assert len(got) == (1 if plan == "pro" else 0), (t, plan, got)
            upgraded += plan == "pro"
        assert upgraded >= len(acked)
        # The relay after the restart is the scheduler's: nothing left behind.
        assert '"msg":"scheduler_failed"' not in r.logs()
    finally:
        r.stop()


def cli(server, *args, key=ADMIN_KEY):
    env = dict(os.environ, CAAS_BILLING_URL="http://127.0.0.1:%d" % server.port,
               CAAS_BILLING_API_KEY=key)
    return subprocess.run([BIN, "jobs", *args], env=env, capture_output=True, text=True, timeout=60)


def test_jobs_api_and_cli(server):
    status, _, page = server.request("GET", "/v1/jobs")
    assert status == 200 and page["object"] == "list" and page["data"] == [], page
    assert server.request("GET", "/v1/jobs?state=done&type=invoice.finalize&limit=5")[0] == 200
    assert_problem(server.request("GET", "/v1/jobs?state=sleeping"), 400, field="state")
    assert_problem(server.request("GET", "/v1/jobs?colour=red"), 400, field="colour")
    assert_problem(server.request("GET", "/v1/jobs?limit=0"), 400, field="limit")
    assert_problem(server.request("GET", "/v1/jobs/job_01KQGDBJ003B66ZG8VHEJ5BCXV"), 404)
    assert_problem(server.request("GET", "/v1/jobs/nope"), 400, field="id")
    assert_problem(server.request("POST", "/v1/jobs/job_01KQGDBJ003B66ZG8VHEJ5BCXV/retry"), 404)
    t = make_tenant(server)["id"]
    status, _, k = server.request("POST", "/v1/tenants/%s/api_keys" % t, {})
    assert_problem(server.request("GET", "/v1/jobs", key=k["secret"]), 403)
    r = cli(server, "list")
    assert r.returncode == 0 and r.stdout.strip() == "no jobs", (r.stdout, r.stderr)
    r = cli(server, "list", "--state", "sleeping")
    assert r.returncode == 2 and "400" in r.stderr and "state" in r.stderr
    r = cli(server, "show", "job_01KQGDBJ003B66ZG8VHEJ5BCXV")
    assert r.returncode == 2 and "404" in r.stderr
    r = cli(server, "retry", "job_01KQGDBJ003B66ZG8VHEJ5BCXV")
    assert r.returncode == 2 and "404" in r.stderr
    r = cli(server, "list", key=k["secret"])
    assert r.returncode == 2 and "403" in r.stderr
