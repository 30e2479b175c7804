"""Fixtures shared by several test modules."""
import pytest

from smtpe._speedups.loop import Loop


@pytest.fixture
def loop():
    """A fresh event loop, closed after the test."""
    loop = Loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    """The real clamd of the test run (tests/support/clamd.py), with the EICAR signature."""
    from tests.support.clamd import shared_clamd
    server = shared_clamd(tmp_path_factory)
    if server is None:
        pytest.skip("clamd is not installed (Debian clamav-daemon, see .ci/apt-packages.txt)")
    return server


@pytest.fixture(scope="module")
def spamd(tmp_path_factory):
    """The real spamd of the test run (tests/support/spamd.py)."""
    from tests.support.spamd import shared_spamd
    server = shared_spamd(tmp_path_factory)
    if server is None:
        pytest.skip("spamd is not installed (Debian spamd and spamassassin, see .ci/apt-packages.txt)")
    return server


@pytest.fixture(scope="module")
def web():
    """A local HTTP server (tests/support/httpserver.py)."""
    from tests.support.httpserver import HttpServer
    server = HttpServer().start()
    yield server
    server.stop()
