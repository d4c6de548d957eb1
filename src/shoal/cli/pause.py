"""``shoal pause POD`` and ``shoal unpause POD``: freeze and thaw a pod's containers on its node.

Declarative, like ``cordon``: the commands only set or remove the pod's ``shoal.io/paused: "true"``
annotation; the pod's agent freezes its containers (cgroup freezer) while it is there, so a pause
survives agent restarts and server outages. They talk to the server only through shoal.client and
must not wait for the agent.
"""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.cli.common import EXIT_USAGE, CliError, ConfigOption, NamespaceOption, echo, examples, session
from shoal.model.pod import ANNOTATION_PAUSED

__all__ = ["register"]

PodArg = Annotated[str, typer.Argument(help="The pod (NAME or pod/NAME).", show_default=False)]


def _pod_name(ref: str) -> str:
    kind, slash, name = ref.partition("/")
    if not slash:
        return ref
    if kind not in ("pod", "pods", "po") or not name:
        raise CliError(f'"{ref}": give a pod name (web) or pod/web; only pods can be paused', EXIT_USAGE)
    return name


def _set_paused(ctx: typer.Context, ref: str, paused: bool, namespace: str | None, config: str | None) -> str:
    s = session(ctx, namespace, config)
    name = _pod_name(ref)
    current = s.client.get("Pod", s.namespace, name)
    annotations = (current.get("metadata") or {}).get("annotations") or {}
    verb = "paused" if paused else "unpaused"
    if (str(annotations.get(ANNOTATION_PAUSED, "")).lower() == "true") == paused:
        return f"pod/{name} already {verb}"
    s.client.merge_patch("Pod", s.namespace, name,
                         {"metadata": {"annotations": {ANNOTATION_PAUSED: "true" if paused else None}}})
    return f"pod/{name} {verb}"


def pause(ctx: typer.Context, pod: PodArg, namespace: NamespaceOption = None, config: ConfigOption = None) -> None:
    """Freeze all containers of a pod (cgroup freezer); its probes stop until it is unpaused."""
    echo(_set_paused(ctx, pod, True, namespace, config))


def unpause(ctx: typer.Context, pod: PodArg, namespace: NamespaceOption = None, config: ConfigOption = None) -> None:
    """Thaw a paused pod's containers; they carry on where they stopped."""
    echo(_set_paused(ctx, pod, False, namespace, config))


PAUSE_EXAMPLES = ("shoal pause web", "shoal -n plant-a pause pod/sensor-reader-5x2k",
                  "shoal get pod web -o yaml   # status.conditions: Paused True")
UNPAUSE_EXAMPLES = ("shoal unpause web", "shoal -n plant-a unpause pod/sensor-reader-5x2k")


def register(app: typer.Typer) -> None:
    app.command("pause", epilog=examples(PAUSE_EXAMPLES))(pause)
    app.command("unpause", epilog=examples(UNPAUSE_EXAMPLES))(unpause)
