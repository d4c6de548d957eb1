"""``shoal port-forward POD|svc/NAME [LOCAL:]REMOTE ...``: local TCP ports carried to ports inside a pod.

Listens on 127.0.0.1 (``--address`` to change) for each mapping (LOCAL omitted or 0: a free port,
printed in ``Forwarding from ADDRESS:LOCAL -> REMOTE``); every accepted connection becomes its own
``PortForwardStream`` through the server and the node's tunnel, relayed by two threads (the pod's
bytes to the socket, the socket's to the pod, EOF as a half-close), so one connection closing ends
only its own stream. For ``svc/NAME`` it picks a Ready pod behind the Service (its Endpoints, else
its selector) and maps the service port to the pod's targetPort, as kubectl does. Ctrl-C stops.
Talks only through ``shoal.client``; it must not decode anything but the framing defined there.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from shoal.cli.common import EXIT_USAGE, CliError, ConfigOption, NamespaceOption, examples, session
from shoal.client import ClientConfig
from shoal.client.errors import ApiError, ClientError
from shoal.client.stream import Channel, FramingError, PortForwardStream

__all__ = ["register"]

_READ_BYTES = 64 << 10


@dataclass(frozen=True, slots=True)
class Mapping:
    local: int
    remote: int | str  # a service port mapping can name the container port


def parse_mapping(text: str) -> Mapping:
    """``REMOTE``, ``LOCAL:REMOTE`` or ``:REMOTE`` (LOCAL 0 or omitted: a free port)."""
    local_text, colon, remote_text = text.rpartition(":")
    if not colon:
        local_text = ""
    try:
        local = int(local_text) if local_text else 0
        remote = int(remote_text)
    except ValueError:
        raise CliError(f'port mapping "{text}": give REMOTE, LOCAL:REMOTE or :REMOTE with port numbers '
                       "(e.g. 8080 or 5000:80)", EXIT_USAGE) from None
    if not 0 <= local <= 65535 or not 0 < remote <= 65535:
        raise CliError(f'port mapping "{text}": ports go from 1 to 65535 (LOCAL may be 0 for a free one)', EXIT_USAGE)
    return Mapping(local, remote)


def _ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    conditions = status.get("conditions") or []
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _target_port(service: dict[str, Any], port: int) -> int | str:
    ports = (service.get("spec") or {}).get("ports") or []
    for entry in ports:
        if entry.get("port") == port:
            return entry.get("targetPort") or port
    listed = ", ".join(str(p.get("port")) for p in ports) or "none"
    raise CliError(f'service "{service["metadata"]["name"]}" has no port {port}; its ports are {listed}')


def _container_port(pod: dict[str, Any], name: str) -> int:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for entry in container.get("ports") or []:
            if entry.get("name") == name:
                return int(entry["containerPort"])
    raise CliError(f'pod "{pod["metadata"]["name"]}" has no container port named "{name}" (the service\'s '
                   "targetPort)")


def _service_pod(client: Any, namespace: str, name: str) -> dict[str, Any]:
    """A Ready pod behind the Service: one of its Endpoints' ready addresses, else one its selector matches."""
    service = client.get("services", namespace, name)
    names: list[str] = []
    with contextlib.suppress(ApiError):
        endpoints = client.get("endpoints", namespace, name)
        for subset in endpoints.get("subsets") or []:
            for address in subset.get("addresses") or []:
                ref = address.get("targetRef") or {}
                if ref.get("kind", "Pod") == "Pod" and ref.get("name"):
                    names.append(ref["name"])
    for pod_name in names:
        with contextlib.suppress(ApiError):
            pod = client.get("pods", namespace, pod_name)
            if _ready(pod):
                return dict(pod)
    selector = (service.get("spec") or {}).get("selector") or {}
    if selector:
        text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        pods, _ = client.list("pods", namespace, label_selector=text)
        for pod in sorted(pods, key=lambda p: str(p["metadata"]["name"])):
            if _ready(pod):
                return dict(pod)
    raise CliError(f'service "{name}" has no Ready pod to forward to; check `shoal get endpoints {name}` and '
                   "`shoal get pods`")


