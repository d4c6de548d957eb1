"""``shoal rollout status|history|undo|pause|resume|restart DEPLOYMENT``: drive Deployment rollouts.

History lives in ``DeploymentRevision`` objects the Deployment controller writes (one per pod
template, labelled ``shoal.io/deployment=NAME``); ``undo`` copies a revision's template back into
``spec.template`` (the controller then renumbers it as the newest revision, like Kubernetes).
``status`` follows the rollout with a live progress bar and exits 0 when it completed, 1 when it
failed (progress deadline exceeded, or rolled back automatically) or timed out. Reading a
Deployment's status into a verdict (``rollout_state``) and choosing an undo target
(``undo_target``) are pure. Talks to the server only through shoal.client.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from shoal.cli.common import (
    EXIT_USAGE,
    EXIT_USER,
    CliError,
    ConfigOption,
    NamespaceOption,
    Session,
    dump,
    echo,
    examples,
    render_table,
    session,
)
from shoal.client import ApiError
from shoal.model.workloads import (
    ANNOTATION_RESTARTED_AT,
    ANNOTATION_REVISION,
    LABEL_DEPLOYMENT,
    ConditionType,
    RolloutReason,
)

__all__ = ["RolloutState", "app", "history_rows", "rollout_state", "undo_target"]

Obj = dict[str, Any]
POLL_SECONDS = 0.5
REPLACE_ATTEMPTS = 5

app = typer.Typer(help="Manage Deployment rollouts: status, history, undo, pause, resume, restart.",
                  no_args_is_help=True)

DeploymentArg = Annotated[str, typer.Argument(help="The Deployment: NAME, deploy/NAME or deployment/NAME.",
                                              show_default=False)]


def deployment_name(ref: str) -> str:
    kind, slash, name = ref.partition("/")
    if not slash:
        return ref
    if kind.lower() not in ("deploy", "deployment", "deployments") or not name:
        raise CliError(f'"{ref}": give a Deployment as NAME or deploy/NAME; only Deployments have rollouts',
                       EXIT_USAGE)
    return name


@dataclass(frozen=True)
class RolloutState:
    done: bool
    failed: bool
    message: str
    want: int
    ready: int  # updated pods that are ready


def _condition(obj: Obj, kind: str) -> Obj | None:
    for item in obj.get("status", {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return None


def rollout_state(deploy: Obj) -> RolloutState:
    """Where a Deployment's rollout stands, from its spec and status (``kubectl rollout status`` rules)."""
    name = deploy.get("metadata", {}).get("name", "")
    spec, status = deploy.get("spec", {}), deploy.get("status", {})
    want = int(spec.get("replicas", 1))
    updated, ready = int(status.get("updatedReplicas", 0)), int(status.get("updatedReadyReplicas", 0))
    replicas, available = int(status.get("replicas", 0)), int(status.get("availableReplicas", 0))
    ready = min(ready, want)
    generation = int(deploy.get("metadata", {}).get("generation", 0))
    if int(status.get("observedGeneration", 0)) < generation:
        return RolloutState(False, False, "waiting for the controller to see the new spec", want, ready)
    rolled_back = _condition(deploy, ConditionType.ROLLED_BACK)
    if rolled_back is not None and rolled_back.get("status") == "True":
        return RolloutState(False, True, f'deployment "{name}" was rolled back: {rolled_back.get("message", "")}',
                            want, ready)
    progressing = _condition(deploy, ConditionType.PROGRESSING)
    if progressing is not None and progressing.get("reason") == RolloutReason.DEADLINE:
        return RolloutState(False, True, f'deployment "{name}" exceeded its progress deadline: '
                            f'{progressing.get("message", "")}', want, ready)
    if progressing is not None and progressing.get("reason") == RolloutReason.PAUSED:
        return RolloutState(False, True, f'deployment "{name}" is paused; resume it with '
                            f"`shoal rollout resume deploy/{name}`", want, ready)
    if progressing is not None and progressing.get("reason") == RolloutReason.CANARY_PAUSE:
        return RolloutState(False, False, str(progressing.get("message", "")), want, ready)
    if updated < want:
        return RolloutState(False, False, f"{updated} of {want} new pods updated", want, ready)
    if replicas > updated:
        return RolloutState(False, False, f"{replicas - updated} old pods pending termination", want, ready)
    if available < want or ready < want:
        return RolloutState(False, False, f"{min(available, ready)} of {want} updated pods available", want, ready)
    return RolloutState(True, False, f'deployment "{name}" successfully rolled out', want, ready)


