"""The HTTP API, over real HTTP against the real binary."""
import json
import socket

from conftest import assert_problem, make_tenant


def test_create_tenant_and_read_it_back(server):
    t = make_tenant(server, address={"line1": "Hauptstr. 1", "city": "Berlin", "country": "DE"},
                    tax_id="DE123456789", currency="EUR")
    assert t["id"].startswith("tnt_") and len(t["id"]) == 30
    assert t["currency"] == "EUR"
    status, headers, back = server.request("GET", "/v1/tenants/" + t["id"])
    assert status == 200
    assert back == t
    assert headers["x-request-id"].startswith("req_")


def test_patch_changes_only_given_fields(server):
    t = make_tenant(server)
    status, _, u = server.request("PATCH", "/v1/tenants/" + t["id"],
                                  {"billing_email": "ap@acme.example", "tax_id": None})
    assert status == 200, u
    assert u["billing_email"] == "ap@acme.example"
    assert u["name"] == t["name"]
    assert u["tax_id"] is None
    assert_problem(server.request("PATCH", "/v1/tenants/" + t["id"], {"currency": "usd"}), 400,
                   "currency")
    assert server.request("GET", "/v1/tenants/" + t["id"])[2] == u


def test_pagination(server):
    ids = [make_tenant(server, name="T%d" % i)["id"] for i in range(7)]
    seen, after = [], None
    while True:
        path = "/v1/tenants?limit=3" + ("&starting_after=" + after if after else "")
        status, _, page = server.request("GET", path)
        assert status == 200
        seen += [t["id"] for t in page["data"]]
        if not page["has_more"]:
            break
        after = page["next_starting_after"]
    assert seen == ids
    assert_problem(server.request("GET", "/v1/tenants?limit=0"), 400, "limit")
    assert_problem(server.request("GET", "/v1/tenants?limit=abc"), 400, "limit")
    assert_problem(server.request("GET", "/v1/tenants?starting_after=x"), 400, "starting_after")
    assert_problem(server.request("GET", "/v1/tenants?colour=red"), 400, "colour")


def test_malformed_json(server):
    body = assert_problem(server.request("POST", "/v1/tenants", '{"name": "x",'), 400,
                          type_suffix="malformed-json")
    assert "line 1" in body["detail"]
    assert_problem(server.request("POST", "/v1/tenants", "[1,2]"), 400)
    assert_problem(server.request("POST", "/v1/tenants", ""), 400)
    assert server.request("GET", "/v1/tenants")[2]["data"] == []


def test_wrong_types_missing_and_unknown_fields(server):
    body = assert_problem(
        server.request("POST", "/v1/tenants",
                       {"name": 42, "billing_email": "nope", "plan": "pro",
                        "address": {"city": "Berlin", "country": "Germany", "x": 1}}),
        400, "name", type_suffix="invalid-request")
    reasons = {e["field"]: e["reason"] for e in body["errors"]}
    assert reasons["name"] == "must be a string, got a number"
    assert "e-mail" in reasons["billing_email"]
    assert reasons["plan"] == "is not a known field"
    assert reasons["address.line1"] == "is required"
    assert reasons["address.x"] == "is not a known field"
    assert "ISO 3166" in reasons["address.country"]
    assert_problem(server.request("POST", "/v1/tenants", {"name": "x"}), 400, "billing_email")
    assert_problem(server.request("POST", "/v1/tenants", {"name": "", "billing_email": "a@b.co"}),
                   400, "name")
    assert_problem(server.request("POST", "/v1/tenants",
                                  {"name": "x" * 201, "billing_email": "a@b.co"}), 400, "name")
    assert server.request("GET", "/v1/tenants")[2]["data"] == []


def test_wrong_media_type(server):
    assert_problem(server.request("POST", "/v1/tenants", "name=x", content_type="text/plain"),
                   415, "Content-Type")


def test_oversized_body(server):
    big = json.dumps({"name": "x" * (2 << 20), "billing_email": "a@b.co"})
    assert_problem(server.request("POST", "/v1/tenants", big), 413, type_suffix="body-too-large")
    assert server.request("GET", "/v1/tenants")[2]["data"] == []


def test_oversized_headers(server):
    assert_problem(server.request("GET", "/v1/tenants", headers={"X-Big": "y" * 20000}), 431)


def test_unknown_route_and_wrong_method(server):
    assert_problem(server.request("GET", "/v1/nothing-here"), 404, type_suffix="not-found")
    code, headers, _ = server.request("DELETE", "/v1/tenants")
    assert code == 405
    assert "GET" in headers["allow"] and "POST" in headers["allow"]


def test_missing_and_invalid_keys(server):
    code, headers, body = server.request("GET", "/v1/tenants", key=None)
    assert_problem((code, headers, body), 401, type_suffix="unauthenticated")
    assert headers["www-authenticate"].startswith("Bearer")
    assert_problem(server.request("GET", "/v1/tenants", key="caas_sk_wrong"), 401)
    assert_problem(server.request("GET", "/v1/tenants", headers={"Authorization": "Basic eDp5"},
                                  key=None), 401)


