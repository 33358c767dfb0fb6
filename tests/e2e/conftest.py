"""Fixtures that run the real caas-billing binary on a free loopback port."""
import http.client
import json
import os
import re
import signal
import subprocess
import time

import pytest

BIN = os.environ.get("CAAS_BILLING_BIN", "")
ADMIN_KEY = "caas_test_admin_" + "k" * 32


_started = []  # every process started, so that none outlives the session


@pytest.fixture(scope="session", autouse=True)
def _no_server_outlives_the_tests():
    yield
    for proc in _started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Server:
    """One caas-billing process; restartable on the same data directory."""

    def __init__(self, data_dir, admin_key=ADMIN_KEY, extra_env=None):
        assert BIN and os.path.exists(BIN), "CAAS_BILLING_BIN must point at the built binary"
        self.data_dir = str(data_dir)
        self.admin_key = admin_key
        self.extra_env = extra_env or {}
        self.proc = None
        self.port = None
        self.log_path = os.path.join(os.path.dirname(self.data_dir), "server-%d.log" % id(self))
        self.out_path = os.path.join(os.path.dirname(self.data_dir), "server-%d.out" % id(self))

    def start(self, preexec_fn=None, args=()):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAAS_BILLING_")}
        if self.admin_key:
            env["CAAS_BILLING_ADMIN_KEY"] = self.admin_key
        env.update(self.extra_env)
        self.log = open(self.log_path, "ab")
        self.out = open(self.out_path, "ab")
        self.log_offset = os.path.getsize(self.log_path)
        # Port 0: the kernel picks a free port, the server logs it (no race
        # between choosing a port and binding it).
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data_dir, *args],
            stdout=self.out, stderr=self.log, env=env, preexec_fn=preexec_fn)
        _started.append(self.proc)
        self.port = None
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + self.logs())
            if self.port is None:
                m = re.search(r'"msg":"serving".*?"port":(\d+)', self.logs()[self.log_offset:])
                if m:
                    self.port = int(m.group(1))
                else:
                    time.sleep(0.02)
                    continue
            try:
                status, _, _ = self.request("GET", "/healthz", key=None)
                if status == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not become healthy: " + self.logs())

    def stop(self, sig=signal.SIGTERM, timeout=60, check=True):
        """Stops the server. A SIGTERM must end it with exit 0; no run may print
        a sanitizer report (ASan, UBSan, LeakSanitizer, ThreadSanitizer)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        code = self.proc.returncode if self.proc else None
        self.log.close()
        self.out.close()
        if check:
            logs = self.logs()
            assert "Sanitizer" not in logs and "runtime error:" not in logs, logs[-4000:]
            if sig == signal.SIGTERM:
                assert code == 0, "exit %s: %s" % (code, logs[-4000:])
        return code

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def connect(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(self, method, path, body=None, key="admin", headers=None, conn=None,
                content_type="application/json"):
        """Returns (status, headers dict lower-case, parsed JSON or text)."""
        h = {}
        if key == "admin":
            key = self.admin_key
        if key is not None:
            h["Authorization"] = "Bearer " + key
        if body is not None:
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            if content_type:
                h["Content-Type"] = content_type
        h.update(headers or {})
        own = conn is None
        c = conn or self.connect()
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            raw = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            if own:
                c.close()
        ctype = hdrs.get("content-type", "")
        data = json.loads(raw) if "json" in ctype and raw else raw.decode("utf-8", "replace")
        return r.status, hdrs, data


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path / "data").start()
    yield s
    s.stop()


def make_tenant(server, name="Acme GmbH", email="billing@acme.example", **extra):
    body = {"name": name, "billing_email": email}
    body.update(extra)
    status, _, t = server.request("POST", "/v1/tenants", body)
    assert status == 201, t
    return t


def assert_problem(resp, status, field=None, type_suffix=None):
    code, headers, body = resp
    assert code == status, body
    assert headers["content-type"] == "application/problem+json"
    assert body["status"] == status
    assert body["type"].startswith("urn:caas-billing:problem:")
    assert body["title"] and body["detail"]
    assert body["request_id"] == headers["x-request-id"]
    if type_suffix:
        assert body["type"].endswith(":" + type_suffix), body["type"]
    if field is not None:
        fields = [e["field"] for e in body.get("errors", [])]
        assert field in fields, body
    return body
