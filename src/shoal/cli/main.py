"""The ``shoal`` command: assembles the typer app from the verb modules and runs it.

Sub-apps owned by other packages (``image``, ``server``, ``sim``, ``agent``) are imported only
when their name is the command word, so ``shoal get pods`` never loads the server. Imports of those
packages go through importlib by name: the CLI must not depend on server-side layers.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from shoal import __version__
from shoal.cli import get, logs, monitoring, node, pause, portforward, register, resources, rollout, secrets, top
from shoal.cli.common import (
    EXIT_SYSTEM,
    CliError,
    ConfigOption,
    NamespaceOption,
    Session,
    examples,
    guard,
    session,
)

LAZY_APPS: tuple[tuple[str, str, str], ...] = (
    ("shoal.cli.image", "image", "Build, pull, push and list OCI images."),
    ("shoal.cli.registry", "registry", "Log in to image registries (logins used by image pull/push/build)."),
    ("shoal.server.cli", "server", "Run the shoal API server and controllers."),
    ("shoal.sim.cli", "sim", "Simulate a fleet of hollow nodes."),
    ("shoal.agent.cli", "agent", "Run the node agent."),
    ("shoal.fleet.cli", "cluster", "Run a local fleet: a server and N agents in network namespaces."),
)
_VALUE_OPTIONS = {"--config", "-n", "--namespace"}


class _ShoalGroup(TyperGroup):
    """The root group: user-facing errors from any command become ``error: ...`` and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        return guard(lambda: TyperGroup.invoke(self, ctx))


def _root(ctx: typer.Context, config: ConfigOption = None, namespace: NamespaceOption = None) -> None:
    """shoal: run containers and wasm modules on a fleet of edge nodes."""
    ctx.obj = Session(config_path=config, namespace_flag=namespace)
    if config:  # sub-apps (sim, image) read the same config through the environment
        os.environ["SHOAL_CONFIG"] = str(config)


def _version(
    ctx: typer.Context,
    client_only: Annotated[bool, typer.Option("--client", help="Only the client version; no server needed.")]
    = False,
    config: ConfigOption = None,
) -> None:
    """Print the client version and the server's."""
    typer.echo(f"Client Version: {__version__}")
    if client_only:
        return
    info = session(ctx, None, config).client.version()
    server = info.get("version") or info.get("gitVersion") or json.dumps(info, sort_keys=True)
    typer.echo(f"Server Version: {server}")


def command_word(argv: Sequence[str]) -> str | None:
    """The verb in ``argv`` (skipping global options and their values), or None."""
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        if token == "--":
            continue
        if token.startswith("-"):
            skip = token in _VALUE_OPTIONS
            continue
        return token
    return None


def _add_lazy(app: typer.Typer, word: str | None) -> None:
    """Mount the sub-app whose name is ``word``; list the others by a stand-in that loads on use."""
    for module_name, name, summary in LAZY_APPS:
        if word == name and (module := _import(module_name)) is not None:
            app.add_typer(module.app, name=name)
        else:
            app.command(name, help=summary, add_help_option=False,
                        context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
                _stand_in(module_name, name))


def _import(module_name: str) -> Any:
    """The sub-app's module, or None when that package is not part of this build."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None
        raise


def _stand_in(module_name: str, name: str) -> Any:
    def load_and_run(ctx: typer.Context) -> None:
        module = _import(module_name)
        if module is None:
            raise CliError(f"`shoal {name}` is not available: {module_name} is missing from this installation",
                           EXIT_SYSTEM)
        module.app(args=list(ctx.args), prog_name=f"shoal {name}")

    return load_and_run


def build_app(argv: Sequence[str] = ()) -> typer.Typer:
    app = typer.Typer(cls=_ShoalGroup, add_completion=False, pretty_exceptions_enable=False,
                      no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
                      epilog=examples(["shoal apply -f web.yaml", "shoal get pods -o wide",
                                       "shoal --config /var/lib/shoal/admin.yaml get nodes"]))
    app.callback()(_root)
    resources.register(app)
    get.register(app)
    logs.register(app)
    portforward.register(app)
    pause.register(app)
    register.register(app)
    app.add_typer(node.app, name="node")
    app.add_typer(top.app, name="top")
    app.add_typer(rollout.app, name="rollout")
    app.add_typer(secrets.app, name="secrets")
    app.add_typer(monitoring.app, name="monitoring")
    app.command("version", epilog=examples(["shoal version", "shoal version --client"]))(_version)
    _add_lazy(app, command_word(argv))
    return app


def run(argv: Sequence[str] | None = None) -> None:
    """The console script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    build_app(args)(args=args, prog_name="shoal")
