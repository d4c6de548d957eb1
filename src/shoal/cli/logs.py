"""``shoal logs`` and ``shoal exec``: a pod container's log and commands in it, through the node tunnel.

Both reach the node through the server (the agent's tunnel), so they work for nodes behind NAT.
``exec`` exits with the command's exit code. With ``-i`` the terminal's stdin streams to the
command (EOF closes it), with ``-t`` it runs on a pseudo-terminal: the local terminal is put in raw
mode only when stdin is one (and always restored), and window resizes (SIGWINCH) follow. Talks only
through ``shoal.client.stream``; it must not decode anything but the exec framing defined there.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from typing import Annotated, Any, NoReturn

import typer

from shoal.cli.common import (
    EXIT_SYSTEM,
    EXIT_USAGE,
    CliError,
    ConfigOption,
    NamespaceOption,
    Session,
    examples,
    session,
)
from shoal.client.errors import ClientError
from shoal.client.stream import Channel, ExecFrame, ExecSession, FramingError, exec_in_pod, pod_logs
from shoal.model.job import LABEL_JOB_NAME

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


def _log_pods(s: Session, ref: str) -> list[str]:
    """The pods whose logs ``ref`` names: one pod, or a Job's pods (job/NAME) oldest first."""
    kind, slash, name = ref.partition("/")
    if not slash or kind not in ("job", "jobs"):
        return [_pod_name(ref)]
    if not name:
        raise CliError(f'"{ref}": give a job name, e.g. job/backup', EXIT_USAGE)
    items, _ = s.client.list("pods", s.namespace, label_selector=f"{LABEL_JOB_NAME}={name}")
    pods = sorted(items, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]))
    if not pods:
        raise CliError(f'job "{name}" has no pods in namespace "{s.namespace}"; check it with: shoal get job {name}')
    return [str(p["metadata"]["name"]) for p in pods]


def logs(
    ctx: typer.Context,
    pod: Annotated[str, typer.Argument(help="The pod (NAME, pod/NAME, or job/NAME for all the job's pods).",
                                       show_default=False)],
    container: ContainerOption = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until the container "
                                                                 "ends (Ctrl-C to stop).")] = False,
    previous: Annotated[bool, typer.Option("--previous", "-p", help="The log of the container's previous "
                                                                     "instance (before its last restart).")] = False,
    tail: Annotated[int | None, typer.Option("--tail", help="Only the last N lines.", min=0)] = None,
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Print a pod container's log (for job/NAME: each of the job's pods in turn)."""
    if follow and previous:
        raise CliError("--follow and --previous do not go together: a previous instance has ended", EXIT_USAGE)
    s = session(ctx, namespace, config)
    out = sys.stdout.buffer
    names = _log_pods(s, pod)
    with contextlib.suppress(KeyboardInterrupt):
        for name in names:
            if len(names) > 1:
                out.write(f"==> pod/{name} <==\n".encode())
            for chunk in pod_logs(s.client.config, s.namespace, name, container=container or "",
                                  follow=follow, tail=tail, previous=previous):
                out.write(chunk)
                out.flush()


def exec_(
    ctx: typer.Context,
    pod: Annotated[str, typer.Argument(help="The pod (NAME or pod/NAME).", show_default=False)],
    command: Annotated[list[str], typer.Argument(help="The command and its arguments, after --.",
                                                 show_default=False)],
    container: ContainerOption = None,
    timeout: Annotated[int, typer.Option("--timeout", help="Kill the command after this many seconds "
                                         "(not with -i/-t).", min=1, max=86400)] = 60,
    stdin: Annotated[bool, typer.Option("--stdin", "-i", help="Pass stdin to the command (EOF closes it).")] = False,
    terminal: Annotated[bool, typer.Option("--tty", "-t", help="Run the command on a pseudo-terminal.")] = False,
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Run a command in a pod's container; exits with the command's exit code."""
    s = session(ctx, namespace, config)
    if stdin or terminal:
        _interactive(ExecSession(s.client.config, s.namespace, _pod_name(pod), command, container=container or "",
                                 stdin=stdin, tty=terminal, size=_window_size() if terminal else None),
                     stdin, terminal)
    _print_frames(exec_in_pod(s.client.config, s.namespace, _pod_name(pod), command,
                              container=container or "", timeout=float(timeout)))


