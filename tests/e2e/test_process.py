"""Process-level behaviour: first start, crashes, graceful shutdown, logs, CLI."""
import json
import os
import re
import signal
import subprocess
import threading
import time

import yaml

from conftest import BIN, Server, make_tenant


def test_first_start_prints_an_admin_key_once(tmp_path):
    s = Server(tmp_path / "data", admin_key=None).start()
    out = s.stdout()
    keys = re.findall(r"caas_sk_[A-Za-z0-9_-]{43}", out)
    assert len(keys) == 1, out
    s.admin_key = keys[0]
    make_tenant(s)
    assert keys[0] not in s.logs()
    s.stop()
    again = Server(tmp_path / "data", admin_key=None).start()
    assert "caas_sk_" not in again.stdout()
    again.admin_key = keys[0]
    assert len(again.request("GET", "/v1/tenants")[2]["data"]) == 1
    again.stop()


def burst(server, stop, acked, errors, failed, n_threads=4):
    """Creates tenants from several keep-alive connections until `stop`. Each
    request has a unique name; `acked` gets (name, id) of answered ones,
    `failed` the names whose request raised (no answer)."""
    def worker(w):
        conn = server.connect()
        i = 0
        while not stop.is_set():
            i += 1
            name = "w%d-%d" % (w, i)
            try:
                status, _, t = server.request(
                    "POST", "/v1/tenants", {"name": name, "billing_email": "w%d@x.example" % w},
                    conn=conn)
            except Exception:  # no answer: looked up after the restart
                failed.append(name)
                return
            if status == 201:
                acked.append((name, t["id"]))
            else:
                errors.append((status, t))
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(n_threads)]
    for t in threads:
        t.start()
    return threads


