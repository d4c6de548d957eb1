"""registries.yaml: mirrors in order then the origin, plain HTTP rules, auth/TLS, errors naming the key."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from shoal.image.auth import Credentials
from shoal.image.registryconfig import RegistriesConfig, RegistryConfigError, load, parse


def _parse(text: str) -> RegistriesConfig:
    return parse(yaml.safe_load(text), "registries.yaml")


def test_mirrors_are_tried_in_order_then_the_origin(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    cfg = _parse(f"""
mirrors:
  docker.io:
    endpoints: ["https://mirror.local:5000", "http://10.0.0.9:5000/"]
  "*":
    endpoints: ["https://everything.local"]
configs:
  "mirror.local:5000":
    auth: {{username: edge, password: s3cret}}
    tls: {{ca_file: {ca}}}
  reg.lan:
    auth: {{auth: {base64.b64encode(b"bob:pw:with:colons").decode()}}}
    tls: {{insecure_skip_verify: true}}
insecure: ["reg.lan:5000"]
""")
    assert [(e.url, e.host, e.is_mirror) for e in cfg.endpoints("docker.io")] == [
        ("https://mirror.local:5000", "mirror.local:5000", True),
        ("http://10.0.0.9:5000", "10.0.0.9:5000", True),
        ("https://registry-1.docker.io", "docker.io", False),
    ]
    assert [e.url for e in cfg.endpoints("quay.io")] == ["https://everything.local", "https://quay.io"]
    assert cfg.host("mirror.local:5000").credentials == Credentials("edge", "s3cret")
    assert cfg.host("mirror.local:5000").tls.ca_file == str(ca)
    assert cfg.host("reg.lan").credentials == Credentials("bob", "pw:with:colons")
    assert cfg.host("reg.lan").tls.insecure_skip_verify
    assert cfg.host("other").credentials is None


def test_plain_http_only_for_loopback_and_listed_hosts() -> None:
    cfg = _parse("insecure: ['reg.lan:5000']")
    assert cfg.endpoints("127.0.0.5:5000")[-1].url == "http://127.0.0.5:5000"
    assert cfg.endpoints("[::1]:5000")[-1].url == "http://[::1]:5000"
    assert cfg.endpoints("localhost:5000")[-1].url == "http://localhost:5000"
    assert cfg.endpoints("reg.lan:5000")[-1].url == "http://reg.lan:5000"
    assert cfg.endpoints("reg.lan:5001")[-1].url == "https://reg.lan:5001"
    assert cfg.endpoints("10.1.2.3:5000", frozenset({"10.1.2.3:5000"}))[-1].url == "http://10.1.2.3:5000"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mirror: {}", r"registries.yaml: mirror: unknown key; expected one of mirrors, configs, insecure"),
        ("mirrors: {docker.io: {endpoint: [x]}}", r"mirrors.docker.io.endpoint: unknown key"),
        ("mirrors: {docker.io: {endpoints: []}}", r"mirrors.docker.io.endpoints: must be a non-empty list"),
        ("mirrors: {docker.io: {endpoints: ['mirror:5000']}}",
         r"mirrors.docker.io.endpoints\[0\]: 'mirror:5000' needs a scheme: write 'https://mirror:5000'"),
        ("mirrors: {docker.io: {endpoints: ['https://m/v2/x']}}", r"endpoints\[0\]: .*paths are not supported"),
        ("mirrors: {'https://docker.io': {endpoints: ['https://m']}}", r"must be host\[:port\]"),
        ("configs: {'r:5000': {auth: {password: x}}}", r"configs.'r:5000'.auth.username: is required"),
        ("configs: {r: {auth: {auth: '!!!'}}}", r"configs.r.auth.auth: is not base64"),
        ("configs: {r: {tls: {insecure_skip_verify: 'yes'}}}", r"configs.r.tls.insecure_skip_verify: must be true"),
        ("configs: {r: {tls: {ca_file: /nonexistent/ca.pem}}}", r"configs.r.tls.ca_file: '/nonexistent/ca.pem' does"),
        ("configs: {r: {tls: {verify: false}}}", r"configs.r.tls.verify: unknown key; expected one of insec"),
        ("insecure: reg:5000", r"insecure: must be a list"),
        ("insecure: [5000]", r"insecure\[0\]: must be a non-empty string"),
        ("- a", r"\(top level\): must be a mapping"),
    ],
)
def test_errors_name_the_key_and_the_fix(text: str, message: str) -> None:
    with pytest.raises(RegistryConfigError, match=message):
        _parse(text)


def test_load_default_missing_is_empty_but_explicit_missing_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHOAL_REGISTRIES_CONFIG", raising=False)
    monkeypatch.setattr("shoal.image.registryconfig.DEFAULT_PATH", str(tmp_path / "absent.yaml"))
    assert load().endpoints("docker.io")[-1].url == "https://registry-1.docker.io"
    with pytest.raises(RegistryConfigError, match="no such registries config file"):
        load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("mirrors: [\n")
    monkeypatch.setenv("SHOAL_REGISTRIES_CONFIG", str(bad))
    with pytest.raises(RegistryConfigError, match=f"{bad}: not valid YAML"):
        load()
    bad.write_text("mirrors: {docker.io: {endpoints: ['ftp://m']}}\n")
    with pytest.raises(RegistryConfigError, match=f"{bad}: mirrors.docker.io.endpoints\\[0\\]"):
        load()
