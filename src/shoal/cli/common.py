"""What every shoal CLI command shares: the global options, the client session, resource
references (``deploy/web``), plain output helpers and the mapping of errors to exit codes.

Exit codes follow STYLE §6: 1 for user errors (bad manifest, NotFound, Conflict, invalid input),
2 for usage, 3 for server or system failures. This module must not import server-side layers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from shoal.client import ApiError, Client, ClientConfig, ConfigError, ServerUnreachable, load_config
from shoal.model import DEFAULT_NAMESPACE, KindInfo, SelectorError, UnknownKindError, ValidationError, lookup

EXIT_USER = 1
EXIT_USAGE = 2
EXIT_SYSTEM = 3

NamespaceOption = Annotated[str | None, typer.Option(
    "--namespace", "-n", help="Namespace (default: default).")]
ConfigOption = Annotated[str | None, typer.Option(
    "--config", help="Client config (default: $SHOAL_CONFIG, then ~/.shoal/config.yaml).")]


class CliError(Exception):
    """A problem the user can fix; ``str()`` is printed after ``error: ``."""

    def __init__(self, message: str, code: int = EXIT_USER) -> None:
        self.code = code
        super().__init__(message)


def make_client(config: ClientConfig) -> Client:
    """How sessions build their client; tests replace this to talk to an in-memory API."""
    return Client(config)


@dataclass
class Session:
    """The options in force for one command: config file and namespace, and the client built from them."""

    config_path: str | None = None
    namespace_flag: str | None = None
    _client: Client | None = field(default=None, repr=False)

    @property
    def namespace(self) -> str:
        return self.namespace_flag or DEFAULT_NAMESPACE

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = make_client(load_config(self.config_path))
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def session(ctx: typer.Context, namespace: str | None = None, config: str | None = None) -> Session:
    """The session for a command: its own -n/--config win over the ones given before the verb."""
    root = ctx.find_root()
    if not isinstance(root.obj, Session):
        root.obj = Session()
    base: Session = root.obj
    if namespace:
        base.namespace_flag = namespace
    if config and config != base.config_path:
        base.close()
        base.config_path = config
    ctx.call_on_close(base.close)
    return base


def resolve_kind(name: str) -> KindInfo:
    try:
        return lookup(name)
    except UnknownKindError as exc:
        raise CliError(str(exc)) from None


def parse_refs(args: Sequence[str], *, verb: str) -> list[tuple[KindInfo, str]]:
    """``KIND NAME...`` or ``KIND/NAME...`` as (kind, name) pairs; a usage error otherwise."""
    if not args:
        raise CliError(f"give KIND NAME or KIND/NAME, e.g. shoal {verb} pod web", EXIT_USAGE)
    if all("/" in a for a in args):
        refs = []
        for arg in args:
            kind, _, name = arg.partition("/")
            if not name:
                raise CliError(f'"{arg}" has no name after the "/"', EXIT_USAGE)
            refs.append((resolve_kind(kind), name))
        return refs
    if any("/" in a for a in args):
        raise CliError("use either KIND NAME... or KIND/NAME..., not both", EXIT_USAGE)
    info = resolve_kind(args[0])
    if len(args) < 2:
        raise CliError(f"give the name of the {info.singular}, e.g. shoal {verb} {info.singular} NAME",
                       EXIT_USAGE)
    return [(info, name) for name in args[1:]]


def kind_label(info: KindInfo) -> str:
    """``deployment.shoal`` as in ``deployment.shoal/web created``."""
    return f"{info.singular}.shoal"


def echo(text: str = "") -> None:
    typer.echo(text)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A borderless kubectl-style table as text (no wrapping, no trailing spaces)."""
    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 3, 0, 0), header_style="")
    for header in headers:
        table.add_column(header, no_wrap=True, overflow="ignore")
    for row in rows:
        table.add_row(*row)
    out = io.StringIO()
    Console(file=out, width=100_000, color_system=None, highlight=False, emoji=False).print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def dump(obj: Any, output: str) -> str:
    if output == "json":
        return json.dumps(obj, indent=2, ensure_ascii=False)
    return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True, default_flow_style=False).rstrip("\n")


def describe_error(exc: BaseException) -> tuple[str, int] | None:
    """The message and exit code for an error a user can see, or None for a bug."""
    if isinstance(exc, CliError):
        return str(exc), exc.code
    if isinstance(exc, ApiError):
        message = exc.describe()
        if exc.status_code == 401:
            message += "\n  hint: the server did not accept the token; use the admin.yaml this server wrote"
        return message, EXIT_SYSTEM if exc.is_server_fault else EXIT_USER
    if isinstance(exc, ServerUnreachable):
        return str(exc), EXIT_SYSTEM
    if isinstance(exc, ConfigError | UnknownKindError | SelectorError | ValidationError):
        return str(exc), EXIT_USER
    return None


def guard(invoke: Callable[[], Any]) -> Any:
    """Run ``invoke``; a user-visible error is printed as ``error: ...`` and becomes its exit code."""
    try:
        return invoke()
    except Exception as exc:
        described = describe_error(exc)
        if described is None:
            raise
        message, code = described
        typer.echo(f"error: {message}", err=True)
        if code == EXIT_USAGE:
            typer.echo("  (run the command with --help for usage and examples)", err=True)
        raise typer.Exit(code) from None


def examples(lines: Sequence[str]) -> str:
    """A help epilog listing example invocations, one per line."""
    return "Examples:\n\n" + "\n\n".join(f"  $ {line}" for line in lines)
