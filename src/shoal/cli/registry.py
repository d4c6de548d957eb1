"""``shoal registry login|logout|ls``: the registry logins that image pull, push and build use.

Owns prompting (only on a terminal), reading a password from stdin, and the messages. A login is
checked against the registry (``GET /v2/`` and its challenge, honouring registries.yaml TLS and
insecure settings) before it is saved, so a wrong password is reported at once, not at the next
pull. Storage and lookup are ``shoal.image.credentials``; this module must not talk to the shoal
server nor import server-side layers.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, Any

import typer

from shoal.cli.common import examples
from shoal.cli.image import EXIT_USER, _fail, _run

EXIT_USAGE = 2

app = typer.Typer(
    help="Log in to image registries; `shoal image pull/push/build` use the stored logins.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

AuthfileOption = Annotated[
    str | None,
    typer.Option(
        "--authfile",
        help="Logins file; a Docker config.json or Podman auth.json works too "
        "(default $SHOAL_AUTH_FILE or ~/.config/shoal/auth.json).",
    ),
]


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _read_secret(password_stdin: bool, username: str | None, server: str) -> tuple[str, str]:
    interactive = _stdin_is_terminal()
    if password_stdin:
        if not username:
            raise _fail("--password-stdin needs --username/-u USER", EXIT_USAGE)
        password = sys.stdin.read().rstrip("\r\n")
        if not password:
            raise _fail("no password on stdin", EXIT_USER)
        return username, password
    if not interactive:
        raise _fail(
            f"cannot prompt for the password of {server}: stdin is not a terminal; "
            "pipe it with --password-stdin (and -u USER)",
            EXIT_USER,
        )
    user = username or typer.prompt("Username")
    return user, typer.prompt("Password", hide_input=True)


async def _verify(server: str, credentials: Any) -> bool:
    from shoal.image.pull import RegistryAccess
    from shoal.image.registry import RegistryClient

    access = RegistryAccess.load()
    origin = access.endpoints(server, mirrors=False)[0]
    async with RegistryClient(
        server,
        credentials=credentials,
        insecure=access.config.insecure,
        endpoint=origin.url,
        tls=access.config.host(server).tls,
        timeout=30.0,
    ) as client:
        return await client.check_login()


@app.command(epilog=examples([
    "shoal registry login registry.example:5000 -u edge",
    'echo "$TOKEN" | shoal registry login ghcr.io -u bot --password-stdin',
]))
def login(
    server: Annotated[str, typer.Argument(help="Registry host[:port]; default docker.io.")] = "docker.io",
    username: Annotated[str | None, typer.Option("--username", "-u", help="User name.")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
    authfile: AuthfileOption = None,
) -> None:
    """Check a login against the registry and store it (mode 0600)."""
    from shoal.image.auth import Credentials
    from shoal.image.credentials import AuthFile, normalize_server

    host = normalize_server(server)
    if "/" in host:
        raise _fail(f"{server!r}: give the registry as host[:port], without a path", EXIT_USER)
    user, password = _read_secret(password_stdin, username, host)
    credentials = Credentials(user, password)

    def work() -> tuple[bool, str]:
        needed = asyncio.run(_verify(host, credentials))
        store = AuthFile(authfile)
        store.set(host, credentials)
        return needed, str(store.path)

    needed, path = _run(work)
    if not needed:
        typer.echo(f"note: {host} accepts anonymous requests; the login is stored anyway", err=True)
    typer.echo(f"Login Succeeded: {user}@{host} (saved to {path})")


@app.command(epilog=examples(["shoal registry logout registry.example:5000"]))
def logout(
    server: Annotated[str, typer.Argument(help="Registry host[:port].")],
    authfile: AuthfileOption = None,
) -> None:
    """Forget the stored login for a registry."""
    from shoal.image.credentials import AuthFile, normalize_server

    store = AuthFile(authfile)
    if not _run(lambda: store.remove(server)):
        raise _fail(f"not logged in to {normalize_server(server)} (see `shoal registry ls`)", EXIT_USER)
    typer.echo(f"Removed login credentials for {normalize_server(server)}")


@app.command("ls", epilog=examples(["shoal registry ls"]))
def list_logins(authfile: AuthfileOption = None) -> None:
    """List stored logins (registry and user; never passwords)."""
    from shoal.image.credentials import AuthFile

    logins = _run(lambda: AuthFile(authfile).logins())
    width = max([len("REGISTRY"), *(len(login.server) for login in logins)])
    typer.echo(f"{'REGISTRY'.ljust(width)}   USERNAME")
    for login in logins:
        typer.echo(f"{login.server.ljust(width)}   {login.username}")

