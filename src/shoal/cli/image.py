"""``shoal image ...``: pull, push, ls, inspect, rm, prune, tag, save and load local OCI images.

Owns argument parsing, progress display and turning image errors into ``error: ...`` lines with
exit codes (1 user error, 3 registry/system failure). All work is done by ``shoal.image``; this
module must not import server-side layers, and talks to the shoal server only for ``push --node``
(an image for an air-gapped node, through ``shoal.client.stream.push_archive_to_node``).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer

from shoal.cli.common import examples
from shoal.image.errors import ImageError, RegistryUnavailableError

T = TypeVar("T")
DEFAULT_ROOT = "/var/lib/shoal/images"
EXIT_USER, EXIT_SYSTEM = 1, 3

app = typer.Typer(
    help="Pull, push, list, inspect, remove, save and load OCI images in the local store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RootOption = Annotated[str, typer.Option("--root", envvar="SHOAL_IMAGE_ROOT", help="Image store directory.")]
CredsOption = Annotated[
    str | None,
    typer.Option("--creds", envvar="SHOAL_REGISTRY_CREDS", help="Registry login as USER:PASSWORD."),
]
InsecureOption = Annotated[
    list[str] | None,
    typer.Option(
        "--insecure", help="Registry host[:port] to reach over plain HTTP (loopback registries always are)."
    ),
]
AuthfileOption = Annotated[
    str | None,
    typer.Option(
        "--authfile",
        help="Logins file (`shoal registry login`, or a Docker/Podman config.json/auth.json); "
        "default $SHOAL_AUTH_FILE or ~/.config/shoal/auth.json.",
    ),
]
JobsOption = Annotated[int, typer.Option("--jobs", "-j", min=1, max=32, help="Parallel blob transfers.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _run(work: Callable[[], T]) -> T:
    try:
        return work()
    except RegistryUnavailableError as exc:
        raise _fail(str(exc), EXIT_SYSTEM) from None
    except (ImageError, ValueError) as exc:
        raise _fail(str(exc), EXIT_USER) from None
    except PermissionError as exc:
        raise _fail(
            f"{exc.filename}: permission denied (run as root or pass --root DIR)", EXIT_SYSTEM
        ) from None
    except OSError as exc:
        raise _fail(f"{exc.filename or 'image store'}: {exc.strerror or exc}", EXIT_SYSTEM) from None


def _store(root: str) -> Any:
    from shoal.image.content import ContentStore

    return ContentStore(root)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1000
    return f"{n}B"


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    from rich.console import Console

    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    tasks: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=False,
    ) as bars:

        def update(digest: str, done: int, total: int) -> None:
            if digest not in tasks:
                tasks[digest] = bars.add_task(digest[7:19], total=total)
            bars.update(tasks[digest], completed=done)

        yield update


def _access(creds: str | None, insecure: list[str] | None, authfile: str | None) -> Any:
    """Registry access: --creds for the image's registry, then stored logins, then registries.yaml."""
    from shoal.image.auth import Credentials
    from shoal.image.pull import RegistryAccess

    return RegistryAccess.load(
        authfile=authfile, credentials=Credentials.parse(creds) if creds is not None else None, insecure=insecure or ()
    )


@app.command(epilog=examples([
    "shoal image pull 127.0.0.1:5000/team/app:1.0",
    "shoal image pull --creds user:pass registry.example:5000/app:2",
]))
def pull(
    reference: Annotated[str, typer.Argument(help="e.g. registry.local:5000/acme/app:1.4")],
    root: RootOption = DEFAULT_ROOT,
    creds: CredsOption = None,
    insecure: InsecureOption = None,
    platform: Annotated[str | None, typer.Option(help="OS/ARCH\\[/VARIANT]; default: this node's.")] = None,
    jobs: JobsOption = 4,
    quiet: QuietOption = False,
    authfile: AuthfileOption = None,
    unpack: Annotated[bool, typer.Option("--unpack", help="Also unpack its layers for the runtime.")] = False,
) -> None:
    """Pull an image (the right platform of a multi-arch index) into the local store."""
    from shoal.image.platform import parse_platform
    from shoal.image.pull import pull_image
    from shoal.image.reference import parse_reference

    def work() -> Any:
        ref = parse_reference(reference)
        want = parse_platform(platform) if platform else None
        store = _store(root)
        with _progress(quiet) as progress:
            result = asyncio.run(
                pull_image(
                    store,
                    ref,
                    platform=want,
                    access=_access(creds, insecure, authfile),
                    concurrency=jobs,
                    progress=progress,
                )
            )
        if unpack:
            from shoal.image.layers import LayerCache

            LayerCache(store).ensure(result.name)
        return result

    result = _run(work)
    fetched = sum(d.size for d in result.fetched)
    typer.echo(
        f"{result.name}: {result.digest} ({len(result.fetched)} blobs fetched, {_human(fetched)}; "
        f"{len(result.cached)} already present)"
    )


