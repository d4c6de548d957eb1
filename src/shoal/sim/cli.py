"""The ``shoal sim`` commands: simulated fleets for demos, tests and benchmarks."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import typer

app = typer.Typer(help="Simulate parts of a fleet.", no_args_is_help=True)


@app.command("nodes")
def nodes(
    count: int = typer.Option(..., "--count", min=1, max=200_000, help="How many hollow nodes."),
    cpu: str = typer.Option("4", "--cpu", help="CPU per node, e.g. 4 or 3500m."),
    memory: str = typer.Option("8Gi", "--memory", help="Memory per node, e.g. 8Gi."),
    pods: int = typer.Option(110, "--pods", help="Pods per node."),
    zones: str = typer.Option("a,b,c", "--zones", help="Comma-separated zones, assigned round-robin."),
    arch: str = typer.Option("amd64", "--arch", help="amd64, arm64 or arm."),
    prefix: str = typer.Option("sim", "--prefix", help="Node name prefix."),
    duration: float = typer.Option(0, "--duration", help="Stop after this many seconds (0 = until Ctrl-C)."),
    config: Path | None = typer.Option(None, "--config", help="Admin config (default: $SHOAL_CONFIG, "
                                       "~/.shoal/config.yaml)."),
) -> None:
    """Register COUNT hollow nodes that heartbeat and report their pods Running.

    Example:

        shoal sim nodes --count 1000 --cpu 4 --memory 8Gi --zones a,b,c
    """
    from shoal.client import ClientError, load_config
    from shoal.model.quantity import QuantityError, parse_bytes, parse_cpu_millis
    from shoal.sim.nodes import FleetSpec, HollowFleet

    try:
        parse_cpu_millis(cpu)
        parse_bytes(memory)
    except QuantityError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if arch not in ("amd64", "arm64", "arm"):
        typer.echo(f'error: --arch "{arch}" is not one of amd64, arm64, arm', err=True)
        raise typer.Exit(2)
    try:
        client_config = load_config(str(config) if config else None)
    except ClientError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    spec = FleetSpec(count=count, cpu=cpu, memory=memory, pods=pods,
                     zones=tuple(z for z in zones.split(",") if z), arch=arch, prefix=prefix)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if duration:
            loop.call_later(duration, stop.set)
        typer.echo(f"simulating {count} nodes ({prefix}-*); Ctrl-C to stop")
        await HollowFleet(client_config, spec).run(stop)

    try:
        asyncio.run(main())
    except* ClientError as group:
        typer.echo(f"error: {group.exceptions[0]}", err=True)
        raise typer.Exit(3) from None
