"""Image pull benchmark: shoal vs skopeo (pull) and vs podman (pull + unpack), plus a cached rebuild.

Builds a ~500 MB, 5-layer image FROM scratch with ``shoal image build`` (random, incompressible
files so gzip cannot shrink them), pushes it to a Debian ``docker-registry`` on loopback, then
times whole processes (start-up included), several runs each, interleaved (run i of every tool
before run i+1 of any, so load from other processes drifts onto all tools alike), and reports
medians:

    shoal_s           shoal image pull into an empty store
    skopeo_s          skopeo copy docker://... oci:DIR
    shoal_unpack_s    shoal image pull --unpack (the agent's path: blobs + per-layer diff dirs)
    podman_s          podman pull --tls-verify=false (podman's storage emptied with rmi between runs)
    rebuild_cached_s  shoal image build of the unchanged context

Usage: python benchmarks/image_pull.py --json OUT [--runs 5] [--layer-mb 100]
Everything (registry, stores, podman storage) lives in a temp dir removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx

from _common import free_port

SHOAL = str(Path(sys.executable).parent / "shoal")
PODMAN = ["podman", "--runtime", "runc"]


def _registry(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = tmp / "registry.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {tmp / 'registry'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = open(tmp / "registry.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(config)], stdout=log, stderr=log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                return proc, f"127.0.0.1:{port}"
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("docker-registry did not start; see registry.log")


def _check(argv: Sequence[str], **kw: object) -> None:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=600, **kw)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr[-3000:]}")


Job = tuple[Callable[[int], Sequence[str]], Callable[[int], None]]


def _timed_once(argv: Sequence[str]) -> float:
    subprocess.run(["sync"], check=True)
    start = time.monotonic()
    _check(argv)
    return time.monotonic() - start


def _timed(runs: int, prepare: Callable[[int], Sequence[str]], cleanup: Callable[[int], None]) -> list[float]:
    times = []
    for i in range(runs):
        times.append(_timed_once(prepare(i)))
        cleanup(i)
    return times


def _interleaved(runs: int, jobs: dict[str, Job]) -> dict[str, list[float]]:
    """Run i of every tool before run i+1 of any, so load drift on a shared machine hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for i in range(runs):
        for name, (prepare, cleanup) in jobs.items():
            times[name].append(_timed_once(prepare(i)))
            cleanup(i)
    return times


def _make_context(ctx: Path, layers: int, layer_mb: int) -> None:
    ctx.mkdir()
    lines = ["FROM scratch"]
    for i in range(layers):
        with open(ctx / f"blob{i}.bin", "wb") as f:
            for _ in range(layer_mb):
                f.write(os.urandom(1 << 20))
        lines.append(f"COPY blob{i}.bin /data/blob{i}.bin")
    lines.append('CMD ["/data/blob0.bin"]')
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, help="Write results here.")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--layer-mb", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoal-bench-image-", dir="/var/tmp") as tmp_s:
        tmp = Path(tmp_s)
        proc, host = _registry(tmp)
        podman_root = ["--root", str(tmp / "podman"), "--runroot", str(tmp / "podman-run")]
        try:
            ctx, build_store = tmp / "ctx", tmp / "build-store"
            _make_context(ctx, args.layers, args.layer_mb)
            ref = f"{host}/bench/big:1"
            t0 = time.monotonic()
            _check([SHOAL, "image", "build", "-q", "--root", str(build_store), "-t", ref, str(ctx)])
            build_s = time.monotonic() - t0
            _check([SHOAL, "image", "push", "-q", "--root", str(build_store), ref])
            rebuild = _timed(args.runs, lambda i: [SHOAL, "image", "build", "-q", "--root", str(build_store),
                                                   "-t", ref, str(ctx)], lambda i: None)

            def store(i: int, kind: str) -> Path:
                return tmp / f"{kind}-{i}"

            def rm(kind: str) -> Callable[[int], None]:
                return lambda i: shutil.rmtree(store(i, kind), ignore_errors=True)

            def podman_clean(i: int) -> None:
                _check([*PODMAN, *podman_root, "rmi", "-a", "-f"])

            times = _interleaved(args.runs, {
                "shoal": (lambda i: [SHOAL, "image", "pull", "-q", "--root", str(store(i, "shoal")), ref], rm("shoal")),
                "skopeo": (lambda i: ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}",
                                      f"oci:{store(i, 'skopeo')}:big"], rm("skopeo")),
                "unpack": (lambda i: [SHOAL, "image", "pull", "-q", "--unpack", "--root", str(store(i, "unpack")), ref],
                           rm("unpack")),
                "podman": (lambda i: [*PODMAN, *podman_root, "pull", "-q", "--tls-verify=false", ref], podman_clean),
            })
            shoal, skopeo, unpack, podman = times["shoal"], times["skopeo"], times["unpack"], times["podman"]
        finally:
            proc.kill()
            proc.wait()
            subprocess.run([*PODMAN, *podman_root, "system", "reset", "-f"], capture_output=True, timeout=120)
    result = {
        "image_mb": args.layers * args.layer_mb,
        "layers": args.layers,
        "runs": args.runs,
        "build_s": round(build_s, 3),
        "shoal_s": round(statistics.median(shoal), 3),
        "skopeo_s": round(statistics.median(skopeo), 3),
        "shoal_unpack_s": round(statistics.median(unpack), 3),
        "podman_s": round(statistics.median(podman), 3),
        "rebuild_cached_s": round(statistics.median(rebuild), 3),
        "raw": {"shoal": shoal, "skopeo": skopeo, "shoal_unpack": unpack, "podman": podman, "rebuild": rebuild},
    }
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "raw"}, indent=2))


if __name__ == "__main__":
    main()
