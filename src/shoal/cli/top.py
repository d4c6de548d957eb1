"""``shoal top nodes|pods``: recent CPU and memory use, like ``kubectl top``.

Reads the server's metrics API (``/apis/metrics.shoal.io/v1``), which holds the usage samples agents
push every 10 s, and the Nodes' allocatable resources for the percentages. Turning the answers into
table rows is pure (``node_rows``, ``pod_rows``); the commands talk to the server only through
shoal.client and must not import server-side layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer

from shoal.cli.common import CliError, ConfigOption, NamespaceOption, echo, examples, render_table, session
from shoal.client import calls
from shoal.model.quantity import QuantityError, parse_bytes, parse_cpu_millis

__all__ = ["app", "cpu_millis", "format_memory", "node_rows", "pod_rows"]

Obj = dict[str, Any]
METRICS_BASE = "/apis/metrics.shoal.io/v1"
PUSH_SECONDS = 10
UNKNOWN = "<unknown>"
_MI = 1 << 20

app = typer.Typer(help="Show CPU and memory use of nodes and pods (pushed by agents every 10 s).",
                  no_args_is_help=True)


def cpu_millis(quantity: Any) -> int:
    try:
        return parse_cpu_millis(str(quantity or "0"))
    except QuantityError:
        return 0


def memory_bytes(quantity: Any) -> int:
    try:
        return parse_bytes(str(quantity or "0"))
    except QuantityError:
        return 0


def format_memory(size: int) -> str:
    """Mi like kubectl, but Ki below 1 Mi so a small, non-zero working set does not read as 0."""
    return f"{size // _MI}Mi" if size >= _MI or size == 0 else f"{size // 1024}Ki"


def _percent(used: int, total: int) -> str:
    return f"{round(100 * used / total)}%" if total > 0 else UNKNOWN


def _not_yet(node: str) -> str:
    return f"metrics not available yet for node {node}: its agent pushes every {PUSH_SECONDS} s"


def node_rows(nodes: Sequence[Obj], metrics: Sequence[Obj]) -> tuple[list[list[str]], list[str]]:
    """Table rows (NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%) and the names of nodes without metrics."""
    by_name = {(m.get("metadata") or {}).get("name"): m for m in metrics}
    rows, missing = [], []
    for node in sorted(nodes, key=lambda n: str((n.get("metadata") or {}).get("name"))):
        name = str((node.get("metadata") or {}).get("name") or "")
        status = node.get("status") or {}
        allocatable = status.get("allocatable") or status.get("capacity") or {}
        found = by_name.get(name)
        if found is None:
            missing.append(name)
            rows.append([name, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN])
            continue
        usage = found.get("usage") or {}
        cpu, memory = cpu_millis(usage.get("cpu")), memory_bytes(usage.get("memory"))
        rows.append([name, f"{cpu}m", _percent(cpu, cpu_millis(allocatable.get("cpu"))),
                     format_memory(memory), _percent(memory, memory_bytes(allocatable.get("memory")))])
    return rows, missing


def pod_rows(metrics: Sequence[Obj], *, all_namespaces: bool, containers: bool,
             sort_by: str = "") -> tuple[list[str], list[list[str]]]:
    """Headers and rows for ``shoal top pods`` (per pod, or per container with ``containers``)."""
    entries: list[tuple[str, str, str, int, int]] = []  # namespace, pod, container, cpu millis, bytes
    for item in metrics:
        meta = item.get("metadata") or {}
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
        parts = [(str(c.get("name") or ""), cpu_millis((c.get("usage") or {}).get("cpu")),
                  memory_bytes((c.get("usage") or {}).get("memory"))) for c in item.get("containers") or []]
        if containers:
            entries += [(ns, name, c, cpu, mem) for c, cpu, mem in parts]
        else:
            entries.append((ns, name, "", sum(p[1] for p in parts), sum(p[2] for p in parts)))
    if sort_by == "cpu":
        entries.sort(key=lambda e: -e[3])
    elif sort_by == "memory":
        entries.sort(key=lambda e: -e[4])
    else:
        entries.sort(key=lambda e: e[:3])
    headers = [*(["NAMESPACE"] if all_namespaces else []), *(["POD", "NAME"] if containers else ["NAME"]),
               "CPU(cores)", "MEMORY(bytes)"]
    rows = [[*([e[0]] if all_namespaces else []), e[1], *([e[2]] if containers else []), f"{e[3]}m",
             format_memory(e[4])] for e in entries]
    return headers, rows


def _get(ctx: typer.Context, path: str, config: str | None, params: dict[str, str] | None = None) -> Obj:
    def parse(response: httpx.Response) -> Obj:
        body = calls.decode_body(response)
        return body if isinstance(body, dict) else {}

    return session(ctx, None, config).client.run(calls.Call("GET", path, parse, params=params or {}))


SortOption = Annotated[str, typer.Option("--sort-by", help="Sort by cpu or memory (highest first).")]


@app.command("nodes", epilog=examples(["shoal top nodes", "shoal top nodes gw-17"]))
def nodes(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this node.", show_default=False)] = None,
    config: ConfigOption = None,
) -> None:
    """Show CPU (cores) and memory (bytes) of nodes, and their share of each node's allocatable."""
    client = session(ctx, None, config).client
    if name:
        node_list = [client.get("Node", None, name)]
        metrics = [_get(ctx, f"{METRICS_BASE}/nodes/{quote(name, safe='')}", config)]
    else:
        node_list, _ = client.list("Node")
        metrics = list(_get(ctx, f"{METRICS_BASE}/nodes", config).get("items") or [])
    if not node_list:
        raise CliError("no nodes are registered yet: start an agent with `shoal agent --server URL --token TOKEN`")
    rows, missing = node_rows(node_list, metrics)
    if len(missing) == len(rows):
        raise CliError("; ".join(_not_yet(m) for m in missing))
    for node in missing:
        typer.echo(f"warning: {_not_yet(node)}", err=True)
    echo(render_table(["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"], rows))