def wait_for(predicate, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


def all_tenants(server):
    stored = {}
    after = None
    while True:
        path = "/v1/tenants?limit=100" + ("&starting_after=" + after if after else "")
        status, _, page = server.request("GET", path)
        assert status == 200, page
        stored.update({t["name"]: t["id"] for t in page["data"]})
        if not page["has_more"]:
            return stored
        after = page["next_starting_after"]


def test_kill_9_during_a_burst_loses_nothing_acknowledged(tmp_path):
    s = Server(tmp_path / "data").start()
    stop, acked, errors, failed = threading.Event(), [], [], []
    threads = burst(s, stop, acked, errors, failed)
    wait_for(lambda: len(acked) >= 200, what="200 acknowledged creates")  # then kill
    s.proc.kill()  # SIGKILL: no chance to flush anything
    s.proc.wait()
    stop.set()
    for t in threads:
        t.join()
    s.stop(signal.SIGKILL)
    assert not errors, errors[:3]
    r = Server(tmp_path / "data").start()
    stored = all_tenants(r)
    missing = [name for name, _ in acked if stored.get(name) is None]
    assert not missing, "acknowledged but lost: %d of %d" % (len(missing), len(acked))
    assert all(stored[name] == tid for name, tid in acked)
    # Requests in flight at the kill may or may not be there: never twice.
    assert len(stored) <= len(acked) + len(failed)
    r.stop()


def test_sigterm_finishes_in_flight_requests_and_exits_cleanly(tmp_path):
    s = Server(tmp_path / "data").start()
    stop, acked, errors, failed = threading.Event(), [], [], []
    threads = burst(s, stop, acked, errors, failed)
    wait_for(lambda: len(acked) >= 100, what="100 acknowledged creates")
    s.proc.send_signal(signal.SIGTERM)
    code = s.proc.wait(timeout=30)
    stop.set()
    for t in threads:
        t.join()
    s.stop()  # checks the exit code (0) and that no sanitizer spoke
    assert code == 0, s.logs()[-2000:]
    assert not errors, errors[:3]
    assert '"msg":"stopped"' in s.logs()
    r = Server(tmp_path / "data").start()
    stored = all_tenants(r)
    # Every acknowledged create is there; and a graceful stop answers every
    # request it took: nothing was created without its answer.
    assert all(stored.get(name) == tid for name, tid in acked)
    unanswered = [name for name in failed if name in stored]
    assert not unanswered, "created but never answered during SIGTERM: %s" % unanswered
    r.stop()


def test_secrets_never_reach_the_logs(tmp_path):
    s = Server(tmp_path / "data").start()
    t = make_tenant(s)
    _, _, key = s.request("POST", "/v1/tenants/%s/api_keys" % t["id"])
    s.request("GET", "/v1/tenants/" + t["id"], key=key["secret"])
    s.request("GET", "/v1/tenants", key="caas_sk_guessing_wrong_key")
    s.stop()
    logs = s.logs()
    assert '"msg":"request"' in logs  # there are logs, structured
    for line in logs.splitlines():
        assert line.startswith("{") and line.endswith("}"), line
    for secret in (s.admin_key, key["secret"], "caas_sk_guessing_wrong_key"):
        assert secret not in logs
    assert "Bearer" not in logs


def cli(tmp_path, *args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("CAAS_BILLING_")}
    e.update(env or {})
    return subprocess.run([BIN, "--data-dir", str(tmp_path / "data"), *args],
                          capture_output=True, text=True, env=e, timeout=60)


def test_cli_tenants_keys_migrate_version(tmp_path):
    assert cli(tmp_path, "version").stdout.startswith("caas-billing ")
    m = cli(tmp_path, "migrate")
    assert m.returncode == 0 and "schema version" in m.stdout
    c = cli(tmp_path, "tenants", "create", "--name", "Acme", "--email", "b@acme.example")
    assert c.returncode == 0, c.stderr
    tid = re.search(r'"id":"(tnt_[0-9A-Z]{26})"', c.stdout).group(1)
    assert tid in cli(tmp_path, "tenants", "list").stdout
    assert '"name":"Acme"' in cli(tmp_path, "tenants", "show", tid).stdout
    bad = cli(tmp_path, "tenants", "create", "--name", "Acme", "--email", "nope")
    assert bad.returncode != 0 and "billing_email" in bad.stderr
    k = cli(tmp_path, "keys", "create", "--tenant", tid)
    assert k.returncode == 0 and k.stdout.startswith("caas_sk_")
    s = Server(tmp_path / "data").start()
    assert s.request("GET", "/v1/tenants/" + tid, key=k.stdout.strip())[0] == 200
    key_id = re.search(r"key (key_[0-9A-Z]{26})", k.stderr).group(1)
    assert cli(tmp_path, "keys", "revoke", key_id).returncode == 0
    s.stop()
    for sub in ([], ["serve"], ["tenants"], ["keys", "create"]):
        h = cli(tmp_path, *sub, "--help")
        assert h.returncode == 0 and "Usage" in h.stdout + h.stderr


def test_openapi_describes_exactly_the_routes(tmp_path):
    repo = os.environ["CAAS_REPO"]
    with open(os.path.join(repo, "api", "openapi.yaml")) as f:
        spec = yaml.safe_load(f)
    assert spec["openapi"].startswith("3.1")
    described = set()
    for path, ops in spec["paths"].items():
        for method in ops:
            if method in ("get", "post", "put", "patch", "delete"):
                described.add((method.upper(), path))
    out = subprocess.run([BIN, "--data-dir", str(tmp_path / "data"), "routes"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    served = {tuple(line.split(" ", 1)) for line in out.stdout.splitlines() if line}
    assert served - described == set(), "routes missing from api/openapi.yaml"
    assert described - served == set(), "described routes that do not exist"


def test_secrets_never_reach_logs_or_data_files_on_failure_paths(tmp_path):
    """At debug level, through failure paths: malformed Authorization headers,
    rejected events, idempotent replays. Marker strings in bodies and keys
    must appear in no log line and no data file."""
    marker = "zzmarker7f3a9c"
    s = Server(tmp_path / "data", extra_env={"CAAS_BILLING_LOG_LEVEL": "debug"}).start()
    t = make_tenant(s)
    # A tenant key issued with an Idempotency-Key, then replayed.
    h = {"Idempotency-Key": "issue-" + marker}
    status, _, key = s.request("POST", "/v1/tenants/%s/api_keys" % t["id"], {}, headers=h)
    assert status == 201 and key["secret"].startswith("caas_sk_")
    status, hdrs, replay = s.request("POST", "/v1/tenants/%s/api_keys" % t["id"], {}, headers=h)
    assert status == 201 and hdrs.get("idempotent-replayed") == "true"
    assert "secret" not in replay and replay["secret_redacted"] is True
    secrets = [s.admin_key, key["secret"]]
    # Malformed and wrong credentials.
    for auth in ("Bearer " + marker + "-not-a-key", "Basic " + marker, "bearer", marker,
                 "Bearer " + key["secret"] + "x"):
        status, _, _ = s.request("GET", "/v1/tenants", key=None, headers={"Authorization": auth})
        assert status == 401
    # 4xx answers to bodies that carry the marker.
    bad_event = {"specversion": "1.0", "id": marker, "source": "/" + marker, "type": "nope",
                 "time": "2026-01-01T00:00:00Z", "tenant": t["id"], marker: marker}
    status, _, _ = s.request("POST", "/v1/events", json.dumps(bad_event),
                             content_type="application/cloudevents+json")
    assert status == 422
    status, _, _ = s.request("POST", "/v1/tenants", {"name": marker, "billing_email": "nope " + marker})
    assert status == 400
    status, _, _ = s.request("POST", "/v1/tenants", "{" + marker, content_type="application/json")
    assert status == 400
    s.stop()
    logs = s.logs()
    assert '"level":"debug"' in logs or '"msg":"request"' in logs  # it did log
    for line in logs.splitlines():
        assert line.startswith("{") and line.endswith("}"), line
    for secret in secrets + [marker]:
        assert secret not in logs, secret
    assert "Bearer" not in logs and "Basic" not in logs
    # No data file holds a key secret or a refused body.
    for root, _, files in os.walk(str(tmp_path / "data")):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                data = f.read()
            for secret in secrets:
                assert secret.encode() not in data, (name, "holds a key secret")
            assert marker.encode() not in data, (name, "holds a refused request's body")
