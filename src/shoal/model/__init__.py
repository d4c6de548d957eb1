"""shoal's resource model: msgspec Structs shared by server, agent and CLI.

Imports nothing else from shoal. Public API below; kinds are listed in ``registry.KINDS``.
"""

from shoal.model.allocation import NodeAllocation
from shoal.model.base import API_VERSION, Object
from shoal.model.codec import decode_json, decode_object, encode, to_builtins
from shoal.model.config import ConfigMap, Secret
from shoal.model.daemonset import DaemonSet
from shoal.model.endpointregistration import (
    EndpointRegistration,
    EndpointRegistrationSpec,
    EndpointRegistrationStatus,
    RegistrationPort,
)
from shoal.model.endpoints import EndpointAddress, EndpointPort, Endpoints, EndpointSubset, EndpointTargetRef
from shoal.model.errors import FieldError, ValidationError
from shoal.model.event import Event
from shoal.model.job import CronJob, CronSchedule, Job
from shoal.model.meta import (
    Condition,
    LabelSelector,
    ObjectMeta,
    ObjectReference,
    OwnerReference,
    condition,
    set_condition,
)
from shoal.model.namespace import DEFAULT_NAMESPACE, Namespace
from shoal.model.networkpolicy import (
    IPBlock,
    NetworkPolicy,
    NetworkPolicyEgressRule,
    NetworkPolicyIngressRule,
    NetworkPolicyPeer,
    NetworkPolicyPort,
    NetworkPolicySpec,
    PolicyType,
)
from shoal.model.node import Node, NodePhase, NodeSpec, NodeStatus, Taint
from shoal.model.pod import (
    Container,
    ContainerState,
    ContainerStatus,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
    PodTemplateSpec,
    Toleration,
)
from shoal.model.registry import BY_KIND, BY_PLURAL, KINDS, KindInfo, UnknownKindError, info_of, lookup
from shoal.model.selector import Selector, SelectorError, from_label_selector, parse_selector
from shoal.model.service import Service
from shoal.model.status import Status, StatusCause, StatusDetails
from shoal.model.workloads import Deployment, DeploymentRevision

__all__ = [
    "API_VERSION",
    "BY_KIND",
    "BY_PLURAL",
    "DEFAULT_NAMESPACE",
    "KINDS",
    "Condition",
    "ConfigMap",
    "Container",
    "ContainerState",
    "ContainerStatus",
    "CronJob",
    "CronSchedule",
    "DaemonSet",
    "Deployment",
    "DeploymentRevision",
    "EndpointAddress",
    "EndpointPort",
    "EndpointRegistration",
    "EndpointRegistrationSpec",
    "EndpointRegistrationStatus",
    "EndpointSubset",
    "EndpointTargetRef",
    "Endpoints",
    "Event",
    "FieldError",
    "IPBlock",
    "Job",
    "KindInfo",
    "LabelSelector",
    "Namespace",
    "NetworkPolicy",
    "NetworkPolicyEgressRule",
    "NetworkPolicyIngressRule",
    "NetworkPolicyPeer",
    "NetworkPolicyPort",
    "NetworkPolicySpec",
    "Node",
    "NodeAllocation",
    "NodePhase",
    "NodeSpec",
    "NodeStatus",
    "Object",
    "ObjectMeta",
    "ObjectReference",
    "OwnerReference",
    "Pod",
    "PodPhase",
    "PodSpec",
    "PodStatus",
    "PodTemplateSpec",
    "PolicyType",
    "RegistrationPort",
    "Secret",
    "Selector",
    "SelectorError",
    "Service",
    "Status",
    "StatusCause",
    "StatusDetails",
    "Taint",
    "Toleration",
    "UnknownKindError",
    "ValidationError",
    "condition",
    "decode_json",
    "decode_object",
    "encode",
    "from_label_selector",
    "info_of",
    "lookup",
    "parse_selector",
    "set_condition",
    "to_builtins",
]
