"""The agent's end of the node tunnel: it dials the server, so the server never dials the node.

``NodeTunnel.run`` keeps ``GET /api/v1/nodes/NAME/tunnel`` open with the node's credentials
(reconnecting with backoff; a stream silent for three keepalives is dead) and answers each request
frame with a streaming ``POST /api/v1/nodes/NAME/tunnel/ID``: ``logs`` as plain text (the current
container's log through the driver, ``previous`` from the log file of the instance before the
last restart) and ``exec`` in the framing of ``shoal.client.stream``. An ``exec-stream`` request
(an interactive exec) is answered the same way as its output is produced, while the agent pulls the
user's input (stdin, window size, end of stdin) with ``GET .../tunnel/ID/input``, again a request of
its own. A ``port-forward`` request connects to a port inside the pod's network namespace and is
answered and fed the same way (``shoal.agent.portforward``); an ``image-load`` request fetches an
image archive pushed to this node and loads it into the image store (``shoal.agent.imageload``).
A ``cancel`` frame stops a request (the user went away) and kills an interactive process.
Every request runs as a task owned by ``run``. It must not decide
anything about pods' lifecycle: it only reads logs and runs commands the server relays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import msgspec

from shoal.agent.imageload import load_pushed_image
from shoal.agent.podspec import container_id
from shoal.agent.portforward import PortUnreachable, connect_in_pod, relay
from shoal.client import ClientConfig
from shoal.client.stream import (
    EXEC_MEDIA_TYPE,
    Channel,
    FrameDecoder,
    FramingError,
    encode_frame,
    encode_result,
)
from shoal.client.transport import client_options
from shoal.model import Status, StatusDetails
from shoal.model.pod import ContainerState
from shoal.runtime.oci.logs import read_log
from shoal.runtime.protocol import ContainerNotFound, Driver, DriverError, ExecStream, LogLine, TerminalSize

if TYPE_CHECKING:
    from shoal.image.content import ContentStore

__all__ = ["NodeTunnel", "Refusal"]

log = logging.getLogger("shoal.agent.tunnel")
_IDLE_LIMIT = 45.0  # the server pings every 15 s
_RETRY_MAX = 15.0
_FLUSH_BYTES = 64 << 10
_MAX_REQUESTS = 64
_REASONS = {400: "BadRequest", 404: "NotFound", 409: "Conflict", 500: "InternalError"}


class Refusal(Exception):
    """A request the agent answers with an error Status (``code``, ``message``)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    def body(self) -> bytes:
        return msgspec.json.encode(Status(code=self.code, reason=_REASONS.get(self.code, "InternalError"),
                                          message=str(self), details=StatusDetails()))


def _text(line: LogLine) -> bytes:
    return (line.message if line.partial else line.message + "\n").encode()


async def _coalesce(lines: AsyncIterator[LogLine]) -> AsyncGenerator[bytes, None]:
    """Log lines as text chunks: everything already available goes in one chunk (up to 64 KiB)."""
    queue: asyncio.Queue[LogLine | None] = asyncio.Queue(maxsize=1024)

    async def produce() -> None:
        try:
            async for line in lines:
                await queue.put(line)
        finally:
            await queue.put(None)

    producer = asyncio.create_task(produce())
    try:
        done = False
        while not done:
            item = await queue.get()
            chunk = bytearray()
            while item is not None:
                chunk += _text(item)
                if len(chunk) >= _FLUSH_BYTES or queue.empty():
                    break
                item = queue.get_nowait()
            done = item is None
            if chunk:
                yield bytes(chunk)
        await producer  # re-raises what the log reader raised
    finally:
        if not producer.done():
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer


def previous_log(pods_dir: Path, uid: str, container: str) -> Path | None:
    """The log file of the instance before the container's last restart (logs are ``<restarts>.log``)."""
    directory = pods_dir / uid / "logs" / container
    numbers = sorted(int(p.stem) for p in directory.glob("*.log") if p.stem.isdigit()) if directory.is_dir() else []
    return directory / f"{numbers[-2]}.log" if len(numbers) >= 2 else None


