"""A real SMTP server for the e-mail tests (Debian's python3-aiosmtpd):
STARTTLS with the given certificate, AUTH PLAIN/LOGIN with one user, each
message saved as a file in --dir. Recipients at refuse.example are refused
for good (550). Prints "port N" once it listens."""
import argparse
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Save:
    def __init__(self, directory):
        self.dir = directory
        self.n = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.endswith("@refuse.example"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        path = os.path.join(self.dir, "%04d.eml" % self.n)
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(path + ".meta", "w") as f:
            f.write("from=%s\nto=%s\ntls=%s\nauth=%s\n" % (
                envelope.mail_from, ",".join(envelope.rcpt_tos), bool(session.ssl),
                session.authenticated))
        os.rename(path + ".tmp", path)
        return "250 Message accepted"


class AnyPort(Controller):
    """Listens on a port the kernel picks (port 0): the controller's
    readiness check connects to the port actually bound."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        return super()._trigger_server()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    a = p.parse_args()

    def auth(server, session, envelope, mechanism, data):
        ok = isinstance(data, LoginPassword) and data.login.decode() == a.user and \
            data.password.decode() == a.password
        return AuthResult(success=ok)

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    c = AnyPort(Save(a.dir), hostname="127.0.0.1", port=0, tls_context=ctx,
                   require_starttls=True, authenticator=auth, auth_required=True,
                   auth_require_tls=True)
    c.start()
    print("port %d" % c.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()


if __name__ == "__main__":
    sys.exit(main())
