"""Start and stop a real `fjord` process for tests.

Every test talks to a broker on a free 127.0.0.1 port with its own data
directory, and stops it by PID. The binary is $FJORD_BIN, or the workspace's
target/debug/fjord (the test command builds it first).
"""
import os
import signal
import socket
import subprocess
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FJORD_BIN = os.environ.get("FJORD_BIN", os.path.join(REPO, "target", "debug", "fjord"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One fjord process. `extra` are additional command-line flags."""

    def __init__(self, data_dir, port=None, extra=(), log_path=None, registry=False, env=None):
        self.data_dir = str(data_dir)
        self.env = dict(env or {})
        self.port = port or free_port()
        self.extra = list(extra)
        # The schema registry listens only where a test asks for it (its
        # default port would clash between brokers).
        self.registry_port = free_port() if registry else None
        # Every test broker serves /metrics and health on its own port.
        self.admin_port = free_port()
        self.proc = None
        self.log_path = log_path or os.path.join(self.data_dir + ".log")
        self._log = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def registry_url(self):
        return f"http://127.0.0.1:{self.registry_port}" if self.registry_port else None

    @property
    def admin_url(self):
        return f"http://127.0.0.1:{self.admin_port}"

    def admin_args(self):
        if any(a.startswith("--admin-listen") for a in self.extra):
            return []
        return ["--admin-listen", f"127.0.0.1:{self.admin_port}"]

    def registry_args(self):
        if any(a.startswith("--registry-listen") for a in self.extra):
            return []
        if self.registry_port:
            return ["--registry-listen", f"127.0.0.1:{self.registry_port}"]
        return ["--registry-listen", "off"]

    def start(self, timeout_s=30.0):
        os.makedirs(self.data_dir, exist_ok=True)
        self._log = open(self.log_path, "ab")
        args = [FJORD_BIN, "--data-dir", self.data_dir,
                "--listen", self.bootstrap, "--advertise", self.bootstrap] + self.registry_args() + self.admin_args() + self.extra
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env={**os.environ, **self.env})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fjord exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"fjord did not listen on {self.bootstrap} within {timeout_s}s")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s=20.0):
        """Graceful stop (SIGTERM); SIGKILL if it does not exit in time. Returns exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        if self._log:
            self._log.close()
        return code

    def kill(self):
        """SIGKILL: an unclean stop, as a crash would leave it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        if self._log:
            self._log.close()

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0
