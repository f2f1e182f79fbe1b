"""Real servers on loopback for tests: in a thread with its own event loop (``ServerThread``)
or as an ``alerts serve`` subprocess that can be killed with SIGKILL (``ServeProcess``); port 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import grpc

from alerts.api.server import App, build_server
from alerts.config import Config
from alerts.market.base import MarketSource
from alerts.v1 import service_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]     # the repository: ``tests`` is importable from it


class ServerThread:
    """Runs ``build_server(config)`` on a private loop; ``stop()`` shuts it down gracefully."""

    def __init__(self, config: Config,
                 sources: Mapping[str, MarketSource] | None = None) -> None:
        self.config = config
        self.sources = sources
        self.loop = asyncio.new_event_loop()
        self.app: App | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.app = self.loop.run_until_complete(build_server(self.config, self.sources))
            self.loop.run_until_complete(self.app.start())
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        assert self.app is not None, "server did not start in 30 s"
        return self

    @property
    def port(self) -> int:
        assert self.app is not None
        return self.app.port

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def call(self, coro):  # type: ignore[no-untyped-def]
        """Run a coroutine on the server's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def stop(self) -> None:
        if self.app is not None:
            self.call(self.app.stop(grace=1.0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)


def server_config(tmp_path: Path, **overrides: object) -> Config:
    base = Config(grpc_listen="127.0.0.1:0", metrics_listen="", ws_listen="",
                  store_url=f"sqlite:///{tmp_path / 'alerts.db'}", shutdown_grace_s=1.0)
    return replace(base, **overrides)  # type: ignore[arg-type]


@contextmanager
def running_server(config: Config) -> Iterator[tuple[ServerThread, service_pb2_grpc.AlertServiceStub]]:
    server = ServerThread(config).start()
    channel = grpc.insecure_channel(server.target)
    try:
        yield server, service_pb2_grpc.AlertServiceStub(channel)
    finally:
        channel.close()
        server.stop()


class ServeProcess:
    """``alerts serve`` as a subprocess (store ``store_url``, settings ``ALERTS_*`` in ``env``).

    ``clock_shift_s`` moves the wall clock its polled market sources read ahead
    (``tests/support/shifted_clock.py``).
    """

    def __init__(self, store_url: str, *, clock_shift_s: float | None = None,
                 **env: str) -> None:
        command = ["-m", "alerts.cli"]
        if clock_shift_s is not None:
            command = ["-m", "tests.support.shifted_clock", repr(clock_shift_s)]
            env = {"PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p), **env}
        self.proc = subprocess.Popen(
            [sys.executable, *command, "serve", "--grpc-listen", "127.0.0.1:0",
             "--metrics-listen", "", "--ws-listen", "", "--store", store_url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, GRPC_VERBOSITY="NONE", **env))
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("alerts: gRPC on 127.0.0.1:"), (
            line, self.proc.stderr.read() if self.proc.stderr else "")
        port = int(line.split("127.0.0.1:")[1].split(",")[0])
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = service_pb2_grpc.AlertServiceStub(self.channel)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.channel.close()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(60) == 0
        self.channel.close()
