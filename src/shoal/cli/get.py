"""``shoal get``: list or read objects as tables, YAML, JSON or names, and follow changes with -w.

A list prints as ``{"kind": "List", "items": [...]}`` in JSON/YAML; one named object prints bare.
Talks only through shoal.client; table layout lives in ``render``.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from shoal.cli import render
from shoal.cli.common import (
    CliError,
    ConfigOption,
    NamespaceOption,
    Session,
    dump,
    echo,
    examples,
    parse_refs,
    render_table,
    resolve_kind,
    session,
)
from shoal.client import ApiError
from shoal.model import API_VERSION, KindInfo, parse_selector

Obj = dict[str, Any]
_MAX_RECONNECTS = 1000


class Output(StrEnum):
    WIDE = "wide"
    YAML = "yaml"
    JSON = "json"
    NAME = "name"


def _name_line(info: KindInfo, obj: Obj) -> str:
    return f"{info.singular}/{(obj.get('metadata') or {}).get('name', '')}"


def _fetch_named(s: Session, info: KindInfo, names: list[str], ns: str | None) -> tuple[list[Obj], int]:
    items, missing = [], 0
    for name in names:
        try:
            items.append(s.client.get(info, ns, name))
        except ApiError as exc:
            if exc.status_code != 404:
                raise
            typer.echo(f"error: {exc.describe()}", err=True)
            missing += 1
    return items, missing


def _print(info: KindInfo, items: list[Obj], output: Output | None, *, bare: bool, rv: str,
           all_namespaces: bool) -> list[int]:
    """Print ``items``; returns the column widths used by a table (for rows printed later by -w)."""
    if output in (Output.JSON, Output.YAML):
        if bare and len(items) == 1:
            echo(dump(items[0], output.value))
        else:
            echo(dump({"apiVersion": API_VERSION, "kind": "List", "metadata": {"resourceVersion": rv},
                       "items": items}, output.value))
        return []
    if output is Output.NAME:
        for obj in items:
            echo(_name_line(info, obj))
        return []
    wide = output is Output.WIDE
    headers = render.headers(info, wide=wide, all_namespaces=all_namespaces)
    rows = render.rows(info, items, wide=wide, all_namespaces=all_namespaces)
    text = render_table(headers, rows)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    if items:
        echo(text)
    return widths


def _padded(cells: list[str], widths: list[int]) -> str:
    return "   ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=False)).rstrip()


def _follow(s: Session, info: KindInfo, ns: str | None, rv: str, output: Output | None, widths: list[int],
            header_printed: bool, selectors: tuple[str | None, str | None], timeout: float | None,
            all_namespaces: bool) -> None:
    """Print each change as it arrives until Ctrl-C or ``timeout``; re-lists after 410 Expired."""
    deadline = None if timeout is None else time.monotonic() + timeout
    headers = render.headers(info, wide=output is Output.WIDE, all_namespaces=all_namespaces)
    for _ in range(_MAX_RECONNECTS):
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return
        try:
            for kind, obj in s.client.watch(info, ns, rv, *selectors, timeout=remaining):
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                if kind == "BOOKMARK":
                    continue
                if output in (Output.JSON, Output.YAML):
                    echo(dump(obj, output.value) if output is Output.JSON else "---\n" + dump(obj, "yaml"))
                elif output is Output.NAME:
                    echo(_name_line(info, obj))
                else:
                    if not header_printed:
                        echo(_padded(headers, widths))
                        header_printed = True
                    echo(_padded(render.row(info, obj, datetime.now(UTC), wide=output is Output.WIDE,
                                            all_namespaces=all_namespaces), widths))
        except ApiError as exc:
            if exc.status_code != 410:
                raise
            _, rv = s.client.list(info, ns, *selectors)
        pause = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
        if pause > 0:
            time.sleep(pause)  # the stream ended (server restart or idle close): resume from rv


def get(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="Kind: pods|po, deployments|deploy, nodes|no, services|svc, "
                                             "configmaps|cm, secrets, events|ev, namespaces|ns; or KIND/NAME.",
                                        show_default=False)],
    names: Annotated[list[str] | None, typer.Argument(help="Names of objects to show.", show_default=False)]
    = None,
    output: Annotated[Output | None, typer.Option("--output", "-o", help="wide, yaml, json or name.")] = None,
    selector: Annotated[str | None, typer.Option("--selector", "-l", help="Label selector, e.g. app=web,tier!=db.")]
    = None,
    field_selector: Annotated[str | None, typer.Option(help="Field selector, e.g. spec.nodeName=gw-1.")] = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="List across all namespaces.")]
    = False,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="After listing, print changes as they happen.")]
    = False,
    timeout: Annotated[float | None, typer.Option(help="With -w: stop after this many seconds.", min=0)] = None,
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Show objects as a table (or YAML, JSON, names)."""
    s = session(ctx, namespace, config)
    if "/" in kind or names:
        refs = parse_refs([kind, *(names or [])], verb="get")
        info, wanted = refs[0][0], [name for _, name in refs]
        if any(other is not info for other, _ in refs):
            raise CliError("give names of one kind at a time")
    else:
        info, wanted = resolve_kind(kind), []
    if selector:
        parse_selector(selector)
    ns = None if (all_namespaces or not info.namespaced) else s.namespace
    show_ns = all_namespaces and info.namespaced
    if wanted:
        items, missing = _fetch_named(s, info, wanted, ns)
        rv = max((str((o.get("metadata") or {}).get("resourceVersion") or "") for o in items), default="")
        fields = f"metadata.name={wanted[0]}" if len(wanted) == 1 else field_selector
    else:
        items, rv = s.client.list(info, ns, selector, field_selector)
        missing, fields = 0, field_selector
        if not items and output in (None, Output.WIDE):
            where = "" if ns is None else f" in {ns} namespace"
            typer.echo(f"No resources found{where}.", err=True)
    widths = _print(info, items, output, bare=len(wanted) == 1, rv=rv, all_namespaces=show_ns)
    if watch:
        with contextlib.suppress(KeyboardInterrupt):
            _follow(s, info, ns, rv, output, widths, bool(items), (selector, fields), timeout, show_ns)
    if missing:
        raise typer.Exit(1)


EXAMPLES = ("shoal get pods", "shoal get pods -o wide -l app=web", "shoal get deploy web -o yaml",
            "shoal get nodes -w --timeout 60", "shoal get events -A", "shoal get pod/web-7d9c-x2x -o json")


def register(app: typer.Typer) -> None:
    app.command(epilog=examples(EXAMPLES))(get)
