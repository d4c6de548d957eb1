"""The node's wasm host: ``python -m shoal.runtime.wasm.host --root DIR``, one process for all wasm pods.

It runs outside the agent (its own session, started by the WasmDriver when absent) so wasm
workloads keep running while the agent restarts. Owns the process: one wasmtime Engine with epoch
interruption and its ticker, the single-host lock (``ROOT/host.lock``), the pid file
(``ROOT/host.pid``) and the unix socket (``ROOT/host.sock``) that serves ``Request`` JSON lines from
the driver. Instances and their lifecycle are the ``Registry``'s; it must not decide restarts.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import socketserver
import sys
import threading
from pathlib import Path
from types import FrameType

import msgspec
import wasmtime

from shoal.runtime.wasm.instance import TICK
from shoal.runtime.wasm.messages import Op, Reply, Request
from shoal.runtime.wasm.registry import Registry

__all__ = ["LOCK_FILE", "PID_FILE", "SOCKET", "main", "serve"]

SOCKET = "host.sock"
PID_FILE = "host.pid"
LOCK_FILE = "host.lock"
_MAX_LINE = 4 << 20

log = logging.getLogger("shoal.runtime.wasm.host")


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    registry: Registry


class _Connection(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        decoder = msgspec.json.Decoder(Request)
        while line := self.rfile.readline(_MAX_LINE):
            try:
                req = decoder.decode(line)
            except msgspec.DecodeError as exc:
                reply = Reply(ok=False, error=f"bad request: {exc}")
            else:
                if req.op is Op.SHUTDOWN:
                    self.wfile.write(msgspec.json.encode(Reply(ok=True)) + b"\n")
                    threading.Thread(target=self.server.shutdown, daemon=True).start()
                    return
                try:
                    reply = self.server.registry.handle(req)
                except Exception as exc:  # a bug must cost one request, not the host and its modules
                    log.exception("%s %s failed", req.op.value, req.id)
                    reply = Reply(ok=False, error=f"{req.op.value} failed inside the host: {exc}")
            self.wfile.write(msgspec.json.encode(reply) + b"\n")


def _ticker(engine: wasmtime.Engine, stop: threading.Event) -> None:
    while not stop.wait(TICK):
        engine.increment_epoch()


def serve(root: Path, cpu_window: float = 1.0) -> int:
    """Run the host on ``root`` until SIGTERM or a shutdown request; 0, or 1 if another host holds it."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)  # the socket runs modules: only the agent's user may reach it
    lock = open(root / LOCK_FILE, "a+")  # noqa: SIM115 - held for the process's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("another wasm host serves %s", root)
        return 1
    config = wasmtime.Config()
    config.epoch_interruption = True
    engine = wasmtime.Engine(config)
    registry = Registry(root, engine, cpu_window)
    stop = threading.Event()
    ticker = threading.Thread(target=_ticker, args=(engine, stop), name="epoch", daemon=True)
    ticker.start()
    sock = root / SOCKET
    sock.unlink(missing_ok=True)
    server = _Server(str(sock), _Connection)
    server.registry = registry

    def _terminate(_sig: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    (root / PID_FILE).write_text(f"{os.getpid()}\n")
    log.info("wasm host %d serving %s (wasmtime %s)", os.getpid(), sock, registry.cache.version)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        registry.stop_all("the wasm host shut down")
        stop.set()
        server.server_close()
        sock.unlink(missing_ok=True)
        (root / PID_FILE).unlink(missing_ok=True)
        ticker.join(1.0)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shoal.runtime.wasm.host",
                                     description="Run the node's WebAssembly modules for the shoal agent.")
    parser.add_argument("--root", required=True, type=Path, help="state dir: socket, pid file, cache, instances")
    parser.add_argument("--cpu-window", type=float, default=1.0,
                        help="seconds over which a module's CPU use is held to its limit (default 1)")
    args = parser.parse_args(argv)
    if args.cpu_window <= 0:
        parser.error("--cpu-window must be a positive number of seconds, e.g. 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return serve(args.root, args.cpu_window)


if __name__ == "__main__":
    sys.exit(main())
