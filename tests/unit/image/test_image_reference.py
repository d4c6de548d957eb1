"""Reference parsing: defaults, registries with ports, digests and clear errors."""

from __future__ import annotations

import pytest

from shoal.image.errors import InvalidReferenceError
from shoal.image.reference import is_loopback, parse_reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repo", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", None),
        ("acme/app:2", "docker.io", "acme/app", "2", None),
        ("registry.local:5000/acme/reader:1.4", "registry.local:5000", "acme/reader", "1.4", None),
        (f"127.0.0.1:5000/x@{D}", "127.0.0.1:5000", "x", None, D),
        (f"localhost/x:t@{D}", "localhost", "x", "t", D),
        ("[::1]:5000/a/b", "[::1]:5000", "a/b", "latest", None),
        ("ghcr.io/o/r/sub.x_y-z", "ghcr.io", "o/r/sub.x_y-z", "latest", None),
    ],
)
def test_parse(text: str, registry: str, repo: str, tag: str | None, digest: str | None) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repo, tag, digest)
    assert parse_reference(str(ref)) == ref


def test_api_host_and_object() -> None:
    assert parse_reference("busybox").api_host == "registry-1.docker.io"
    assert parse_reference(f"r.io/x:1@{D}").object == D
    assert str(parse_reference("busybox")) == "docker.io/library/busybox:latest"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "non-empty"),
        ("Acme/App", "must be lowercase"),
        ("x:bad tag", "tag 'bad tag'"),
        ("x@sha256:abc", "is not sha256:<64"),
        ("reg.io/a//b", "path component ''"),
        ("x:-tag", "tag '-tag'"),
    ],
)
def test_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(InvalidReferenceError, match=message):
        parse_reference(text)


@pytest.mark.parametrize(
    ("registry", "loop"),
    [
        ("127.0.0.1:5000", True),
        ("127.3.4.5", True),
        ("localhost:80", True),
        ("[::1]:5000", True),
        ("10.0.0.1:5000", False),
        ("registry.local:5000", False),
        ("docker.io", False),
    ],
)
def test_loopback(registry: str, loop: bool) -> None:
    assert is_loopback(registry) is loop
