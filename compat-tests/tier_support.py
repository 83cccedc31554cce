"""Object stores for tiered-storage tests, started on loopback and stopped by PID.

- "dir": a local directory (file:// URL), nothing to start.
- "azurite": Azure Blob Storage's emulator (npm package azurite, installed in
  compat-tests/node_modules by the test command); the container is created
  with azure-storage-blob before the broker starts.
- "s3": s3s-fs, a real S3 server over a directory (cargo install s3s-fs);
  a bucket is a directory under its root.

Each gives the broker its --tier-url and the environment it needs, and can
be stopped and started again on the same port (fault tests).
"""
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from fjord_proc import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
AZURITE = os.path.join(HERE, "node_modules", ".bin", "azurite-blob")
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")
S3_KEY, S3_SECRET = "fjordkey", "fjordsecret"
CONTAINER = "fjord-tier"


def missing(what):
    """Fail in CI (the test command installs everything), skip elsewhere."""
    msg = f"{what} is not installed (bash compat-tests/run-all.sh installs it)"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def wait_port(port, proc, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class Store:
    def __init__(self, kind, root):
        self.kind = kind
        self.root = str(root)
        self.port = free_port()
        self.proc = None
        self.log = None

    @property
    def url(self):
        if self.kind == "dir":
            return f"file://{self.root}/tier"
        if self.kind == "azurite":
            return f"az://{CONTAINER}/fjord"
        return f"s3://{CONTAINER}/fjord"

    @property
    def env(self):
        if self.kind == "azurite":
            return {"AZURE_STORAGE_USE_EMULATOR": "true",
                    "AZURITE_BLOB_STORAGE_URL": f"http://127.0.0.1:{self.port}"}
        if self.kind == "s3":
            return {"AWS_ENDPOINT": f"http://127.0.0.1:{self.port}", "AWS_ALLOW_HTTP": "true",
                    "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET,
                    "AWS_REGION": "us-east-1"}
        return {}

    def objects_dir(self):
        """Where the store keeps objects on disk (to count segments)."""
        if self.kind == "dir":
            return os.path.join(self.root, "tier")
        if self.kind == "s3":
            return os.path.join(self.root, "s3", CONTAINER, "fjord")
        return None

    def start(self):
        if self.kind == "dir":
            return self
        os.makedirs(self.root, exist_ok=True)
        self.log = open(os.path.join(self.root, f"{self.kind}.log"), "ab")
        if self.kind == "azurite":
            if not os.path.exists(AZURITE):
                missing("azurite")
            args = [AZURITE, "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
                    "--location", os.path.join(self.root, "azurite"), "--skipApiVersionCheck",
                    "--loose", "--silent"]
        else:
            exe = shutil.which("s3s-fs") or os.path.expanduser("~/.cargo/bin/s3s-fs")
            if not os.path.exists(exe):
                missing("s3s-fs")
            os.makedirs(os.path.join(self.root, "s3", CONTAINER), exist_ok=True)
            args = [exe, "--host", "127.0.0.1", "--port", str(self.port), "--access-key", S3_KEY,
                    "--secret-key", S3_SECRET, os.path.join(self.root, "s3")]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        wait_port(self.port, self.proc)
        if self.kind == "azurite":
            self._create_container()
        return self

    def _create_container(self):
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient
        conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                f"AccountKey={AZURITE_KEY};"
                f"BlobEndpoint=http://127.0.0.1:{self.port}/devstoreaccount1;")
        svc = BlobServiceClient.from_connection_string(conn)
        try:
            svc.create_container(CONTAINER)
        except ResourceExistsError:
            pass

    def blob_names(self):
        """Every object name in the store (Azurite: through its API)."""
        if self.kind == "azurite":
            from azure.storage.blob import BlobServiceClient
            conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                    f"AccountKey={AZURITE_KEY};"
                    f"BlobEndpoint=http://127.0.0.1:{self.port}/devstoreaccount1;")
            c = BlobServiceClient.from_connection_string(conn).get_container_client(CONTAINER)
            return [b.name for b in c.list_blobs()]
        out = []
        base = self.objects_dir()
        for d, _, files in os.walk(base):
            for f in files:
                out.append(os.path.relpath(os.path.join(d, f), base))
        return out

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.log:
            self.log.close()
            self.log = None