class NodeTunnel:
    def __init__(self, node: str, config: ClientConfig, driver: Driver, pods_dir: Path,
                 transport: httpx.AsyncBaseTransport | None = None, images: ContentStore | None = None) -> None:
        from shoal.image.content import ContentStore

        self.node = node
        self.config = config
        self.driver = driver
        self.pods_dir = pods_dir
        # pushed images go here: the agent's image store (by default <data dir>/images, beside pods/)
        self.images = images if images is not None else ContentStore(pods_dir.parent / "images")
        self._transport = transport
        self._running: dict[str, asyncio.Task[None]] = {}
        self.connected = asyncio.Event()  # set while the tunnel stream is open

    @property
    def _path(self) -> str:
        return f"/api/v1/nodes/{self.node}/tunnel"

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the tunnel open until ``stop``; requests in flight are cancelled on the way out."""
        options = client_options(self.config, 30.0)
        # the tunnel, and per request its answer and (an interactive exec) its input stream
        options["limits"] = httpx.Limits(max_connections=2 * _MAX_REQUESTS + 1, max_keepalive_connections=4)
        async with httpx.AsyncClient(transport=self._transport, **options) as http, asyncio.TaskGroup() as group:
            stopper = group.create_task(stop.wait())
            connection = group.create_task(self._connect_loop(http, group, stop))
            await asyncio.wait({stopper, connection}, return_when=asyncio.FIRST_COMPLETED)
            for task in (connection, *self._running.values()):
                task.cancel()

    async def _connect_loop(self, http: httpx.AsyncClient, group: asyncio.TaskGroup, stop: asyncio.Event) -> None:
        delay = 0.0
        while not stop.is_set():
            try:
                async with http.stream("GET", self._path, timeout=httpx.Timeout(10.0, read=_IDLE_LIMIT)) as response:
                    if response.status_code != 200:
                        await response.aread()
                        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
                    log.info("tunnel to the server open")
                    self.connected.set()
                    delay = 0.0
                    async for line in response.aiter_lines():
                        if line.strip():
                            self._dispatch(http, group, line)
                delay = 0.5  # closed by the server (restarting, or a newer tunnel of ours replaced it)
                log.info("tunnel closed by the server; reopening in %gs", delay)
            except (httpx.HTTPError, RuntimeError) as exc:
                delay = min(max(delay * 2, 0.5), _RETRY_MAX)
                log.info("tunnel: %s (reopening in %gs)", str(exc) or type(exc).__name__, delay)
            except Exception:  # the tunnel is optional to running pods: never let it stop the agent
                delay = min(max(delay * 2, 0.5), _RETRY_MAX)
                log.exception("tunnel: unexpected error (reopening in %gs)", delay)
            finally:
                self.connected.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    def _dispatch(self, http: httpx.AsyncClient, group: asyncio.TaskGroup, line: str) -> None:
        try:
            frame: dict[str, Any] = msgspec.json.decode(line)
        except msgspec.DecodeError:
            log.warning("tunnel: ignoring a frame that is not JSON: %.200s", line)
            return
        op, request_id = frame.get("op"), str(frame.get("id") or "")
        if op == "cancel":
            task = self._running.pop(request_id, None)
            if task is not None:
                task.cancel()
        elif op in ("logs", "exec", "exec-stream", "port-forward", "image-load") and request_id:
            if len(self._running) >= _MAX_REQUESTS:
                body = self._refuse(Refusal(409, f"node {self.node} is already serving {_MAX_REQUESTS} log/exec/"
                                                 "port-forward streams; close some and retry"))
                task = group.create_task(self._post(http, request_id, 409, "application/json", body))
            else:
                task = group.create_task(self._answer(http, frame))
            self._running[request_id] = task
            task.add_done_callback(self._forget)
        elif op != "ping":
            log.debug("tunnel: ignoring frame op %r", op)

    def _forget(self, task: asyncio.Task[None]) -> None:
        for request_id, running in list(self._running.items()):
            if running is task:
                del self._running[request_id]

    @staticmethod
    async def _refuse(refusal: Refusal) -> AsyncGenerator[bytes, None]:
        yield refusal.body()

    async def _answer(self, http: httpx.AsyncClient, frame: dict[str, Any]) -> None:
        body: AsyncGenerator[bytes, None]
        try:
            if frame["op"] == "logs":
                body, media_type = await self._logs(frame), "text/plain; charset=utf-8"
            elif frame["op"] == "exec-stream":
                body, media_type = await self._exec_stream(http, frame), EXEC_MEDIA_TYPE
            elif frame["op"] == "port-forward":
                body, media_type = await self._port_forward(http, frame), EXEC_MEDIA_TYPE
            elif frame["op"] == "image-load":
                body = load_pushed_image(http, f"/api/v1/nodes/{self.node}/images/{frame['upload']}", self.images,
                                         str(frame.get("image") or ""))
                media_type = "application/x-ndjson"
            else:
                body, media_type = await self._exec(frame), EXEC_MEDIA_TYPE
            status = 200
        except Refusal as exc:
            status, media_type, body = exc.code, "application/json", self._refuse(exc)
        except (KeyError, TypeError, ValueError) as exc:
            status, media_type = 400, "application/json"
            body = self._refuse(Refusal(400, f"malformed tunnel request: {exc}"))
        except (DriverError, OSError) as exc:
            status, media_type = 500, "application/json"
            body = self._refuse(Refusal(500, f"node {self.node}: {exc}"))
        await self._post(http, str(frame["id"]), status, media_type, body)

    async def _post(self, http: httpx.AsyncClient, request_id: str, status: int, media_type: str,
                    body: AsyncGenerator[bytes, None]) -> None:
        try:
            response = await http.post(f"{self._path}/{request_id}", content=body,
                                       headers={"X-Shoal-Status": str(status), "Content-Type": media_type},
                                       timeout=httpx.Timeout(30.0, read=None, write=None))
            if response.status_code >= 400:
                log.info("tunnel: the server did not take the answer to %s: HTTP %d", request_id,
                         response.status_code)
        except httpx.HTTPError as exc:
            log.info("tunnel: answering %s failed: %s", request_id, str(exc) or type(exc).__name__)
        except Exception:  # one request's failure must not close the tunnel
            log.exception("tunnel: answering %s failed", request_id)
        finally:
            await body.aclose()

    async def _container(self, frame: dict[str, Any]) -> tuple[str, str]:
        """The runtime id of the frame's container and a label for messages; refuses unknown ones."""
        uid, name = str(frame["uid"]), str(frame["container"])
        label = f'container "{name}" in pod "{frame["pod"]}"'
        cid = container_id(uid, name)
        try:
            info = await self.driver.inspect(cid)
        except ContainerNotFound:
            raise Refusal(400, f"{label} has not started on node {self.node} yet; check `shoal get pod "
                               f"{frame['pod']}`") from None
        if frame["op"] != "logs" and info.state is not ContainerState.RUNNING:
            what = "port-forward" if frame["op"] == "port-forward" else "exec"
            raise Refusal(400, f"{label} is {info.state.value}; {what} needs it Running")
        return cid, label

    async def _logs(self, frame: dict[str, Any]) -> AsyncGenerator[bytes, None]:
        tail = frame.get("tail")
        if tail is not None and (not isinstance(tail, int) or tail < 0):
            raise ValueError(f"tail must be a non-negative integer, got {tail!r}")
        if frame.get("previous"):
            path = previous_log(self.pods_dir, str(frame["uid"]), str(frame["container"]))
            if path is None:
                raise Refusal(400, f'previous terminated container "{frame["container"]}" in pod "{frame["pod"]}" '
                                   "not found (it has not restarted)")
            return _coalesce(read_log(path, tail, False, lambda: False))
        cid, _ = await self._container(frame)
        return _coalesce(self.driver.logs(cid, tail=tail, follow=bool(frame.get("follow"))))

    async def _exec(self, frame: dict[str, Any]) -> AsyncGenerator[bytes, None]:
        command = _command(frame)
        timeout = float(frame.get("timeout") or 60)
        cid, _ = await self._container(frame)
        return self._run_exec(cid, command, timeout)

    async def _run_exec(self, cid: str, command: list[str], timeout: float) -> AsyncGenerator[bytes, None]:
        try:
            result = await self.driver.exec(cid, command, timeout=timeout)
        except DriverError as exc:
            yield encode_result(-1, str(exc))
            return
        if result.stdout:
            yield encode_frame(Channel.STDOUT, result.stdout)
        if result.stderr:
            yield encode_frame(Channel.STDERR, result.stderr)
        yield encode_result(result.exit_code)

    async def _exec_stream(self, http: httpx.AsyncClient, frame: dict[str, Any]) -> AsyncGenerator[bytes, None]:
        command = _command(frame)
        rows, cols = frame.get("rows"), frame.get("cols")
        size = None
        if rows is not None or cols is not None:
            if not all(isinstance(n, int) and 0 < n < 65536 for n in (rows, cols)):
                raise ValueError(f"rows and cols must both be integers from 1 to 65535, got {rows!r} and {cols!r}")
            size = TerminalSize(int(str(rows)), int(str(cols)))
        stdin, tty = bool(frame.get("stdin")), bool(frame.get("tty"))
        cid, _ = await self._container(frame)
        process = await self.driver.exec_stream(cid, command, tty=tty, stdin=stdin, size=size)
        return self._run_exec_stream(http, str(frame["id"]), process, stdin or tty)

    async def _run_exec_stream(self, http: httpx.AsyncClient, request_id: str, process: ExecStream,
                               reads_input: bool) -> AsyncGenerator[bytes, None]:
        """The process's output as frames, then its exit code; its input is pulled alongside."""
        pump = asyncio.create_task(self._pump_input(http, request_id, process)) if reads_input else None
        try:
            async for stream, data in process.output():
                yield encode_frame(Channel.STDERR if stream == "stderr" else Channel.STDOUT, data)
            try:
                code = await process.wait()
            except DriverError as exc:
                yield encode_result(-1, str(exc))
                return
            yield encode_result(code)
        finally:
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
            await process.close()

    async def _port_forward(self, http: httpx.AsyncClient, frame: dict[str, Any]) -> AsyncGenerator[bytes, None]:
        port = frame["port"]
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port must be an integer from 1 to 65535, got {port!r}")
        cid, _ = await self._container(frame)
        info = await self.driver.inspect(cid)
        try:
            sock = await connect_in_pod(info.pid, port)
        except PortUnreachable as exc:
            raise Refusal(400, f'pod "{frame["pod"]}" on node {self.node}: {exc}') from None
        return relay(http, f"{self._path}/{frame['id']}/input", sock)

    async def _pump_input(self, http: httpx.AsyncClient, request_id: str, process: ExecStream) -> None:
        """Feed the process what the user sends (stdin, window sizes, end of stdin) until the session ends."""
        decoder = FrameDecoder()
        try:
            async with http.stream("GET", f"{self._path}/{request_id}/input",
                                   timeout=httpx.Timeout(10.0, read=None)) as response:
                if response.status_code != 200:
                    await response.aread()
                    log.info("tunnel: no input for %s: HTTP %d", request_id, response.status_code)
                    return
                async for chunk in response.aiter_bytes():
                    for frame in decoder.feed(chunk):
                        if frame.channel is Channel.STDIN:
                            await process.write(frame.payload)
                        elif frame.channel is Channel.RESIZE:
                            process.resize(TerminalSize(*frame.size()))
                        elif frame.channel is Channel.CLOSE_STDIN:
                            await process.close_stdin()
        except (httpx.HTTPError, FramingError, DriverError, OSError) as exc:
            log.info("tunnel: input for %s stopped: %s", request_id, str(exc) or type(exc).__name__)


def _command(frame: dict[str, Any]) -> list[str]:
    command = frame["command"]
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise ValueError("command must be a non-empty list of strings")
    return command
