"""The kind registry: every resource kind's names, scope and Struct in one table.

The API routes, the store codec, the CLI's short names and the OpenAPI document are all
built from this table, so adding a kind is one new model module plus one line here.
"""

from __future__ import annotations

from dataclasses import dataclass

from shoal.model.allocation import NodeAllocation
from shoal.model.base import Object
from shoal.model.config import ConfigMap, Secret
from shoal.model.daemonset import DaemonSet
from shoal.model.endpointregistration import EndpointRegistration
from shoal.model.endpoints import Endpoints
from shoal.model.event import Event
from shoal.model.job import CronJob, Job
from shoal.model.namespace import Namespace
from shoal.model.networkpolicy import NetworkPolicy
from shoal.model.node import Node
from shoal.model.pod import Pod
from shoal.model.service import Service
from shoal.model.workloads import Deployment, DeploymentRevision


@dataclass(frozen=True, slots=True)
class KindInfo:
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    namespaced: bool
    cls: type[Object]
    has_status: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        return (self.kind.lower(), self.plural, self.singular, *self.short_names)


KINDS: tuple[KindInfo, ...] = (
    KindInfo("Namespace", "namespaces", "namespace", ("ns",), False, Namespace),
    KindInfo("Node", "nodes", "node", ("no",), False, Node),
    KindInfo("Pod", "pods", "pod", ("po",), True, Pod),
    KindInfo("Deployment", "deployments", "deployment", ("deploy",), True, Deployment),
    KindInfo("DeploymentRevision", "deploymentrevisions", "deploymentrevision", ("drev",), True, DeploymentRevision,
             has_status=False),
    KindInfo("DaemonSet", "daemonsets", "daemonset", ("ds",), True, DaemonSet),
    KindInfo("Job", "jobs", "job", (), True, Job),
    KindInfo("CronJob", "cronjobs", "cronjob", ("cj",), True, CronJob),
    KindInfo("Service", "services", "service", ("svc",), True, Service),
    KindInfo("ConfigMap", "configmaps", "configmap", ("cm",), True, ConfigMap, has_status=False),
    KindInfo("Secret", "secrets", "secret", (), True, Secret, has_status=False),
    KindInfo("Event", "events", "event", ("ev",), True, Event, has_status=False),
    KindInfo("Endpoints", "endpoints", "endpoints", ("ep",), True, Endpoints, has_status=False),
    KindInfo("EndpointRegistration", "endpointregistrations", "endpointregistration", ("epreg",), True,
             EndpointRegistration),
    KindInfo("NetworkPolicy", "networkpolicies", "networkpolicy", ("netpol",), True, NetworkPolicy, has_status=False),
    KindInfo("NodeAllocation", "nodeallocations", "nodeallocation", ("na",), False, NodeAllocation, has_status=False),
)

BY_KIND = {info.kind: info for info in KINDS}
BY_PLURAL = {info.plural: info for info in KINDS}
_BY_NAME = {name: info for info in KINDS for name in info.names}


class UnknownKindError(LookupError):
    pass


def lookup(name: str) -> KindInfo:
    """A kind by any of its names: ``Pod``, ``pods``, ``pod``, ``po``."""
    info = BY_KIND.get(name) or _BY_NAME.get(name.lower())
    if info is None:
        known = ", ".join(sorted(i.plural for i in KINDS))
        raise UnknownKindError(f'unknown resource type "{name}"; known types: {known}')
    return info


def info_of(obj: Object) -> KindInfo:
    return BY_KIND[type(obj).__name__]
