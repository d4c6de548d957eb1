"""``shoal logs`` and ``shoal exec``: a pod container's log and commands in it, through the node tunnel.

Both reach the node through the server (the agent's tunnel), so they work for nodes behind NAT.
``exec`` exits with the command's exit code. Talks only through ``shoal.client.stream``; it must
not decode anything but the exec framing defined there.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated

import typer

from shoal.cli.common import EXIT_SYSTEM, EXIT_USAGE, CliError, ConfigOption, NamespaceOption, examples, session
from shoal.client.stream import Channel, FramingError, exec_in_pod, pod_logs

__all__ = ["register"]

ContainerOption = Annotated[str | None, typer.Option(
    "--container", "-c", help="Container name (default: the pod's first container).")]


def _pod_name(ref: str) -> str:
    kind, slash, name = ref.partition("/")
    if not slash:
        return ref
    if kind not in ("pod", "pods", "po") or not name:
        raise CliError(f'"{ref}": give a pod name (web) or pod/web', EXIT_USAGE)
    return name


def logs(
    ctx: typer.Context,
    pod: Annotated[str, typer.Argument(help="The pod (NAME or pod/NAME).", show_default=False)],
    container: ContainerOption = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until the container "
                                                                 "ends (Ctrl-C to stop).")] = False,
    previous: Annotated[bool, typer.Option("--previous", "-p", help="The log of the container's previous "
                                                                     "instance (before its last restart).")] = False,
    tail: Annotated[int | None, typer.Option("--tail", help="Only the last N lines.", min=0)] = None,
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Print a pod container's log."""
    if follow and previous:
        raise CliError("--follow and --previous do not go together: a previous instance has ended", EXIT_USAGE)
    s = session(ctx, namespace, config)
    out = sys.stdout.buffer
    with contextlib.suppress(KeyboardInterrupt):
        for chunk in pod_logs(s.client.config, s.namespace, _pod_name(pod), container=container or "",
                              follow=follow, tail=tail, previous=previous):
            out.write(chunk)
            out.flush()


def exec_(
    ctx: typer.Context,
    pod: Annotated[str, typer.Argument(help="The pod (NAME or pod/NAME).", show_default=False)],
    command: Annotated[list[str], typer.Argument(help="The command and its arguments, after --.",
                                                 show_default=False)],
    container: ContainerOption = None,
    timeout: Annotated[int, typer.Option("--timeout", help="Kill the command after this many seconds.",
                                         min=1, max=86400)] = 60,
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Run a command in a pod's container; exits with the command's exit code."""
    s = session(ctx, namespace, config)
    streams = {Channel.STDOUT: sys.stdout.buffer, Channel.STDERR: sys.stderr.buffer}
    try:
        for frame in exec_in_pod(s.client.config, s.namespace, _pod_name(pod), command,
                                 container=container or "", timeout=float(timeout)):
            if frame.channel is Channel.RESULT:
                code, message = frame.result()
                if code < 0:
                    raise CliError(f"the command could not run: {message}", EXIT_SYSTEM)
                raise typer.Exit(code)
            streams[frame.channel].write(frame.payload)
            streams[frame.channel].flush()
    except FramingError as exc:
        raise CliError(f"the exec stream from the server is corrupt: {exc}", EXIT_SYSTEM) from None
    raise CliError("the exec stream ended without the command's exit code (the node or server went away)",
                   EXIT_SYSTEM)


LOG_EXAMPLES = ("shoal logs web", "shoal logs web -c sidecar --tail 20", "shoal logs web -f",
                "shoal logs web --previous", "shoal -n plant-a logs pod/sensor-reader-5x2k --tail 100 -f")
EXEC_EXAMPLES = ("shoal exec web -- ls /", "shoal exec web -c sidecar -- sh -c 'echo $HOSTNAME'",
                 "shoal exec web --timeout 600 -- sh -c 'tar czf - /data' > data.tgz")


def register(app: typer.Typer) -> None:
    app.command("logs", epilog=examples(LOG_EXAMPLES))(logs)
    app.command("exec", epilog=examples(EXEC_EXAMPLES))(exec_)
