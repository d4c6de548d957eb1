"""``shoal secrets rotate-key``: have the server encrypt every Secret at rest under a new key.

It only asks the server (admin config required) and prints its summary; the server adds the new
key to its key file, re-encrypts each Secret and drops the old keys. It talks to the server only
through shoal.client and never sees key material or Secret values.
"""

from __future__ import annotations

from typing import Any

import typer

from shoal.cli.common import ConfigOption, echo, examples, session
from shoal.client.calls import Call, decode_body

__all__ = ["app"]

ROTATE_PATH = "/api/v1/admin/rotate-secrets-key"

app = typer.Typer(help="Manage how Secrets are encrypted at rest.", no_args_is_help=True)


def _summary(response: Any) -> dict[str, Any]:
    body = decode_body(response)
    return body if isinstance(body, dict) else {}


@app.command("rotate-key", epilog=examples(["shoal secrets rotate-key",
                                            "shoal --config /var/lib/shoal/server/admin.yaml secrets rotate-key"]))
def rotate_key(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Add a new primary key to the server's secrets key file, re-encrypt every Secret with it and
    drop the old keys. Back up the key file (DATA_DIR/secrets.key) afterwards."""
    result = session(ctx, None, config).client.run(Call("POST", ROTATE_PATH, _summary))
    dropped = ", ".join(str(k) for k in result.get("droppedKeys") or []) or "none"
    echo(f"secrets key rotated: new key {result.get('keyId', '?')}; re-encrypted {result.get('secrets', 0)} "
         f"Secrets and {result.get('events', 0)} stored events; dropped keys: {dropped}")
    key_file = result.get("keyFile")
    if key_file:
        echo(f"back up {key_file} now: without it the Secrets cannot be read")
