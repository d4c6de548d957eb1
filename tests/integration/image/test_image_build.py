"""`shoal image build` for real: a multi-stage busybox build with RUN in runc, the layer cache,
reproducible digests, push → delete → pull → unpack → run with the OCI runtime driver."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from imagelab import Registry
from tests.hostclean import cgroup_tops, remove_cgroup_trees

from shoal.image.content import ContentStore
from shoal.image.layers import LayerCache
from shoal.runtime.oci import OciDriver
from shoal.runtime.protocol import ContainerSpec, User

DOCKERFILE = """\
# build stage: produce a file with RUN, using ARG and ENV substitution
ARG GREETING=hello
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM base AS build
ARG GREETING
ENV OUT=/out \\
    WHO=shoal
WORKDIR /work
COPY src/ ./src/
RUN echo "$GREETING from $WHO" > result.txt \\
 && cat src/msg.txt >> result.txt \\
 && test -r /proc/net/dev \\
 && (grep -v -e 'lo:' -e '|' /proc/net/dev | grep -q : && echo net=yes || echo net=no) >> result.txt \\
 && mkdir -p $OUT && cp result.txt $OUT/

FROM base
COPY --from=build /out/result.txt /app/result.txt
COPY --chown=1000:1000 src/msg.txt /app/owned.txt
RUN mkdir -p /etc && echo "app:x:1000:1000::/app:/bin/sh" >> /etc/passwd
USER app
WORKDIR /app
ENV MODE=prod
EXPOSE 8080/tcp
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/result.txt; echo user=$(id -u) cwd=$(pwd) mode=$MODE; ls /app; \\
test -e /app/secret.txt || echo no-secret"]
"""


def shoal(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "shoal"), "image", *args],
        capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    shutil.copy2("/bin/busybox", ctx / "busybox")
    (ctx / "src" / "msg.txt").write_text("from the context\n")
    (ctx / "secret.txt").write_text("do not ship\n")
    (ctx / ".dockerignore").write_text("# keep secrets out\nsecret.txt\n")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


async def _run_image(store: ContentStore, image: str, work: Path) -> str:
    lowers = tuple(LayerCache(store).lowerdirs(image))
    config = store.resolve(image)
    import json

    manifest = json.loads(store.read(config.descriptor.digest))
    cfg = json.loads(store.read(manifest["config"]["digest"]))["config"]
    parent = f"/shoal-test-{uuid.uuid4().hex[:8]}"
    driver = OciDriver(root_dir=work / "containers", runc_root=work / "runc", cgroup_parent=parent)
    cid = f"t-{uuid.uuid4().hex[:10]}"
    spec = ContainerSpec(
        id=cid, name="app", pod_uid="u1", pod_name="p", lower_dirs=lowers,
        command=tuple(cfg["Entrypoint"]), args=tuple(cfg["Cmd"]),
        env=tuple(tuple(e.split("=", 1)) for e in cfg["Env"]),  # type: ignore[misc]
        working_dir=cfg["WorkingDir"], user=User(uid=1000, gid=1000),
    )
    try:
        await driver.create(spec)
        await driver.start(cid)
        lines = [line.message async for line in driver.logs(cid, follow=True)]
    finally:
        try:
            await driver.stop(cid, 0)
            await driver.remove(cid)
        except Exception:
            subprocess.run(["runc", "--root", str(work / "runc"), "delete", "--force", cid], capture_output=True)
            subprocess.run(["umount", "-l", str(work / "containers" / cid / "rootfs")], capture_output=True)
        remove_cgroup_trees(cgroup_tops(parent))  # the driver removes the container's cgroup, not its parent
    return "\n".join(lines)


def test_multistage_build_cache_push_pull_run(tmp_path: Path, context: Path, registry: Registry) -> None:
    store_dir = tmp_path / "store"
    first = shoal("build", "--root", str(store_dir), "-t", "demo/app:1", "--build-arg", "GREETING=hi", str(context))
    assert first.returncode == 0, first.stderr
    digest = first.stdout.split(": ")[1].split()[0]

    started = time.monotonic()
    again = shoal("build", "--root", str(store_dir), "-t", "demo/app:1", "--build-arg", "GREETING=hi", str(context))
    elapsed = time.monotonic() - started
    assert again.returncode == 0, again.stderr
    assert digest in again.stdout and "(19 steps, 19 cached)" in again.stdout
    assert elapsed < 1.5, f"cached rebuild took {elapsed:.2f}s"  # < 1 s of work plus interpreter start

    # reproducible: a build from an empty cache into another store gives the same digest
    other = shoal("build", "--root", str(tmp_path / "store2"), "-t", "demo/app:1", "--build-arg", "GREETING=hi",
                  str(context))
    assert other.returncode == 0, other.stderr
    assert digest in other.stdout

    remote = f"{registry.host}/demo/app:1"
    assert shoal("tag", "--root", str(store_dir), "demo/app:1", remote).returncode == 0
    pushed = shoal("push", "--root", str(store_dir), "-q", remote)
    assert pushed.returncode == 0, pushed.stderr
    assert shoal("rm", "--root", str(store_dir), "--prune", "demo/app:1", remote).returncode == 0
    store = ContentStore(store_dir)
    assert not store.has(digest)
    pulled = shoal("pull", "--root", str(store_dir), "-q", remote)
    assert pulled.returncode == 0, pulled.stderr
    assert digest in pulled.stdout

    out = asyncio.run(_run_image(store, remote, tmp_path / "run"))
    # ARG, ENV, COPY, and RUN without network: its namespace has no interface but loopback
    assert "hi from shoal\nfrom the context\nnet=no" in out
    assert "user=1000 cwd=/app mode=prod" in out
    assert "owned.txt" in out and "no-secret" in out
    owned = [p for p in (store_dir / "layers").glob("*/diff/app/owned.txt")]
    assert owned and os.stat(owned[0]).st_uid == 1000


def test_failing_run_names_the_step(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy2("/bin/busybox", ctx / "busybox")
    (ctx / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/sh\nRUN echo about to fail; exit 7\n"
    )
    result = shoal("build", "--root", str(tmp_path / "store"), "-t", "bad:1", str(ctx))
    assert result.returncode == 1
    assert "Dockerfile:3" in result.stderr and "exited with code 7" in result.stderr
    assert "about to fail" in result.stderr
    assert "Traceback" not in result.stderr


def test_parse_error_names_the_line(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n\n# comment\nCOPPY a /b\n")
    result = shoal("build", "--root", str(tmp_path / "store"), str(ctx))
    assert result.returncode == 1
    assert "Dockerfile:4: unknown instruction 'COPPY'; did you mean COPY?" in result.stderr
    assert "Traceback" not in result.stderr