@app.command(epilog=examples([
    "shoal image push 127.0.0.1:5000/team/app:1.0",
    "shoal image push team/app:1.0 --node gw-17   # straight to a node, no registry",
]))
def push(
    image: Annotated[str, typer.Argument(help="Local image name or digest.")],
    destination: Annotated[str | None, typer.Argument(help="Where to push; default: the image name.")] = None,
    root: RootOption = DEFAULT_ROOT,
    creds: CredsOption = None,
    insecure: InsecureOption = None,
    jobs: JobsOption = 4,
    quiet: QuietOption = False,
    authfile: AuthfileOption = None,
    node: Annotated[str | None, typer.Option(
        "--node", help="Push to this node's image store through the shoal server (no registry needed).")] = None,
) -> None:
    """Push a local image to a registry, or with --node straight to a node's image store."""
    from shoal.image.pull import push_image
    from shoal.image.reference import parse_reference

    if node is not None:
        if destination is not None:
            raise _fail("--node pushes the image under its own name; drop the DESTINATION argument", 2)
        typer.echo(_push_to_node(image, node, root, quiet))
        return

    def work() -> str:
        store = _store(root)
        dest = parse_reference(destination or store.resolve(image).name)
        with _progress(quiet) as progress:
            digest = asyncio.run(
                push_image(
                    store,
                    image,
                    dest,
                    access=_access(creds, insecure, authfile),
                    concurrency=jobs,
                    progress=progress,
                )
            )
        return f"{dest}: {digest}"

    typer.echo(_run(work))


def _push_to_node(image: str, node: str, root: str, quiet: bool) -> str:
    """Save ``image`` as an archive and upload it for ``node``'s agent to load (a progress bar on a terminal)."""
    import tempfile
    from pathlib import Path

    from shoal.client.config import load_config
    from shoal.client.stream import push_archive_to_node
    from shoal.image.archive import save as save_archive

    config = load_config(None)
    with tempfile.TemporaryDirectory(prefix="shoal-image-push-") as scratch:
        archive = Path(scratch) / "image.tar"
        name = _run(lambda: save_archive(_store(root), [image], archive))[0]
        with _progress(quiet) as progress:
            def uploaded(done: int, total: int) -> None:
                if progress is not None:
                    progress(f"upload:{name}", done, total)  # the bar shows the 12 characters after "upload:"

            loaded = push_archive_to_node(config, node, archive, name, uploaded)
    return f"{name}: loaded on node {node} ({', '.join(loaded)})"