def test_tenant_keys_see_only_their_tenant(server):
    a = make_tenant(server, name="A")
    b = make_tenant(server, name="B")
    status, _, key = server.request("POST", "/v1/tenants/%s/api_keys" % a["id"], {"name": "portal"})
    assert status == 201
    secret = key["secret"]
    assert key["tenant_id"] == a["id"] and key["kind"] == "tenant"
    assert server.request("GET", "/v1/tenants/" + a["id"], key=secret)[0] == 200
    # Another tenant's resource is simply not there: 404, no detail.
    body = assert_problem(server.request("GET", "/v1/tenants/" + b["id"], key=secret), 404)
    assert body["detail"] == "no tenant " + b["id"]
    missing = assert_problem(server.request("GET", "/v1/tenants/tnt_01J0000000000000000000000A",
                                            key=secret), 404)
    assert set(body) == set(missing)
    assert_problem(server.request("PATCH", "/v1/tenants/" + b["id"], {"name": "pwned"}, key=secret),
                   404)
    assert server.request("GET", "/v1/tenants/" + b["id"])[2]["name"] == "B"
    listed = server.request("GET", "/v1/tenants", key=secret)[2]["data"]
    assert [t["id"] for t in listed] == [a["id"]]
    assert_problem(server.request("GET", "/v1/tenants/%s/api_keys" % b["id"], key=secret), 404)
    # Admin-only operations.
    assert_problem(server.request("POST", "/v1/tenants", {"name": "x", "billing_email": "a@b.co"},
                                  key=secret), 403)
    # Tenants cannot change their billing currency themselves.
    assert_problem(server.request("PATCH", "/v1/tenants/" + a["id"], {"currency": "EUR"},
                                  key=secret), 400, "currency")
    # A tenant key cannot revoke another tenant's key.
    _, _, kb = server.request("POST", "/v1/tenants/%s/api_keys" % b["id"])
    assert_problem(server.request("POST", "/v1/api_keys/%s/revoke" % kb["id"], key=secret), 404)
    assert server.request("GET", "/v1/tenants/" + b["id"], key=kb["secret"])[0] == 200


def test_revoked_keys_stop_working(server):
    a = make_tenant(server)
    _, _, key = server.request("POST", "/v1/tenants/%s/api_keys" % a["id"])
    assert server.request("GET", "/v1/tenants/" + a["id"], key=key["secret"])[0] == 200
    status, _, revoked = server.request("POST", "/v1/api_keys/%s/revoke" % key["id"])
    assert status == 200 and revoked["revoked_at"]
    assert_problem(server.request("GET", "/v1/tenants/" + a["id"], key=key["secret"]), 401)
    listed = server.request("GET", "/v1/tenants/%s/api_keys" % a["id"])[2]["data"]
    assert listed[0]["revoked_at"] and "secret" not in listed[0]


def test_idempotency_key_replays_and_refuses_reuse(server):
    body = {"name": "Once", "billing_email": "once@acme.example"}
    h = {"Idempotency-Key": "create-once-1"}
    s1, h1, t1 = server.request("POST", "/v1/tenants", body, headers=h)
    s2, h2, t2 = server.request("POST", "/v1/tenants", body, headers=h)
    assert s1 == s2 == 201
    assert t1 == t2
    assert h2.get("idempotent-replayed") == "true"
    assert len(server.request("GET", "/v1/tenants")[2]["data"]) == 1
    assert_problem(server.request("POST", "/v1/tenants", dict(body, name="Other"), headers=h), 422,
                   type_suffix="idempotency-key-reused")
    # Errors are replayed too, and change nothing.
    bad = {"name": 1}
    hb = {"Idempotency-Key": "bad-1"}
    assert server.request("POST", "/v1/tenants", bad, headers=hb)[0] == 400
    assert server.request("POST", "/v1/tenants", bad, headers=hb)[0] == 400
    assert len(server.request("GET", "/v1/tenants")[2]["data"]) == 1


def test_idempotent_key_creation_never_stores_the_secret(server):
    a = make_tenant(server)
    h = {"Idempotency-Key": "key-once"}
    _, _, k1 = server.request("POST", "/v1/tenants/%s/api_keys" % a["id"], {"name": "x"}, headers=h)
    _, _, k2 = server.request("POST", "/v1/tenants/%s/api_keys" % a["id"], {"name": "x"}, headers=h)
    assert k1["id"] == k2["id"]
    assert "secret" in k1 and "secret" not in k2 and k2["secret_redacted"] is True
    with open(server.data_dir + "/billing.db", "rb") as f:
        db = f.read()
    for name in ("billing.db-wal",):
        try:
            with open(server.data_dir + "/" + name, "rb") as f:
                db += f.read()
        except FileNotFoundError:
            pass
    assert k1["secret"].encode() not in db
    assert server.admin_key.encode() not in db


def test_request_id_is_echoed(server):
    code, headers, body = server.request("GET", "/v1/nope", headers={"X-Request-Id": "abc-123"})
    assert headers["x-request-id"] == "abc-123" and body["request_id"] == "abc-123"
    code, headers, _ = server.request("GET", "/healthz", headers={"X-Request-Id": "bad id!"})
    assert headers["x-request-id"].startswith("req_")


def test_keep_alive_serves_many_requests_on_one_connection(server):
    conn = server.connect()
    for _ in range(50):
        assert server.request("GET", "/healthz", key=None, conn=conn)[0] == 200
    conn.close()


def test_garbage_http_gets_a_problem(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        data = s.recv(65536).decode()
    assert data.startswith("HTTP/1.1 400")
    assert "application/problem+json" in data


def test_health_ready_and_metrics(server):
    assert server.request("GET", "/healthz", key=None)[2] == {"status": "ok"}
    assert server.request("GET", "/readyz", key=None)[2] == {"status": "ready"}
    make_tenant(server)
    server.request("GET", "/v1/nope")
    code, headers, text = server.request("GET", "/metrics", key=None)
    assert code == 200 and headers["content-type"].startswith("text/plain")
    assert 'caas_http_requests_total{method="POST",route="/v1/tenants",code="2xx"} 1' in text
    assert 'caas_http_requests_total{method="*",route="unmatched",code="4xx"} 1' in text
    assert 'caas_http_request_duration_seconds_bucket{method="POST",route="/v1/tenants",le="+Inf"} 1' in text
