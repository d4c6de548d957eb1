"""The Pod kind: containers (OCI or wasm), scheduling constraints, edge hints and status.

Shapes follow MANIFESTS.md (Kubernetes' field names where the concept is the same).
Semantic checks (names, quantities, enums) live in ``validation``; this module is shapes only.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from shoal.model.base import API_VERSION, Object, Spec
from shoal.model.meta import Condition, LabelSelectorRequirement, ObjectMeta

Quantity = str | int | float


ANNOTATION_SCHEDULING_SCORES = "shoal.io/scheduling-scores"  # the winning node's per-plugin scores (JSON)
ANNOTATION_PAUSED = "shoal.io/paused"  # "true": the agent freezes the pod's containers (shoal pause/unpause)


class PodPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


class ContainerState(StrEnum):
    CREATED = "Created"
    RUNNING = "Running"
    PAUSED = "Paused"
    STOPPED = "Stopped"
    REMOVED = "Removed"
    WAITING = "Waiting"


class RestartPolicy(StrEnum):
    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"


class Runtime(StrEnum):
    OCI = "oci"
    WASM = "wasm"


class KeyRef(Spec, frozen=True, kw_only=True):
    name: str
    key: str
    optional: bool = False


class EnvVarSource(Spec, frozen=True, kw_only=True):
    secret_key_ref: KeyRef | None = None
    config_map_key_ref: KeyRef | None = None


class EnvVar(Spec, frozen=True, kw_only=True):
    name: str
    value: str = ""
    value_from: EnvVarSource | None = None


class NameRef(Spec, frozen=True, kw_only=True):
    name: str
    optional: bool = False


class EnvFromSource(Spec, frozen=True, kw_only=True):
    prefix: str = ""
    config_map_ref: NameRef | None = None
    secret_ref: NameRef | None = None


class ContainerPort(Spec, frozen=True, kw_only=True):
    container_port: int
    name: str = ""
    host_port: int = 0
    protocol: str = "TCP"


class ResourceRequirements(Spec, frozen=True, kw_only=True):
    requests: dict[str, Quantity] = msgspec.field(default_factory=dict)
    limits: dict[str, Quantity] = msgspec.field(default_factory=dict)


class HTTPGetAction(Spec, frozen=True, kw_only=True):
    port: int | str
    path: str = "/"
    host: str = ""
    scheme: str = "HTTP"


class TCPSocketAction(Spec, frozen=True, kw_only=True):
    port: int | str
    host: str = ""


class ExecAction(Spec, frozen=True, kw_only=True):
    command: list[str] = msgspec.field(default_factory=list)


class Probe(Spec, frozen=True, kw_only=True):
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    exec: ExecAction | None = None
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3


class Capabilities(Spec, frozen=True, kw_only=True):
    add: list[str] = msgspec.field(default_factory=list)
    drop: list[str] = msgspec.field(default_factory=list)


class SeccompProfile(Spec, frozen=True, kw_only=True):
    type: str = "RuntimeDefault"  # RuntimeDefault | Unconfined | Localhost
    localhost_profile: str = ""


class SecurityContext(Spec, frozen=True, kw_only=True):
    read_only_root_filesystem: bool = False
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool = False
    privileged: bool = False
    allow_privilege_escalation: bool | None = None
    capabilities: Capabilities | None = None
    seccomp_profile: SeccompProfile | None = None
    app_armor_profile: str = ""


class VolumeMount(Spec, frozen=True, kw_only=True):
    name: str
    mount_path: str
    read_only: bool = False
    sub_path: str = ""


class Device(Spec, frozen=True, kw_only=True):
    path: str
    permissions: str = "rwm"


class IoTAccess(Spec, frozen=True, kw_only=True):
    publish: list[str] = msgspec.field(default_factory=list)
    subscribe: list[str] = msgspec.field(default_factory=list)


class Container(Spec, frozen=True, kw_only=True):
    name: str
    image: str
    command: list[str] = msgspec.field(default_factory=list)
    args: list[str] = msgspec.field(default_factory=list)
    working_dir: str = ""
    env: list[EnvVar] = msgspec.field(default_factory=list)
    env_from: list[EnvFromSource] = msgspec.field(default_factory=list)
    ports: list[ContainerPort] = msgspec.field(default_factory=list)
    resources: ResourceRequirements = msgspec.field(default_factory=ResourceRequirements)
    devices: list[Device] = msgspec.field(default_factory=list)
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    startup_probe: Probe | None = None
    security_context: SecurityContext | None = None
    volume_mounts: list[VolumeMount] = msgspec.field(default_factory=list)
    image_pull_policy: str = "IfNotPresent"
    iot: IoTAccess | None = None


class Toleration(Spec, frozen=True, kw_only=True):
    key: str = ""
    operator: str = "Equal"  # Equal | Exists
    value: str = ""
    effect: str = ""  # NoSchedule | PreferNoSchedule | NoExecute | "" (all)
    toleration_seconds: int | None = None


class NodeSelectorTerm(Spec, frozen=True, kw_only=True):
    match_expressions: list[LabelSelectorRequirement] = msgspec.field(default_factory=list)


class NodeSelector(Spec, frozen=True, kw_only=True):
    node_selector_terms: list[NodeSelectorTerm] = msgspec.field(default_factory=list)


class PreferredSchedulingTerm(Spec, frozen=True, kw_only=True):
    weight: int
    preference: NodeSelectorTerm


class NodeAffinity(Spec, frozen=True, kw_only=True):
    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] = msgspec.field(
        default_factory=list)


class Affinity(Spec, frozen=True, kw_only=True):
    node_affinity: NodeAffinity | None = None


class EdgeHints(Spec, frozen=True, kw_only=True):
    zone: str = ""
    max_latency_ms: float | None = None
    min_battery_percent: float | None = None
    energy_class: str = ""  # "" | low | normal | high


class KeyToPath(Spec, frozen=True, kw_only=True):
    key: str
    path: str
    mode: int | None = None  # file mode bits (0-0777); None: the volume's defaultMode


class ConfigMapVolumeSource(Spec, frozen=True, kw_only=True):
    name: str
    items: list[KeyToPath] = msgspec.field(default_factory=list)
    optional: bool = False
    default_mode: int | None = None  # file mode bits (0-0777); None: 0644


class SecretVolumeSource(Spec, frozen=True, kw_only=True):
    secret_name: str = ""
    name: str = ""
    items: list[KeyToPath] = msgspec.field(default_factory=list)
    optional: bool = False
    default_mode: int | None = None  # file mode bits (0-0777); None: 0644


class EmptyDirVolumeSource(Spec, frozen=True, kw_only=True):
    medium: str = ""
    size_limit: Quantity | None = None


class HostPathVolumeSource(Spec, frozen=True, kw_only=True):
    path: str
    type: str = ""


class LocalVolumeSource(Spec, frozen=True, kw_only=True):
    name: str


class Volume(Spec, frozen=True, kw_only=True):
    name: str
    empty_dir: EmptyDirVolumeSource | None = None
    config_map: ConfigMapVolumeSource | None = None
    secret: SecretVolumeSource | None = None
    host_path: HostPathVolumeSource | None = None
    local_volume: LocalVolumeSource | None = None


class LocalObjectReference(Spec, frozen=True, kw_only=True):
    """An object in the same namespace, by name (a pod's imagePullSecrets)."""

    name: str


class PodSpec(Spec, frozen=True, kw_only=True):
    containers: list[Container] = msgspec.field(default_factory=list)
    init_containers: list[Container] = msgspec.field(default_factory=list)
    runtime: Runtime = Runtime.OCI
    scheduling_policy: str = ""
    node_name: str = ""
    node_selector: dict[str, str] = msgspec.field(default_factory=dict)
    affinity: Affinity | None = None
    tolerations: list[Toleration] = msgspec.field(default_factory=list)
    edge: EdgeHints | None = None
    priority: int = 0
    restart_policy: RestartPolicy = RestartPolicy.ALWAYS
    termination_grace_period_seconds: int = 30
    volumes: list[Volume] = msgspec.field(default_factory=list)
    hostname: str = ""
    host_network: bool = False
    image_pull_secrets: list[LocalObjectReference] = msgspec.field(default_factory=list)


class ContainerStatus(Spec, frozen=True, kw_only=True, omit_defaults=False):
    name: str
    state: ContainerState = ContainerState.WAITING
    ready: bool = False
    restart_count: int = 0
    image: str = ""
    image_id: str = ""
    container_id: str = ""
    started_at: str = ""
    finished_at: str = ""
    exit_code: int | None = None
    reason: str = ""
    message: str = ""


class PodStatus(Spec, frozen=True, kw_only=True, omit_defaults=False):
    phase: PodPhase = PodPhase.PENDING
    pod_ip: str = msgspec.field(default="", name="podIP")
    host_ip: str = msgspec.field(default="", name="hostIP")
    qos_class: str = ""
    reason: str = ""
    message: str = ""
    start_time: str = ""
    conditions: list[Condition] = msgspec.field(default_factory=list)
    container_statuses: list[ContainerStatus] = msgspec.field(default_factory=list)
    init_container_statuses: list[ContainerStatus] = msgspec.field(default_factory=list)


class Pod(Object, frozen=True, kw_only=True, tag="Pod"):
    api_version: str = API_VERSION
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: PodSpec = msgspec.field(default_factory=PodSpec)
    status: PodStatus = msgspec.field(default_factory=PodStatus)


class PodTemplateSpec(Spec, frozen=True, kw_only=True):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: PodSpec = msgspec.field(default_factory=PodSpec)