@app.command("ls", epilog=examples(["shoal image ls", "shoal image ls --root /var/lib/shoal-agent/images"]))
def list_images(
    root: RootOption = DEFAULT_ROOT,
    digests: Annotated[bool, typer.Option("--digests", help="Show full digests.")] = False,
) -> None:
    """List local images."""

    def work() -> list[tuple[str, str, str]]:
        store = _store(root)
        rows = []
        for image in store.images():
            try:
                m = store.manifest(image.descriptor.digest)
                size = _human(m.config.size + sum(d.size for d in m.layers))
            except ImageError:
                size = "?"
            digest = image.descriptor.digest
            rows.append((image.name, digest if digests else digest[7:19], size))
        return rows

    rows = _run(work)
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(("NAME", "DIGEST", "SIZE"))]
    for row in [("NAME", "DIGEST", "SIZE"), *rows]:
        typer.echo("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@app.command(epilog=examples(["shoal image inspect 127.0.0.1:5000/team/app:1.0"]))
def inspect(
    image: Annotated[str, typer.Argument(help="Local image name or digest (prefix).")],
    root: RootOption = DEFAULT_ROOT,
) -> None:
    """Show an image's manifest and config as JSON."""

    def work() -> dict[str, Any]:
        store = _store(root)
        found = store.resolve(image)
        manifest = json.loads(store.read(found.descriptor.digest))
        config = json.loads(store.read(manifest["config"]["digest"]))
        return {
            "name": found.name,
            "digest": found.descriptor.digest,
            "mediaType": found.descriptor.media_type,
            "manifest": manifest,
            "config": config,
        }

    typer.echo(json.dumps(_run(work), indent=2))


def _pinned_note(store: Any, digest: str) -> str:
    owners = store.pinned_by(digest)
    return f"pinned by pod{'s' if len(owners) > 1 else ''} {', '.join(owners)}" if owners else ""


def _kept_lines(pins: list[Any]) -> list[str]:
    """``Kept NAME (DIGEST): pinned by pods A, B`` for each pinned image."""
    owners: dict[str, set[str]] = {}
    names: dict[str, str] = {}
    for pin in pins:
        owners.setdefault(pin.digest, set()).add(pin.owner)
        names.setdefault(pin.digest, pin.name or pin.digest)
    return [
        f"Kept {names[d]} ({d[7:19]}): pinned by pod{'s' if len(o) > 1 else ''} {', '.join(sorted(o))}"
        for d, o in sorted(owners.items(), key=lambda kv: names[kv[0]])
    ]


@app.command(epilog=examples(["shoal image rm 127.0.0.1:5000/team/app:1.0", "shoal image rm --force team/app:old"]))
def rm(
    images: Annotated[list[str], typer.Argument(help="Local image names.")],
    root: RootOption = DEFAULT_ROOT,
    prune_after: Annotated[bool, typer.Option("--prune", help="Also free unreferenced blobs.")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Untag even images pinned by pods.")] = False,
) -> None:
    """Remove image names from the local store (blobs are freed by prune; pinned content is kept)."""

    def work() -> list[str]:
        store = _store(root)
        found = [store.resolve(name) for name in images]
        for image in found:
            if not force and (note := _pinned_note(store, image.descriptor.digest)):
                raise ValueError(
                    f"image {image.name} is {note} (kept for their offline restarts); "
                    "pass --force to untag it anyway (its content stays until they are unpinned)"
                )
        out = [f"Untagged: {store.remove_image(image.name).name}" for image in found]
        if prune_after:
            result = store.prune()
            out.append(f"Deleted {len(result.removed_blobs)} blobs, freed {_human(result.freed_bytes)}")
            out.extend(_kept_lines(result.pinned))
        return out

    for line in _run(work):
        typer.echo(line)


@app.command(epilog=examples(["shoal image prune"]))
def prune(root: RootOption = DEFAULT_ROOT) -> None:
    """Delete blobs and unpacked layers no local image (nor pod pin) references."""
    result = _run(lambda: _store(root).prune())
    typer.echo(
        f"Deleted {len(result.removed_blobs)} blobs and {len(result.removed_layers)} unpacked layers, "
        f"freed {_human(result.freed_bytes)}"
    )
    for line in _kept_lines(result.pinned):
        typer.echo(line)


@app.command(epilog=examples(["shoal image tag team/app:1.0 127.0.0.1:5000/team/app:1.0"]))
def tag(
    source: Annotated[str, typer.Argument(help="Existing local image.")],
    target: Annotated[str, typer.Argument(help="New name, e.g. registry.local:5000/acme/app:2")],
    root: RootOption = DEFAULT_ROOT,
) -> None:
    """Give a local image another name."""
    from shoal.image.reference import parse_reference

    def work() -> str:
        store = _store(root)
        found = store.resolve(source)
        name = str(parse_reference(target))
        store.set_image(name, found.descriptor)
        return f"{name}: {found.descriptor.digest}"

    typer.echo(_run(work))


@app.command(epilog=examples(["shoal image save -o app.tar team/app:1.0"]))
def save(
    images: Annotated[list[str], typer.Argument(help="Local images to save.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Archive file to write.")],
    root: RootOption = DEFAULT_ROOT,
) -> None:
    """Write images to an archive that is both an OCI layout and a `docker save` tarball."""
    from shoal.image.archive import save as save_archive

    names = _run(lambda: save_archive(_store(root), images, output))
    typer.echo(f"Saved {', '.join(names)} to {output} ({_human(os.path.getsize(output))})")


@app.command(epilog=examples(["shoal image load -i app.tar"]))
def load(
    archive: Annotated[str, typer.Option("--input", "-i", help="OCI archive or `docker save` tarball.")],
    root: RootOption = DEFAULT_ROOT,
) -> None:
    """Import images from an OCI archive or a `docker save` tarball."""
    from shoal.image.archive import load as load_archive

    for name in _run(lambda: load_archive(_store(root), archive)):
        typer.echo(f"Loaded image: {name}")


class _BuildReporter:
    """Step lines on stderr; RUN output dimmed on a terminal, plain otherwise."""

    def __init__(self, quiet: bool) -> None:
        from rich.console import Console

        self.console, self.quiet = Console(stderr=True, highlight=False, emoji=False), quiet

    def step(self, stage: str, index: int, total: int, text: str) -> None:
        if not self.quiet:
            self.console.print(f"[bold][{index}/{total}][/bold] [cyan]{stage}[/cyan] {text}", markup=True)

    def output(self, line: str) -> None:
        if not self.quiet:
            self.console.print(f"  {line}", style="dim", markup=False)

    def done(self, cached: bool, seconds: float) -> None:
        if not self.quiet:
            self.console.print(f"  [green]{'CACHED' if cached else 'done'}[/green] {seconds:.2f}s", markup=True)


@app.command(epilog=examples([
    "shoal image build -t team/app:1.0 .",
    "shoal image build -t team/app:1.0 -f Dockerfile.edge --build-arg VERSION=1 .",
]))
def build(
    context: Annotated[str, typer.Argument(help="Build context directory.")],
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="NAME[:TAG] to give the image.")] = None,
    file: Annotated[str | None, typer.Option("--file", "-f", help="Dockerfile (default CONTEXT/Dockerfile).")] = None,
    build_arg: Annotated[list[str] | None, typer.Option("--build-arg", help="K=V for an ARG.")] = None,
    platform: Annotated[str | None, typer.Option(help="OS/ARCH\\[/VARIANT] of the image.")] = None,
    network: Annotated[str, typer.Option(help="'none' (default) or 'host' for RUN steps.")] = "none",
    target: Annotated[str | None, typer.Option(help="Build up to this stage.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not use the layer cache.")] = False,
    root: RootOption = DEFAULT_ROOT,
    quiet: QuietOption = False,
    authfile: AuthfileOption = None,
) -> None:
    """Build an image from a Dockerfile (RUN steps run in runc containers; FROM pulls use stored logins)."""
    from pathlib import Path

    from shoal.image.builder import Builder, BuildOptions
    from shoal.image.dockerfile import parse
    from shoal.image.platform import parse_platform

    def work() -> Any:
        if authfile:  # FROM pulls read the logins file named by the environment
            from shoal.image.credentials import ENV_PATH

            os.environ[ENV_PATH] = authfile
        ctx = Path(context)
        if not ctx.is_dir():
            raise ValueError(f"build context {context!r} is not a directory")
        if network not in ("none", "host"):
            raise ValueError(f"--network {network!r}: use 'none' or 'host'")
        args: dict[str, str] = {}
        for item in build_arg or []:
            key, eq, value = item.partition("=")
            if not eq:
                value = os.environ.get(key, "")
            args[key] = value
        path = Path(file) if file else ctx / "Dockerfile"
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ValueError(f"{path}: no such Dockerfile; pass one with -f") from None
        opts = BuildOptions(
            context=ctx,
            dockerfile=parse(text, str(path)),
            tags=tuple(tag or ()),
            build_args=args,
            platform=parse_platform(platform) if platform else None,
            network_host=network == "host",
            target=target,
            no_cache=no_cache,
        )
        return Builder(_store(root), _BuildReporter(quiet)).build(opts)

    result = _run(work)
    typer.echo(f"{', '.join(result.names) or '<unnamed>'}: {result.digest} "
               f"({result.steps} steps, {result.cached_steps} cached)")
