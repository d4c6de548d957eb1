"""``shoal register SERVICE ADDRESS:PORT``: put an instance that is not a pod (a PLC, a camera, an
external service) behind a Service as an EndpointRegistration, and optionally keep it alive.

The command creates or updates the registration (server-side apply), then renews it by writing
``status.renewTime`` (PUT .../endpointregistrations/NAME/status). With ``--heartbeat`` it renews
every ttl/3 until Ctrl-C or SIGTERM, re-creating the registration if it expired meanwhile (say,
after a network outage). It talks to the server only through shoal.client and holds no state.
"""

from __future__ import annotations

import ipaddress
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated, Any

import typer

from shoal.cli.common import EXIT_USAGE, CliError, ConfigOption, NamespaceOption, echo, examples, session
from shoal.client import ApiError, Client, ServerUnreachable
from shoal.model.endpointregistration import DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS

__all__ = ["parse_address", "parse_ttl", "register", "registration"]

FIELD_MANAGER = "shoal-register"
_DURATION = re.compile(r"^(?P<value>\d+)(?P<unit>s|m|h)?$")
_UNITS = {"s": 1, "m": 60, "h": 3600}

REGISTER_EXAMPLES = (
    "shoal register plc 192.0.2.7:502   # named plc-192-0-2-7-502, ttl 30s",
    "shoal -n plant-a register plc 192.0.2.7:502 --name plc-7 --ttl 1m --heartbeat",
    "shoal register cam '[2001:db8::7]:554' --weight 3",
    "shoal get epreg   # spec and status.renewTime / status.expiresAt",
)
EPILOG = examples(REGISTER_EXAMPLES) + (
    "\n\n  Without the CLI: renew by PUT .../endpointregistrations/NAME/status with a new"
    " status.renewTime; the curl calls are in docs/api.md, \"Endpoint registrations\".")


def parse_address(text: str) -> tuple[str, int]:
    """``192.0.2.7:502`` or ``[2001:db8::7]:502`` as (address, port); a usage error otherwise."""
    host, sep, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise CliError(f'"{text}": write an IPv6 address in brackets, e.g. [2001:db8::7]:502', EXIT_USAGE)
    if not sep or not host:
        raise CliError(f'"{text}" is not ADDRESS:PORT; e.g. 192.0.2.7:502', EXIT_USAGE)
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise CliError(f'"{host}" is not an IP address; give an IPv4 or IPv6 literal like 192.0.2.7 '
                       "(host names are not resolved)", EXIT_USAGE) from None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise CliError(f'"{port_text}" in "{text}" is not a port; use 1-65535', EXIT_USAGE)
    return address, int(port_text)


def parse_ttl(text: str) -> int:
    """``30s``, ``2m``, ``1h`` or plain seconds, within 1s-24h."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise CliError(f'--ttl "{text}" is not a duration; write it like 30s, 2m or 1h', EXIT_USAGE)
    seconds = int(match.group("value")) * _UNITS[match.group("unit") or "s"]
    if not 1 <= seconds <= MAX_TTL_SECONDS:
        raise CliError(f"--ttl {text} is out of range; use 1s-24h", EXIT_USAGE)
    return seconds


def default_name(service: str, address: str, port: int) -> str:
    return f"{service}-{re.sub(r'[^0-9a-f]', '-', address.lower())}-{port}"


def registration(service: str, address: str, port: int, *, name: str, namespace: str, ttl: int,
                 weight: int | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"service": service, "address": address, "port": port, "ttlSeconds": ttl}
    if weight is not None:
        spec["weight"] = weight
    return {"apiVersion": "shoal/v1", "kind": "EndpointRegistration",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _renew(client: Client, desired: dict[str, Any]) -> None:
    """One heartbeat: write status.renewTime; re-create the registration when it expired meanwhile."""
    body = {**desired, "status": {"renewTime": _now()}}
    try:
        client.put_status(body)
    except ApiError as exc:
        if exc.status_code != 404:
            raise
        client.apply(desired, FIELD_MANAGER)
        client.put_status({**desired, "status": {"renewTime": _now()}})
        echo(f"endpointregistration.shoal/{desired['metadata']['name']} had expired; registered again")


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while the block runs; the old handlers come back after."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _heartbeat(client: Client, desired: dict[str, Any], ttl: int) -> None:
    interval = max(ttl / 3, 0.2)
    name = desired["metadata"]["name"]
    echo(f"heartbeating every {interval:.1f}s; Ctrl-C to stop")
    with _stop_on_signals() as stop:
        while not stop.wait(interval):
            try:
                _renew(client, desired)
            except (ApiError, ServerUnreachable) as exc:
                message = exc.describe() if isinstance(exc, ApiError) else str(exc)
                echo(f"warning: heartbeat failed ({message}); retrying in {interval:.1f}s")
    echo(f"stopped heartbeating; endpointregistration.shoal/{name} expires {ttl}s after its last heartbeat")


def register_instance(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(metavar="SERVICE", help="The Service the instance joins (same namespace).",
                                           show_default=False)],
    endpoint: Annotated[str, typer.Argument(metavar="ADDRESS:PORT",
                                            help="Where it listens: 192.0.2.7:502 or [2001:db8::7]:502.",
                                            show_default=False)],
    name: Annotated[str | None, typer.Option("--name", help="Registration name (default: SERVICE-ADDRESS-PORT).",
                                             show_default=False)] = None,
    ttl: Annotated[str, typer.Option("--ttl", help="Removed after this long without a heartbeat (1s-24h).")]
    = f"{DEFAULT_TTL_SECONDS}s",
    weight: Annotated[int | None, typer.Option("--weight", min=0, max=1000,
                                               help="Share of traffic for Weighted Services (0-1000).",
                                               show_default=False)] = None,
    heartbeat: Annotated[bool, typer.Option("--heartbeat", help="Keep renewing every ttl/3 until Ctrl-C.")]
    = False,
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Register an instance that is not a pod behind SERVICE; it is removed when heartbeats stop for --ttl."""
    address, port = parse_address(endpoint)
    seconds = parse_ttl(ttl)
    s = session(ctx, namespace, config)
    reg_name = name or default_name(service, address, port)
    desired = registration(service, address, port, name=reg_name, namespace=s.namespace, ttl=seconds,
                           weight=weight)
    _, result = s.client.apply(desired, FIELD_MANAGER)
    s.client.put_status({**desired, "status": {"renewTime": _now()}})
    echo(f"endpointregistration.shoal/{reg_name} {result} ({service} -> {endpoint}, ttl {seconds}s)")
    if heartbeat:
        _heartbeat(s.client, desired, seconds)


def register(app: typer.Typer) -> None:
    app.command("register", epilog=EPILOG)(register_instance)
