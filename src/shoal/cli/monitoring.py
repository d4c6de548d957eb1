"""``shoal monitoring prometheus-config``: a Prometheus scrape config for this cluster, usable as is.

It reads the client config (server URL, CA, token), writes the CA and the token next to the config
(Prometheus reads secrets from files: ``tls_config.ca_file``, ``authorization.credentials_file``)
and prints or writes two jobs: the server's ``/metrics`` over HTTPS, and every Online node's agent
``/metrics`` found through the server's HTTP service discovery (``/api/v1/sd/nodes``). The building
of the document (``scrape_config``) is pure; it does not talk to the server.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
import yaml

from shoal.cli.common import CliError, ConfigOption, examples
from shoal.client.config import load_config

__all__ = ["SD_NODES_PATH", "app", "scrape_config"]

SD_NODES_PATH = "/api/v1/sd/nodes"
CA_FILE = "shoal-ca.crt"
TOKEN_FILE = "shoal-token"

app = typer.Typer(help="Monitor the cluster with Prometheus.", no_args_is_help=True)


def _duration(value: str, option: str) -> str:
    number, unit = value[:-1], value[-1:]
    if unit not in ("s", "m", "h") or not number.isdigit() or int(number) == 0:
        raise CliError(f'{option} "{value}" is not a duration; use e.g. 15s, 1m or 1h')
    return value


def scrape_config(server: str, ca_file: str, token_file: str, *, interval: str = "15s",
                  refresh: str = "30s") -> dict[str, Any]:
    """The Prometheus configuration: a ``shoal-server`` job and a ``shoal-nodes`` job (HTTP SD)."""
    parts = urlsplit(server)
    host = parts.netloc or parts.path
    secure = {"authorization": {"type": "Bearer", "credentials_file": token_file}}
    if parts.scheme == "https" and ca_file:
        secure["tls_config"] = {"ca_file": ca_file}
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {"job_name": "shoal-server", "scheme": parts.scheme or "https", "metrics_path": "/metrics",
             **secure, "static_configs": [{"targets": [host], "labels": {"component": "server"}}]},
            {"job_name": "shoal-nodes", "scheme": "http", "metrics_path": "/metrics",
             "http_sd_configs": [{"url": f"{server.rstrip('/')}{SD_NODES_PATH}", "refresh_interval": refresh,
                                  **secure}]},
        ],
    }


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


@app.command("prometheus-config", epilog=examples([
    "shoal monitoring prometheus-config --out /etc/prometheus/shoal.yml",
    "prometheus --config.file=/etc/prometheus/shoal.yml"]))
def prometheus_config(
    out: Annotated[str | None, typer.Option("--out", "-o", help="Write the config here (default: print it).")]
    = None,
    files_dir: Annotated[str | None, typer.Option(
        "--files-dir", help="Where to write the CA and token files (default: next to --out, else .).")] = None,
    interval: Annotated[str, typer.Option("--scrape-interval", help="How often Prometheus scrapes.")] = "15s",
    refresh: Annotated[str, typer.Option("--sd-refresh", help="How often Prometheus re-reads the node list.")]
    = "30s",
    config: ConfigOption = None,
) -> None:
    """Print a Prometheus config that scrapes the server and every node's agent (--metrics-bind).
    The admin token and the cluster CA are written to files next to it (mode 0600)."""
    interval, refresh = _duration(interval, "--scrape-interval"), _duration(refresh, "--sd-refresh")
    client = load_config(config)  # a ConfigError is reported by the CLI's guard
    if not client.token:
        raise CliError(f"{client.source or 'the client config'} has no token; Prometheus needs the admin "
                       "config's token (e.g. --config /var/lib/shoal/server/admin.yaml)")
    directory = Path(files_dir or (Path(out).parent if out else ".")).resolve()
    ca_path, token_path = directory / CA_FILE, directory / TOKEN_FILE
    try:
        _write_secret(token_path, client.token + "\n")
        if client.ca.strip():
            _write_secret(ca_path, client.ca if client.ca.endswith("\n") else client.ca + "\n")
        document = yaml.safe_dump(scrape_config(client.server, str(ca_path) if client.ca.strip() else "",
                                                str(token_path), interval=interval, refresh=refresh),
                                  sort_keys=False)
        if out:
            Path(out).write_text(document)
    except OSError as exc:
        raise CliError(f"cannot write {exc.filename or directory}: {exc.strerror}") from None
    if out:
        typer.echo(f"wrote {out} (token {token_path}, CA {ca_path}); run: prometheus --config.file={out}",
                   err=True)
    else:
        sys.stdout.write(document)
        typer.echo(f"# wrote token {token_path} and CA {ca_path}", err=True)
