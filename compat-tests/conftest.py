import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fjord_proc import Broker  # noqa: E402


@pytest.fixture
def broker(tmp_path):
    """A fresh broker with 1 default partition per auto-created topic."""
    b = Broker(tmp_path / "data").start()
    yield b
    b.kill()


@pytest.fixture
def broker_factory(tmp_path):
    """Start brokers with extra flags; all are killed at teardown."""
    made = []

    def make(extra=(), data_dir=None, port=None):
        b = Broker(data_dir or (tmp_path / f"data{len(made)}"), port=port, extra=extra).start()
        made.append(b)
        return b

    yield make
    for b in made:
        b.kill()


@pytest.fixture
def time_bound():
    """Fails a test that runs past 60 s instead of letting it hang the run."""
    def on_alarm(signum, frame):
        raise TimeoutError("test exceeded its 60 s bound")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)