def _revisions(s: Session, deploy: Obj) -> list[Obj]:
    meta = deploy.get("metadata", {})
    items, _ = s.client.list("DeploymentRevision", meta.get("namespace") or s.namespace,
                             label_selector=f"{LABEL_DEPLOYMENT}={meta.get('name', '')}")
    mine = [r for r in items if any(o.get("uid") == meta.get("uid") and o.get("controller")
                                    for o in r.get("metadata", {}).get("ownerReferences") or [])]
    return sorted(mine, key=lambda r: int(r.get("revision", 0)))


def _images(revision: Obj) -> str:
    containers = revision.get("template", {}).get("spec", {}).get("containers") or []
    return ",".join(str(c.get("image", "")) for c in containers) or "<none>"


def history_rows(revisions: Sequence[Obj], current: str) -> list[list[str]]:
    return [[str(r.get("revision", "")), "*" if str(r.get("revision", "")) == current else "", _images(r),
             r.get("changeCause") or "<none>"] for r in revisions]


def undo_target(revisions: Sequence[Obj], current: str, to_revision: int) -> Obj:
    """The revision to go back to: ``to_revision``, or (0) the newest one before the current."""
    if not revisions:
        raise CliError("no rollout history found; the controller records a revision once it sees the Deployment")
    if to_revision:
        for revision in revisions:
            if int(revision.get("revision", 0)) == to_revision:
                return revision
        known = ", ".join(str(r.get("revision")) for r in revisions)
        raise CliError(f"revision {to_revision} not found; known revisions: {known} (see `shoal rollout history`)")
    older = [r for r in revisions if str(r.get("revision", "")) != current]
    if not older:
        raise CliError("no previous revision to roll back to")
    return older[-1]


def _annotation(deploy: Obj, key: str) -> str:
    return str((deploy.get("metadata", {}).get("annotations") or {}).get(key, ""))


