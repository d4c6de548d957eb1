"""``shoal node cordon|uncordon|drain``: take a node out of scheduling and move its pods away.

Drain works like kubectl's, on the client side: cordon, then delete the node's pods that a
controller will replace. DaemonSet pods are skipped; bare pods are refused unless --force.
The drain plan is a pure function; the commands talk to the server only through shoal.client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from shoal.cli.common import CliError, ConfigOption, echo, examples, session
from shoal.client import ApiError

Obj = dict[str, Any]

app = typer.Typer(help="Cordon, uncordon and drain nodes.", no_args_is_help=True)


@dataclass(frozen=True)
class DrainPlan:
    """Which of a node's pods drain deletes, skips (DaemonSet) and refuses (bare, without --force)."""

    delete: list[Obj] = field(default_factory=list)
    daemonset: list[Obj] = field(default_factory=list)
    bare: list[Obj] = field(default_factory=list)


def controller_of(pod: Obj) -> Obj | None:
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("controller"):
            return dict(owner)
    return None


def plan_drain(pods: Sequence[Obj], *, force: bool) -> DrainPlan:
    plan = DrainPlan()
    for pod in pods:
        owner = controller_of(pod)
        if owner is not None and owner.get("kind") == "DaemonSet":
            plan.daemonset.append(pod)
        elif owner is None and not force:
            plan.bare.append(pod)
        else:
            plan.delete.append(pod)
    return plan


def _ref(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _set_unschedulable(ctx: typer.Context, node: str, value: bool, config: str | None) -> str:
    client = session(ctx, None, config).client
    current = client.get("Node", None, node)
    verb = "cordoned" if value else "uncordoned"
    if bool((current.get("spec") or {}).get("unschedulable")) == value:
        return f"node/{node} already {verb}"
    client.merge_patch("Node", None, node, {"spec": {"unschedulable": value}})
    return f"node/{node} {verb}"


NodeArg = Annotated[str, typer.Argument(help="Name of the node.", show_default=False)]


@app.command(epilog=examples(["shoal node cordon gw-17"]))
def cordon(ctx: typer.Context, node: NodeArg, config: ConfigOption = None) -> None:
    """Mark a node unschedulable (Maintenance): no new pods are placed on it."""
    echo(_set_unschedulable(ctx, node, True, config))


@app.command(epilog=examples(["shoal node uncordon gw-17"]))
def uncordon(ctx: typer.Context, node: NodeArg, config: ConfigOption = None) -> None:
    """Make a cordoned node schedulable again."""
    echo(_set_unschedulable(ctx, node, False, config))


@app.command(epilog=examples(["shoal node drain gw-17", "shoal node drain gw-17 --force"]))
def drain(
    ctx: typer.Context,
    node: NodeArg,
    force: Annotated[bool, typer.Option(help="Also delete pods no controller will replace.")] = False,
    config: ConfigOption = None,
) -> None:
    """Cordon a node, then delete its pods so their controllers recreate them elsewhere.

    DaemonSet pods are left alone; pods without a controller are refused unless --force.
    """
    echo(_set_unschedulable(ctx, node, True, config))
    client = session(ctx, None, config).client
    pods, _ = client.list("Pod", None, field_selector=f"spec.nodeName={node}")
    plan = plan_drain(pods, force=force)
    if plan.bare:
        raise CliError("cannot delete pods that no controller manages (use --force to delete them anyway): "
                       + ", ".join(_ref(p) for p in plan.bare))
    if plan.daemonset:
        typer.echo("warning: ignoring DaemonSet-managed pods: " + ", ".join(_ref(p) for p in plan.daemonset),
                   err=True)
    for pod in plan.delete:
        meta = pod.get("metadata") or {}
        try:
            client.delete("Pod", meta.get("namespace"), meta.get("name", ""))
        except ApiError as exc:
            if exc.status_code != 404:
                raise
        echo(f"pod/{meta.get('name', '')} evicted")
    echo(f"node/{node} drained")
