"""The ``shoal server`` command."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import typer

app = typer.Typer(help="Run the shoal control plane (API, store, scheduler, controllers).",
                  invoke_without_command=True, no_args_is_help=False,
                  epilog="Examples:\n\n  $ shoal server --data-dir /var/lib/shoal/server\n\n"
                         "  $ shoal server --bind 0.0.0.0 --tls-san gw.example.net --port 6443")


@app.callback()
def server(
    data_dir: Path = typer.Option(Path("/var/lib/shoal/server"), "--data-dir",
                                  help="Where the store, certificates and tokens live."),
    port: int = typer.Option(6443, "--port", help="HTTPS port."),
    bind: str = typer.Option("127.0.0.1", "--bind", help="Address to listen on (0.0.0.0 for all)."),
    policy: str = typer.Option("BestFit", "--scheduling-policy",
                               help="Cluster default policy: FirstFit, BestFit, WorstFit, RoundRobin, "
                                    "Spread, LowLatency, EnergySaver."),
    tls_san: list[str] = typer.Option([], "--tls-san", help="Extra name or IP for the server certificate."),
    log_level: str = typer.Option("warning", "--log-level", help="debug, info, warning or error."),
    cluster_cidr: str = typer.Option("10.77.0.0/16", "--cluster-cidr", help="Pod addresses of the whole fleet."),
    node_cidr_mask: int = typer.Option(24, "--node-cidr-mask-size", help="Size of each node's pod CIDR."),
    node_cert_days: float = typer.Option(365.0, "--node-cert-days",
                                         help="Lifetime of node certificates; agents renew theirs when a third "
                                              "of it is left."),
    registry_mirror: bool = typer.Option(True, "--registry-mirror/--no-registry-mirror",
                                         help="Serve a caching pull-through registry mirror to nodes at /v2/."),
    insecure_registry: list[str] = typer.Option([], "--insecure-registry", metavar="HOST[:PORT]",
                                                help="Upstream registry the mirror reaches over plain HTTP "
                                                     "(loopback registries always are)."),
) -> None:
    """Start the server. On first start it creates DIR/admin.yaml (for the CLI), DIR/node-token
    (for agents) and DIR/secrets.key (encrypts Secrets at rest: back it up; the server will not
    start without it once Secrets exist).

    Example:

        shoal server --data-dir /tmp/shoal --port 6443

        shoal --config /tmp/shoal/admin.yaml get nodes
    """
    from shoal.model.validation import POLICIES
    from shoal.server.main import ServerOptions, node_cert_lifetime, run

    if policy not in POLICIES:
        typer.echo(f'error: --scheduling-policy "{policy}" is not one of {", ".join(POLICIES)}', err=True)
        raise typer.Exit(2)
    try:
        network = ipaddress.ip_network(cluster_cidr)
    except ValueError:
        typer.echo(f'error: --cluster-cidr "{cluster_cidr}" is not a network; e.g. 10.77.0.0/16', err=True)
        raise typer.Exit(2) from None
    if not network.prefixlen <= node_cidr_mask <= network.max_prefixlen:
        typer.echo(f"error: --node-cidr-mask-size {node_cidr_mask} must be between {network.prefixlen} and "
                   f"{network.max_prefixlen} for {cluster_cidr}", err=True)
        raise typer.Exit(2)
    if node_cert_days <= 0:
        typer.echo(f"error: --node-cert-days {node_cert_days:g} must be positive, e.g. 365", err=True)
        raise typer.Exit(2)
    try:
        node_cert_lifetime(node_cert_days)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    code = run(ServerOptions(data_dir=data_dir, bind=bind, port=port, policy=policy, tls_sans=tls_san,
                             log_level=log_level, cluster_cidr=cluster_cidr, node_cidr_mask=node_cidr_mask,
                             node_cert_days=node_cert_days,
                             registry_mirror=registry_mirror, insecure_registries=tuple(insecure_registry)))
    if code:
        raise typer.Exit(code)
