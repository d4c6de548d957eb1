"""The object verbs that are not ``get``: apply, delete, describe and scale.

Each validates locally what it can (manifests, kinds, names) before talking to the server and
prints kubectl-like one-liners (``deployment.shoal/web created``). Talks only through shoal.client.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from shoal.cli.common import (
    EXIT_USAGE,
    CliError,
    ConfigOption,
    NamespaceOption,
    echo,
    examples,
    kind_label,
    parse_refs,
    resolve_kind,
    session,
)
from shoal.cli.details import describe as describe_text
from shoal.cli.manifests import load_manifests
from shoal.client import ApiError
from shoal.model import API_VERSION, KindInfo, decode_object

FilesOption = Annotated[list[str] | None, typer.Option(
    "--filename", "-f", help="A manifest file, a directory of them, or - for stdin (repeatable).")]


def apply(
    ctx: typer.Context,
    filename: FilesOption = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-R", help="Descend into sub-directories.")] = False,
    field_manager: Annotated[str, typer.Option(help="Name of the field manager for server-side apply.")]
    = "shoal-cli",
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Create or update objects from YAML/JSON manifests (server-side apply).

    Every document is validated locally first; if any is invalid nothing is sent.
    """
    if not filename:
        raise CliError("give the manifests with -f FILE, -f DIR or -f - (stdin)", EXIT_USAGE)
    s = session(ctx, namespace, config)
    manifests = load_manifests(filename, sys.stdin, recursive=recursive, namespace=s.namespace_flag)
    for manifest in manifests:
        _, result = s.client.apply(manifest.placed(s.namespace_flag), field_manager=field_manager)
        echo(f"{kind_label(manifest.info)}/{manifest.name} {result}")


def create(
    ctx: typer.Context,
    args: Annotated[list[str] | None, typer.Argument(help="namespace NAME", show_default=False)] = None,
    filename: FilesOption = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-R", help="Descend into sub-directories.")] = False,
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Create objects from manifests (an existing object is an error; see apply), or a namespace."""
    if bool(filename) == bool(args):
        raise CliError("give either -f FILE or namespace NAME, e.g. shoal create namespace edge", EXIT_USAGE)
    s = session(ctx, namespace, config)
    if args:
        if len(args) != 2 or resolve_kind(args[0]).kind != "Namespace":
            raise CliError("only `shoal create namespace NAME` takes a name; create other kinds with -f FILE",
                           EXIT_USAGE)
        ns_obj = {"apiVersion": API_VERSION, "kind": "Namespace", "metadata": {"name": args[1]}}
        decode_object(ns_obj)  # a bad name is a ValidationError: "metadata.name: ... did you mean ..."
        s.client.create(ns_obj)
        echo(f"namespace.shoal/{args[1]} created")
        return
    manifests = load_manifests(filename or [], sys.stdin, recursive=recursive, namespace=s.namespace_flag)
    for manifest in manifests:
        s.client.create(manifest.placed(s.namespace_flag))
        echo(f"{kind_label(manifest.info)}/{manifest.name} created")


def delete(
    ctx: typer.Context,
    args: Annotated[list[str] | None, typer.Argument(help="KIND NAME... or KIND/NAME...", show_default=False)]
    = None,
    filename: FilesOption = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-R", help="Descend into sub-directories.")] = False,
    ignore_not_found: Annotated[bool, typer.Option(help="Treat a missing object as deleted.")] = False,
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete objects by kind and name, or those described in manifests."""
    if bool(filename) == bool(args):
        raise CliError("give either -f FILE or KIND NAME..., e.g. shoal delete deploy web", EXIT_USAGE)
    s = session(ctx, namespace, config)
    targets: list[tuple[KindInfo, str | None, str]]
    if filename:
        manifests = load_manifests(filename, sys.stdin, recursive=recursive, namespace=s.namespace_flag)
        targets = [(m.info, m.namespace or s.namespace, m.name) for m in manifests]
    else:
        targets = [(info, s.namespace, name) for info, name in parse_refs(args or [], verb="delete")]
    failed = 0
    for info, ns, name in targets:
        try:
            s.client.delete(info, ns if info.namespaced else None, name)
        except ApiError as exc:
            if exc.status_code != 404:
                raise
            if not ignore_not_found:
                typer.echo(f"error: {exc.describe()}", err=True)
                failed += 1
            continue
        echo(f'{kind_label(info)} "{name}" deleted')
    if failed:
        raise typer.Exit(1)


def describe(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="Kind (pod, deploy, node, ...) or KIND/NAME.", show_default=False)],
    names: Annotated[list[str] | None, typer.Argument(help="Names of the objects.", show_default=False)] = None,
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Show an object's details, conditions, containers and recent events."""
    s = session(ctx, namespace, config)
    now = datetime.now(UTC)
    for i, (info, name) in enumerate(parse_refs([kind, *(names or [])], verb="describe")):
        ns = s.namespace if info.namespaced else None
        obj = s.client.get(info, ns, name)
        try:
            events, _ = s.client.list("Event", ns, field_selector=f"involvedObject.name={name},"
                                                                  f"involvedObject.kind={info.kind}")
        except ApiError as exc:
            events = []
            typer.echo(f"warning: could not list events: {exc.message}", err=True)
        if i:
            echo()
        echo(describe_text(obj, events, now))


def scale(
    ctx: typer.Context,
    args: Annotated[list[str], typer.Argument(help="deploy/NAME or deployment NAME.", show_default=False)],
    replicas: Annotated[int, typer.Option("--replicas", min=0, help="The desired number of pods.",
                                          show_default=False)],
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Set the number of replicas of a Deployment."""
    s = session(ctx, namespace, config)
    for info, name in parse_refs(args, verb="scale"):
        if info.kind != "Deployment":
            raise CliError(f"a {info.kind} cannot be scaled; only deployments have replicas")
        s.client.scale(s.namespace, name, replicas)
        echo(f"{kind_label(info)}/{name} scaled")


EXAMPLES = {
    "apply": ("shoal apply -f web.yaml", "shoal apply -f manifests/ -n staging", "cat web.yaml | shoal apply -f -"),
    "create": ("shoal create namespace edge", "shoal create -f web.yaml -n edge"),
    "delete": ("shoal delete pod web-7d9c-x2x", "shoal delete deploy/web svc/web", "shoal delete -f web.yaml"),
    "describe": ("shoal describe pod web-7d9c-x2x", "shoal describe node gw-17", "shoal describe deploy/web"),
    "scale": ("shoal scale deploy/web --replicas 5", "shoal scale deployment web --replicas 0 -n staging"),
}


def register(app: typer.Typer) -> None:
    for command in (apply, create, delete, describe, scale):
        app.command(epilog=examples(EXAMPLES[command.__name__]))(command)
