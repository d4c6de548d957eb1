"""Workload kinds that stamp pods from a template: Deployment (more join later)."""

from __future__ import annotations

from enum import StrEnum

import msgspec

from shoal.model.base import API_VERSION, Object, Spec
from shoal.model.meta import Condition, LabelSelector, ObjectMeta
from shoal.model.pod import PodTemplateSpec


class StrategyType(StrEnum):
    ROLLING_UPDATE = "RollingUpdate"
    RECREATE = "Recreate"


class RollingUpdate(Spec, frozen=True, kw_only=True):
    max_surge: int | str = 1
    max_unavailable: int | str = 0


class PauseStep(Spec, frozen=True, kw_only=True):
    duration: str = ""


class CanaryStep(Spec, frozen=True, kw_only=True):
    set_weight: int | None = None
    pause: PauseStep | None = None


class Canary(Spec, frozen=True, kw_only=True):
    steps: list[CanaryStep] = msgspec.field(default_factory=list)


class DeploymentStrategy(Spec, frozen=True, kw_only=True):
    type: StrategyType = StrategyType.ROLLING_UPDATE
    rolling_update: RollingUpdate | None = None
    canary: Canary | None = None


class DeploymentSpec(Spec, frozen=True, kw_only=True, omit_defaults=False):
    replicas: int = 1
    selector: LabelSelector = msgspec.field(default_factory=LabelSelector)
    template: PodTemplateSpec = msgspec.field(default_factory=PodTemplateSpec)
    strategy: DeploymentStrategy = msgspec.field(default_factory=DeploymentStrategy)
    min_ready_seconds: int = 0
    progress_deadline_seconds: int = 600
    auto_rollback: bool = False
    revision_history_limit: int = 10
    paused: bool = False


class DeploymentStatus(Spec, frozen=True, kw_only=True, omit_defaults=False):
    observed_generation: int = 0
    replicas: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    unavailable_replicas: int = 0
    conditions: list[Condition] = msgspec.field(default_factory=list)


class Deployment(Object, frozen=True, kw_only=True, tag="Deployment"):
    api_version: str = API_VERSION
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: DeploymentSpec = msgspec.field(default_factory=DeploymentSpec)
    status: DeploymentStatus = msgspec.field(default_factory=DeploymentStatus)


LABEL_TEMPLATE_HASH = "shoal.io/template-hash"