@app.command("pods", epilog=examples(["shoal top pods", "shoal top pods -n plant-a --containers",
                                      "shoal top pods -A --sort-by memory", "shoal top pods -l app=web"]))
def pods(
    ctx: typer.Context,
    namespace: NamespaceOption = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Pods of every namespace.")]
    = False,
    containers: Annotated[bool, typer.Option("--containers", help="One row per container.")] = False,
    selector: Annotated[str | None, typer.Option("--selector", "-l", help="Label selector, e.g. app=web.")]
    = None,
    sort_by: SortOption = "",
    config: ConfigOption = None,
) -> None:
    """Show CPU (cores) and memory (bytes) of pods, from the usage samples their nodes push."""
    if sort_by not in ("", "cpu", "memory"):
        raise CliError(f'--sort-by must be "cpu" or "memory" (got "{sort_by}")', 2)
    ns = session(ctx, namespace, config).namespace
    path = f"{METRICS_BASE}/pods" if all_namespaces else f"{METRICS_BASE}/namespaces/{quote(ns, safe='')}/pods"
    params = {"labelSelector": selector} if selector else {}
    items = list(_get(ctx, path, config, params).get("items") or [])
    where = "any namespace" if all_namespaces else f"namespace {ns}"
    if not items:
        running, _ = session(ctx, None, config).client.list("Pod", None if all_namespaces else ns,
                                                              label_selector=selector)
        if not running:
            raise CliError(f"no pods found in {where}")
        nodes_of = sorted({str((p.get("spec") or {}).get("nodeName") or "") for p in running} - {""})
        if not nodes_of:
            raise CliError(f"no pod in {where} is scheduled to a node yet, so none has metrics")
        raise CliError("; ".join(_not_yet(n) for n in nodes_of))
    headers, rows = pod_rows(items, all_namespaces=all_namespaces, containers=containers, sort_by=sort_by)
    echo(render_table(headers, rows))
