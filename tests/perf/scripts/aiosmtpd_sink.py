"""aiosmtpd as a peer of the benchmark suite (tests/perf/run --peers aiosmtpd): accepts and
discards every message, the plain accept-all server a user could pick instead of smtpe.
Runs on uvloop when it is installed, as the performance issue measured it.

    python tests/perf/scripts/aiosmtpd_sink.py PORT
"""
import asyncio
import sys

from aiosmtpd.smtp import SMTP


class Discard:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 Ok: discarded"


def main(port):
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # hostname given: the default asks socket.getfqdn(), a DNS lookup, for every session
    factory = lambda: SMTP(Discard(), hostname="aiosmtpd.bench", ident="aiosmtpd")  # noqa: E731
    server = loop.run_until_complete(loop.create_server(factory, "127.0.0.1", port, backlog=512))
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main(int(sys.argv[1]))