def status(
    ctx: typer.Context,
    deployment: DeploymentArg,
    watch: Annotated[bool, typer.Option("--watch/--no-watch", "-w", help="Follow the rollout until it ends.")]
    = True,
    timeout: Annotated[float, typer.Option("--timeout", min=0, help="Give up after this many seconds.")] = 600,
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Show a rollout's progress; exit 0 when it completed, 1 when it failed or timed out."""
    s = session(ctx, namespace, config)
    name = deployment_name(deployment)
    state = rollout_state(s.client.get("Deployment", s.namespace, name))
    if not watch or state.done or state.failed:
        _finish(state, watching=watch)
        return
    deadline = time.monotonic() + timeout
    console = Console(highlight=False)
    columns = (TextColumn(f"deployment/{name}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(state.message, total=max(state.want, 1), completed=state.ready)
        while not (state.done or state.failed) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            state = rollout_state(s.client.get("Deployment", s.namespace, name))
            progress.update(task, description=state.message, total=max(state.want, 1), completed=state.ready)
        progress.update(task, description="failed" if state.failed else "done" if state.done else "timed out")
    if not (state.done or state.failed):
        raise CliError(f'timed out after {timeout:g}s waiting for deployment "{name}": {state.message}')
    _finish(state, watching=True)


def _finish(state: RolloutState, *, watching: bool) -> None:
    if state.failed:
        raise CliError(state.message, EXIT_USER)
    echo(state.message if state.done or not watching else f"Waiting for rollout to finish: {state.message}")


def history(
    ctx: typer.Context,
    deployment: DeploymentArg,
    revision: Annotated[int, typer.Option("--revision", min=0, help="Show the pod template of this revision.")]
    = 0,
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """List a Deployment's revisions (the current one is marked *), or show one revision's template."""
    s = session(ctx, namespace, config)
    deploy = s.client.get("Deployment", s.namespace, deployment_name(deployment))
    revisions = _revisions(s, deploy)
    if revision:
        chosen = undo_target(revisions, "", revision)
        echo(f"revision {revision}:")
        echo(dump(chosen.get("template", {}), "yaml"))
        return
    echo(f"deployment.shoal/{deploy['metadata']['name']}")
    echo(render_table(["REVISION", "CURRENT", "IMAGES", "CHANGE-CAUSE"],
                      history_rows(revisions, _annotation(deploy, ANNOTATION_REVISION))))


def undo(
    ctx: typer.Context,
    deployment: DeploymentArg,
    to_revision: Annotated[int, typer.Option("--to-revision", min=0, help="The revision to go back to "
                                             "(default: the previous one).")] = 0,
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Roll back to an earlier revision: its pod template becomes spec.template again."""
    s = session(ctx, namespace, config)
    name = deployment_name(deployment)
    for attempt in range(REPLACE_ATTEMPTS):
        deploy = s.client.get("Deployment", s.namespace, name)
        target = undo_target(_revisions(s, deploy), _annotation(deploy, ANNOTATION_REVISION), to_revision)
        number = target.get("revision")
        template = target.get("template", {})
        if json.dumps(template, sort_keys=True) == json.dumps(deploy.get("spec", {}).get("template", {}),
                                                              sort_keys=True):
            echo(f"deployment.shoal/{name} skipped rollback (current template already matches revision {number})")
            return
        deploy.setdefault("spec", {})["template"] = template
        try:
            s.client.replace(deploy)
        except ApiError as exc:
            if exc.status_code == 409 and attempt + 1 < REPLACE_ATTEMPTS:
                continue
            raise
        echo(f"deployment.shoal/{name} rolled back to revision {number}")
        return


def _patch(ctx: typer.Context, ref: str, patch: Obj, done: str, namespace: str | None, config: str | None) -> None:
    s = session(ctx, namespace, config)
    name = deployment_name(ref)
    s.client.merge_patch("Deployment", s.namespace, name, patch)
    echo(f"deployment.shoal/{name} {done}")


def pause(ctx: typer.Context, deployment: DeploymentArg, namespace: NamespaceOption = None,
          config: ConfigOption = None) -> None:
    """Hold the rollout: template changes wait until resume (pods of the current revision are kept)."""
    _patch(ctx, deployment, {"spec": {"paused": True}}, "paused", namespace, config)


def resume(ctx: typer.Context, deployment: DeploymentArg, namespace: NamespaceOption = None,
           config: ConfigOption = None) -> None:
    """Resume a paused rollout; changes made while paused roll out as one revision."""
    _patch(ctx, deployment, {"spec": {"paused": False}}, "resumed", namespace, config)


def restart(ctx: typer.Context, deployment: DeploymentArg, namespace: NamespaceOption = None,
            config: ConfigOption = None) -> None:
    """Replace every pod through a rolling update (stamps the template with shoal.io/restartedAt)."""
    s = session(ctx, namespace, config)
    name = deployment_name(deployment)
    if s.client.get("Deployment", s.namespace, name).get("spec", {}).get("paused"):
        raise CliError(f"deployment {name} is paused; resume it first: shoal rollout resume deploy/{name}")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    _patch(ctx, deployment, {"spec": {"template": {"metadata": {"annotations": {ANNOTATION_RESTARTED_AT: stamp}}}}},
           "restarted", namespace, config)


EXAMPLES = {
    "status": ("shoal rollout status deploy/web", "shoal rollout status web --timeout 120 -n edge"),
    "history": ("shoal rollout history deploy/web", "shoal rollout history deploy/web --revision 2"),
    "undo": ("shoal rollout undo deploy/web", "shoal rollout undo deploy/web --to-revision 1"),
    "pause": ("shoal rollout pause deploy/web",),
    "resume": ("shoal rollout resume deploy/web",),
    "restart": ("shoal rollout restart deploy/web",),
}

for _command in (status, history, undo, pause, resume, restart):
    app.command(_command.__name__, epilog=examples(EXAMPLES[_command.__name__]))(_command)
