"""``shoal agent``: the typer entry that hands its arguments to ``shoal.agent.run``.

The run command is the callback (``invoke_without_command``), so ``shoal agent --server URL
--token TOKEN`` works; parsing and ``--help`` (with an example) are argparse's, shared with the
lean ``python -m shoal.agent`` entry, and so are the ``install`` and ``uninstall`` subcommands
(``shoal agent install --server URL --token TOKEN``), which ``run.main`` dispatches on the first
argument. It must not import server-side layers.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

__all__ = ["app"]


class _PassThrough(TyperGroup):
    """A group that hands every argument to the callback untouched (argparse parses them)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.args = list(args)
        ctx._protected_args = []
        return []


app = typer.Typer(cls=_PassThrough, add_completion=False, pretty_exceptions_enable=False)


@app.callback(invoke_without_command=True, context_settings={"help_option_names": []})
def run(ctx: typer.Context) -> None:
    """Run the node agent: join, register the Node, run the pods the server assigns to it
    (see `shoal agent --help`); `shoal agent install` / `uninstall` set it up as a service."""
    if ctx.invoked_subcommand is not None:
        return
    from shoal.agent.run import main

    raise typer.Exit(main(ctx.args))
