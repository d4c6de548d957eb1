"""The ``shoal`` command line: a kubectl-like CLI over shoal.client (typer + rich).

One module per verb group; ``main.run`` is the console script. The CLI imports only
shoal.client and shoal.model; server-side packages are reached by module name, lazily.
"""

__all__ = ["run"]


def run() -> None:
    """Run the ``shoal`` command with ``sys.argv``."""
    from shoal.cli.main import run as main_run

    main_run()
