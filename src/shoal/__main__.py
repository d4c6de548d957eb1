"""``python -m shoal`` runs the CLI (same as the ``shoal`` console script)."""

from shoal.cli.main import run

run()
