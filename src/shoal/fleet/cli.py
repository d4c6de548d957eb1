"""``shoal cluster up|down|ls``: a local fleet of a server and N agents, each agent in its own
network namespace on this machine (like kind or k3d for Kubernetes).

Parses options and prints; the work is in ``up`` and ``down``. Runs as root.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from shoal.fleet.layout import default_root

__all__ = ["app"]

app = typer.Typer(help="Run a local fleet: a server and N agents in network namespaces of this machine.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]})

NameOption = typer.Option("local", "--name", help="The fleet's name; nodes are NAME-1 … NAME-N.")
RootOption = typer.Option(None, "--root", help="Where fleets keep their state (default: $SHOAL_CLUSTER_ROOT or "
                          "/var/lib/shoal/clusters).")


def _config_target(config: Path | None) -> Path:
    from shoal.client.config import ENV_VAR, default_path

    if config is not None:
        return config
    return Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else default_path()


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@app.command("up")
def up_command(
    nodes: int = typer.Option(3, "--nodes", min=1, max=50, help="How many nodes (agents)."),
    name: str = NameOption,
    config: Path | None = typer.Option(None, "--config", help="Write the admin config here (default: "
                                       "$SHOAL_CONFIG or ~/.shoal/config.yaml, where the CLI looks)."),
    root: Path | None = RootOption,
    timeout: float = typer.Option(90, "--timeout", help="Seconds to wait for every node to be Online."),
    agent_arg: list[str] = typer.Option([], "--agent-arg", help="An extra flag for every agent (repeatable), "
                                        "e.g. --agent-arg=--no-services."),
    labels: str = typer.Option("", "--labels", help="Labels for every node, e.g. shoal.io/zone=plant-a,tier=edge."),
) -> None:
    """Start a server and NODES agents, each in its own network namespace; return once all are Online.

    Example:

        shoal cluster up --nodes 3 && shoal get nodes

        ip netns exec shoal-local-1 ip addr    # look inside node local-1's "host"
    """
    from shoal.fleet.layout import LayoutError
    from shoal.fleet.up import FleetError, up

    if os.geteuid() != 0:
        raise _fail("shoal cluster up makes network namespaces and runs containers: run it as root")
    try:
        up(name, nodes, root or default_root(), _config_target(config), typer.echo, timeout, tuple(agent_arg), labels)
    except (FleetError, LayoutError, OSError) as exc:
        raise _fail(f"{exc}\n  hint: `shoal cluster down --name {name}` removes what was made") from None


@app.command("down")
def down_command(name: str = NameOption, root: Path | None = RootOption) -> None:
    """Stop the fleet and remove every namespace, mount, cgroup, process and file it made.

    Example:

        shoal cluster down --name local
    """
    from shoal.fleet.down import down
    from shoal.fleet.layout import LayoutError

    try:
        removed = down(name, root or default_root(), _config_target(None), typer.echo)
    except (LayoutError, OSError) as exc:
        raise _fail(str(exc)) from None
    if not removed:
        raise _fail(f'no fleet named "{name}" under {root or default_root()} (see `shoal cluster ls`)')


@app.command("ls")
def ls_command(root: Path | None = RootOption) -> None:
    """List the local fleets and whether their server runs.

    Example:

        shoal cluster ls
    """
    from shoal.fleet import procs
    from shoal.fleet.layout import FleetLayout

    base = root or default_root()
    fleets = sorted(p.parent for p in base.glob("*/fleet.json")) if base.is_dir() else []
    typer.echo(f"{'NAME':<20} {'NODES':<6} {'SERVER':<28} STATUS")
    for state in fleets:
        fleet = FleetLayout.load(state)
        running = procs.alive(fleet.server_pid_file, str(fleet.server_data_dir)) is not None
        typer.echo(f"{fleet.name:<20} {len(fleet.nodes):<6} {fleet.server_url:<28} "
                   f"{'running' if running else 'stopped'}")
