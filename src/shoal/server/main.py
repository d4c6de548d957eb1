"""``shoal server``: wires the store, API, scheduler loop and controllers into one process.

Owns lifecycle only: it builds each part, runs them under one TaskGroup next to the HTTPS
server, and shuts them down in order on SIGTERM/SIGINT.
Mutual TLS (the client certificate in each request's scope) is ``server.tls``. Node certificates
live for ``--node-cert-days`` (the hidden ``SHOAL_NODE_CERT_SECONDS`` overrides it, for tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import logging
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from shoal.api.imagepush import ImageUploads, max_push_bytes
from shoal.api.join import join_routes
from shoal.api.metrics import RequestMetrics, ServerMetrics, metrics_routes
from shoal.api.mirror import RegistryAuthFront, mirror_routes
from shoal.api.routes import create_app
from shoal.api.sd import sd_routes
from shoal.api.secretkeys import secret_key_routes
from shoal.api.tunnel import TunnelHub, tunnel_routes
from shoal.api.usage import UsageStore, usage_routes
from shoal.controllers import (
    DEFAULT_CLUSTER_CIDR,
    DEFAULT_NODE_MASK,
    LeaseTable,
    build_controllers,
    run_controllers,
)
from shoal.image.mirror import RegistryMirror
from shoal.model import DEFAULT_NAMESPACE, Namespace, ObjectMeta
from shoal.pki.nodecreds import NodeCredentials
from shoal.server.bootstrap import prepare
from shoal.server.scheduling import SchedulerLoop
from shoal.server.secretkeys import open_sealed_store
from shoal.server.tls import PeerCertProtocol
from shoal.store.protocol import AlreadyExists, Store, StoreError

log = logging.getLogger("shoal.server")
NODE_CERT_SECONDS_ENV = "SHOAL_NODE_CERT_SECONDS"


def node_cert_lifetime(days: float, env: dict[str, str] | None = None) -> dt.timedelta:
    """``--node-cert-days``, unless ``$SHOAL_NODE_CERT_SECONDS`` asks for seconds (tests of renewal)."""
    seconds = (os.environ if env is None else env).get(NODE_CERT_SECONDS_ENV, "")
    if seconds:
        try:
            return dt.timedelta(seconds=max(1.0, float(seconds)))
        except ValueError:
            raise ValueError(f"${NODE_CERT_SECONDS_ENV}={seconds!r} is not a number of seconds") from None
    return dt.timedelta(days=days)


@dataclass(frozen=True)
class ServerOptions:
    data_dir: Path
    bind: str = "127.0.0.1"
    port: int = 6443
    policy: str = "BestFit"
    tls_sans: list[str] = field(default_factory=list)
    log_level: str = "warning"
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR
    node_cidr_mask: int = DEFAULT_NODE_MASK
    node_cert_days: float = 365.0
    registry_mirror: bool = True
    insecure_registries: tuple[str, ...] = ()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def ensure_namespace(store: Store, name: str) -> None:
    with contextlib.suppress(AlreadyExists):
        await store.create(Namespace(metadata=ObjectMeta(name=name)))


def tune_runtime() -> None:
    """Fewer, cheaper garbage collections: the store keeps hundreds of thousands of long-lived
    objects, and a full collection over them is a latency spike on every request in flight."""
    gc.collect()
    gc.freeze()  # what exists at start-up is never garbage
    gc.set_threshold(50_000, 50, 100)


async def serve(options: ServerOptions) -> None:
    files = prepare(options.data_dir, options.bind, options.port, options.tls_sans)
    store, secret_keys = await open_sealed_store(options.data_dir, utcnow)
    ready = False
    try:
        await ensure_namespace(store, DEFAULT_NAMESPACE)
        tune_runtime()
        metrics = ServerMetrics(store, options.data_dir / "state.db")
        served = metrics.timed(store)  # what the API, scheduler and controllers write through (timed)
        leases = LeaseTable(started_at=utcnow())

        def on_heartbeat(names: Sequence[str]) -> None:
            now = utcnow()
            for name in names:
                leases.renew(name, now)

        admin = {files.admin_token: "admin"}
        credentials = NodeCredentials(options.data_dir / "node-credentials.json")

        def subject_of(token: str) -> str | None:
            return admin.get(token) or credentials.lookup(token)

        mirror = (RegistryMirror(options.data_dir / "mirror", insecure=options.insecure_registries)
                  if options.registry_mirror else None)
        lifetime = node_cert_lifetime(options.node_cert_days)
        asgi, _ = create_app(served, subject_of, on_heartbeat, utcnow, ready=lambda: ready,
                             extra_routes=[*join_routes(files.ca, files.join_token.secret, credentials, lifetime),
                                           *tunnel_routes(TunnelHub(), ImageUploads(
                                               max_push_bytes(), spool=options.data_dir / "image-push")),
                                           *usage_routes(UsageStore(utcnow)),
                                           *metrics_routes(metrics), *sd_routes(),
                                           *secret_key_routes(secret_keys.rotate),
                                           *(mirror_routes(mirror, store) if mirror else [])],
                             peer=credentials.peer_subject)
        asgi = RequestMetrics(RegistryAuthFront(asgi, subject_of), metrics)
        config = uvicorn.Config(asgi, host=options.bind, port=options.port, ssl_certfile=str(files.cert_file),
                                ssl_keyfile=str(files.key_file), ssl_cert_reqs=ssl.CERT_OPTIONAL,
                                ssl_ca_certs=str(files.data_dir / "pki" / "ca.crt"), http=PeerCertProtocol,
                                loop="none", lifespan="off",
                                access_log=False, log_level=options.log_level, timeout_keep_alive=75,
                                timeout_graceful_shutdown=3,
                                backlog=4096)
        server = uvicorn.Server(config)
        stop = asyncio.Event()
        scheduler = SchedulerLoop(served, utcnow, options.policy)
        controllers = build_controllers(served, leases, utcnow, cluster_cidr=options.cluster_cidr,
                                        node_mask=options.node_cidr_mask)
        metrics.follow(scheduler, controllers)
        async with asyncio.TaskGroup() as group:
            group.create_task(scheduler.run(stop), name="scheduler")
            group.create_task(run_controllers(controllers, stop), name="controllers")
            ready = True
            log.info("shoal server listening on https://%s:%d", options.bind, options.port)
            await server.serve()
            stop.set()
            if mirror is not None:
                await mirror.aclose()
    finally:
        await store.close()


def run(options: ServerOptions) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code (3 when the server cannot start)."""
    import uvloop

    logging.basicConfig(level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        uvloop.run(serve(options))
    except StoreError as exc:
        log.error("cannot start: %s", exc)
        return 3
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 3
    return 0