def _resolve(client: Any, namespace: str, target: str, mappings: list[Mapping]) -> tuple[str, list[Mapping]]:
    """The pod to forward to and the mappings with pod ports (services map to their targetPort)."""
    kind, slash, name = target.partition("/")
    if not slash:
        return target, mappings
    if kind in ("pod", "pods", "po") and name:
        return name, mappings
    if kind not in ("svc", "service", "services") or not name:
        raise CliError(f'"{target}": give a pod (web, pod/web) or a service (svc/web)', EXIT_USAGE)
    pod = _service_pod(client, namespace, name)
    resolved = []
    for mapping in mappings:
        remote = _target_port(client.get("services", namespace, name), int(mapping.remote))
        resolved.append(Mapping(mapping.local, _container_port(pod, remote) if isinstance(remote, str) else remote))
    return str(pod["metadata"]["name"]), resolved


def _shutdown(sock: socket.socket, how: int) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(how)


def _to_pod(stream: PortForwardStream, conn: socket.socket) -> None:
    """The connection's bytes to the pod; its EOF half-closes the pod's side."""
    try:
        while data := conn.recv(_READ_BYTES):
            if not stream.send(data):
                return
        stream.close_stdin()
    except (ClientError, OSError):
        return  # the other direction reports how the connection ended


def _serve_connection(config: ClientConfig, namespace: str, pod: str, remote: int, conn: socket.socket) -> None:
    try:
        with conn, PortForwardStream(config, namespace, pod, remote) as stream:
            sender = threading.Thread(target=_to_pod, args=(stream, conn), name="port-forward-in", daemon=True)
            sender.start()
            for frame in stream.frames():
                if frame.channel is Channel.STDOUT:
                    conn.sendall(frame.payload)
                elif frame.channel is Channel.RESULT:
                    code, message = frame.result()
                    if code != 0:
                        typer.echo(f"error: port {remote}: {message}", err=True)
                    break
            _shutdown(conn, socket.SHUT_RDWR)
            sender.join(timeout=5)
    except (ClientError, FramingError) as exc:
        typer.echo(f"error: forwarding a connection to port {remote} of pod {pod}: {exc}", err=True)
    except OSError:
        return  # the local client went away; its stream ends with the with block


def _accept(listener: socket.socket, serve: Any) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return  # closed: we are stopping
        threading.Thread(target=serve, args=(conn,), name="port-forward-conn", daemon=True).start()


def _listen(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot listen on {address}:{port}: {exc.strerror or exc} (pick another local port, or "
                       "0 for a free one)") from None
    sock.listen(128)
    return sock


def port_forward(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="The pod (NAME, pod/NAME) or a service (svc/NAME).",
                                          show_default=False)],
    ports: Annotated[list[str], typer.Argument(help="[LOCAL:]REMOTE port mappings (LOCAL 0 or omitted: a "
                                                    "free port).", show_default=False)],
    address: Annotated[str, typer.Option("--address", help="Local address to listen on.")] = "127.0.0.1",
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Forward local ports to ports inside a pod (through the server and its node's tunnel)."""
    mappings = [parse_mapping(text) for text in ports]
    s = session(ctx, namespace, config)
    pod_name, resolved = _resolve(s.client, s.namespace, target, mappings)
    pod = s.client.get("pods", s.namespace, pod_name)
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    if phase != "Running":
        raise CliError(f'pod "{pod_name}" is {phase}; port-forward needs it Running (see `shoal describe pod '
                       f'{pod_name}`)')
    listeners = []
    try:
        for mapping in resolved:
            listener = _listen(address, mapping.local)
            listeners.append(listener)
            shown = f"[{address}]" if ":" in address else address
            typer.echo(f"Forwarding from {shown}:{listener.getsockname()[1]} -> {mapping.remote}")
        sys.stdout.flush()
        for listener, mapping in zip(listeners, resolved, strict=True):
            def serve(conn: socket.socket, remote: int = int(mapping.remote)) -> None:
                _serve_connection(s.client.config, s.namespace, pod_name, remote, conn)

            threading.Thread(target=_accept, args=(listener, serve), name="port-forward-accept", daemon=True).start()
        threading.Event().wait()
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    finally:
        for listener in listeners:
            listener.close()


EXAMPLES = ("shoal port-forward web 8080", "shoal port-forward pod/web 5000:80 5001:443",
            "shoal port-forward svc/web :80", "shoal port-forward --address 0.0.0.0 web 8080:80")


def register(app: typer.Typer) -> None:
    app.command("port-forward", epilog=examples(EXAMPLES))(port_forward)
