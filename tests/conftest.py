"""Fixtures shared by several test modules."""
import pytest

from smtpe.loop import Loop


@pytest.fixture
def loop():
    """A fresh event loop, closed after the test."""
    loop = Loop()
    yield loop
    loop.close()
