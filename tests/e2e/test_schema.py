"""The OpenAPI description and the server agree: schemathesis generates
requests from api/openapi.yaml (bounded, with a fixed seed, replayable) and
checks that no answer is a server error, and that every status code, content
type, header and body the server sends is the one the description documents.

Not checked: that every request valid by the schema is accepted
(positive_data_acceptance). The server is deliberately stricter than JSON
Schema can say in places (control characters in text, plausible e-mail
addresses, ids of the right shape), and answers those with 400 naming the
field."""
import os
import subprocess
import sys

from conftest import ADMIN_KEY, Server, make_tenant

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance")


def test_the_server_answers_as_api_openapi_yaml_says(tmp_path):
    st = os.path.join(os.path.dirname(sys.executable), "st")
    assert os.path.exists(st), "schemathesis (st) must be installed beside " + sys.executable
    s = Server(tmp_path / "data", extra_env={"CAAS_BILLING_CLOCK": "manual",
                                             "CAAS_BILLING_NOW": "2026-03-01T00:00:00Z"}).start()
    make_tenant(s)  # something to find
    seed = os.environ.get("CAAS_TEST_SEED", "20261201")
    out = subprocess.run(
        [st, "run", os.path.join(os.environ["CAAS_REPO"], "api", "openapi.yaml"),
         "--url", "http://127.0.0.1:%d" % s.port, "-H", "Authorization: Bearer " + ADMIN_KEY,
         "--checks", CHECKS, "--max-examples", "25", "--seed", seed, "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=str(tmp_path))  # its cache goes there
    report = out.stdout[-6000:] + out.stderr[-2000:]
    assert out.returncode == 0, "seed %s (replay with CAAS_TEST_SEED):\n%s" % (seed, report)
    assert " passed" in out.stdout, report
    s.stop()  # exit 0, no sanitizer report