def _print_frames(frames: Iterator[ExecFrame]) -> NoReturn:
    """Write the output where it belongs; exit with the command's exit code."""
    streams = {Channel.STDOUT: sys.stdout.buffer, Channel.STDERR: sys.stderr.buffer}
    try:
        for frame in frames:
            if frame.channel is Channel.RESULT:
                code, message = frame.result()
                if code < 0:
                    raise CliError(f"the command could not run: {message}", EXIT_SYSTEM)
                raise typer.Exit(code)
            out = streams.get(frame.channel)
            if out is not None:
                out.write(frame.payload)
                out.flush()
    except FramingError as exc:
        raise CliError(f"the exec stream from the server is corrupt: {exc}", EXIT_SYSTEM) from None
    raise CliError("the exec stream ended without the command's exit code (the node or server went away)",
                   EXIT_SYSTEM)


def _window_size() -> tuple[int, int] | None:
    """(rows, cols) of the local terminal, if there is one."""
    for stream in (sys.stdout, sys.stdin, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            size = os.get_terminal_size(stream.fileno())
            if size.lines > 0 and size.columns > 0:
                return size.lines, size.columns
    return None


def _feed(session: ExecSession, in_fd: int | None, wake: int, done: threading.Event, terminal: bool) -> None:
    """The input side (a thread): stdin chunks as they come, EOF, and the window size after SIGWINCH."""
    watched = [wake] + ([in_fd] if in_fd is not None else [])
    try:
        while not done.is_set():
            ready, _, _ = select.select(watched, [], [], 1.0)
            if wake in ready:
                os.read(wake, 64)
                size = _window_size() if terminal and not done.is_set() else None
                if size is not None and not session.resize(*size):
                    return
            if in_fd is not None and in_fd in ready:
                data = os.read(in_fd, 4096)
                if data and session.send(data):
                    continue
                if data or not session.close_stdin() or not terminal:
                    return  # the session ended, or stdin did and no resize can follow
                watched.remove(in_fd)
                in_fd = None
    except (ClientError, OSError):
        return  # the output side reports how the session ended


def _wake(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):  # a wake-up is already pending
        os.write(fd, b"w")


def _interactive(exec_session: ExecSession, stdin: bool, terminal: bool) -> None:
    in_fd = sys.stdin.fileno()
    raw = terminal and stdin and os.isatty(in_fd)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    done = threading.Event()
    saved: list[Any] | None = None
    previous: Any = None
    try:
        with exec_session:
            if terminal:
                previous = signal.signal(signal.SIGWINCH, lambda *_: _wake(wake_write))
            if raw:
                saved = termios.tcgetattr(in_fd)
                tty.setraw(in_fd)
            feeder = threading.Thread(target=_feed, args=(exec_session, in_fd if stdin else None, wake_read, done,
                                                          terminal), name="exec-input", daemon=True)
            feeder.start()
            try:
                _print_frames(exec_session.frames())
            finally:
                done.set()
                _wake(wake_write)
                if saved is not None:
                    termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)
                feeder.join(timeout=5)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)
        os.close(wake_read)
        os.close(wake_write)


LOG_EXAMPLES = ("shoal logs web", "shoal logs job/backup", "shoal logs web -c sidecar --tail 20", "shoal logs web -f",
                "shoal logs web --previous", "shoal -n plant-a logs pod/sensor-reader-5x2k --tail 100 -f")
EXEC_EXAMPLES = ("shoal exec web -- ls /", "shoal exec -it web -- sh", "echo hi | shoal exec -i web -- cat",
                 "shoal exec web -c sidecar -- sh -c 'echo $HOSTNAME'",
                 "shoal exec web --timeout 600 -- sh -c 'tar czf - /data' > data.tgz")


def register(app: typer.Typer) -> None:
    app.command("logs", epilog=examples(LOG_EXAMPLES))(logs)
    app.command("exec", epilog=examples(EXEC_EXAMPLES))(exec_)
