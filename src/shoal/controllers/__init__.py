"""shoal's controllers: level-based reconcilers and the runner that drives them.

Reconcile functions (``reconcile_deployment``, ``reconcile_orphan``, ``reconcile_node``) are pure;
``run_controllers`` does all I/O against a store the server injects (any object satisfying
``ObjectStore``). This package never imports ``shoal.store``, ``shoal.api`` or ``shoal.server``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from shoal.controllers.actions import Action, Actions, Create, Delete, EmitEvent, EventType, Key, Result, Update, ref_of
from shoal.controllers.cache import Cache, Informer, ObjectStore, error_code
from shoal.controllers.cronjob import workload_controllers
from shoal.controllers.deployment import (
    DeploymentReconciler,
    random_suffix,
    reconcile_deployment,
    scale_down_order,
    template_hash,
)
from shoal.controllers.endpoints import EndpointsController, endpoints_for
from shoal.controllers.events import EventRecorder, event_name
from shoal.controllers.gc import GarbageCollector, reconcile_orphan
from shoal.controllers.nodeipam import DEFAULT_CLUSTER_CIDR, DEFAULT_NODE_MASK, NodeIPAM, assign_pod_cidr
from shoal.controllers.nodelifecycle import GRACE_SECONDS, LeaseTable, NodeLifecycle, offline_toleration, reconcile_node
from shoal.controllers.queue import WorkQueue
from shoal.controllers.registrations import RegistrationExpiry
from shoal.controllers.runner import Controller, ControllerStats, Reconciler, run_controllers
from shoal.controllers.serviceip import DEFAULT_SERVICE_CIDR, ServiceIPAllocator, allocate_service

NODE_SWEEP_SECONDS = 1.0


def build_controllers(store: ObjectStore, leases: LeaseTable, clock: Callable[[], datetime], *,
                      workers: int = 2, node_sweep: float = NODE_SWEEP_SECONDS,
                      cluster_cidr: str | None = DEFAULT_CLUSTER_CIDR,
                      node_mask: int = DEFAULT_NODE_MASK,
                      service_cidr: str = DEFAULT_SERVICE_CIDR) -> list[Controller]:
    """The controllers the server runs: deployments, garbage collection, node lifecycle and, unless
    ``cluster_cidr`` is None, pod CIDRs for nodes."""
    ipam = [] if cluster_cidr is None else [Controller(NodeIPAM(cluster_cidr, node_mask), store, clock, workers=1)]
    return [
        Controller(DeploymentReconciler(), store, clock, workers=workers),
        Controller(GarbageCollector(), store, clock, workers=1),
        Controller(NodeLifecycle(leases, leases.grace), store, clock, workers=1, sweep_interval=node_sweep),
        *ipam,
        Controller(ServiceIPAllocator(service_cidr), store, clock, workers=1),  # one worker: no double allocation
        Controller(EndpointsController(), store, clock, workers=workers),
        *workload_controllers(store, clock, workers=workers),  # DaemonSet, Job, CronJob and their GC
        Controller(RegistrationExpiry(), store, clock, workers=1),  # one worker: it remembers heartbeats
    ]


__all__ = [
    "DEFAULT_CLUSTER_CIDR",
    "DEFAULT_NODE_MASK",
    "DEFAULT_SERVICE_CIDR",
    "GRACE_SECONDS",
    "NODE_SWEEP_SECONDS",
    "Action",
    "Actions",
    "Cache",
    "Controller",
    "ControllerStats",
    "Create",
    "Delete",
    "DeploymentReconciler",
    "EmitEvent",
    "EndpointsController",
    "EventRecorder",
    "EventType",
    "GarbageCollector",
    "Informer",
    "Key",
    "LeaseTable",
    "NodeIPAM",
    "NodeLifecycle",
    "ObjectStore",
    "Reconciler",
    "RegistrationExpiry",
    "Result",
    "ServiceIPAllocator",
    "Update",
    "WorkQueue",
    "allocate_service",
    "assign_pod_cidr",
    "build_controllers",
    "endpoints_for",
    "error_code",
    "event_name",
    "offline_toleration",
    "random_suffix",
    "reconcile_deployment",
    "reconcile_node",
    "reconcile_orphan",
    "ref_of",
    "run_controllers",
    "scale_down_order",
    "template_hash",
]
