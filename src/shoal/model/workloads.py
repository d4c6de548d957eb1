"""Workload kinds that stamp pods from a template: Deployment, and its rollout history.

``DeploymentRevision`` is shoal's ControllerRevision: one immutable snapshot of a Deployment's
pod template per rollout, numbered, owned by the Deployment (Kubernetes keeps this history in
ReplicaSets; shoal has none). ``shoal rollout undo`` and the automatic rollback copy a revision's
template back into ``spec.template``. Shapes only; the rules live in ``shoal.controllers``.
"""

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
    updated_ready_replicas: int = 0
    canary_step: int = 0  # index of the canary step in force (len(steps) when done)
    canary_step_started: str = ""
    conditions: list[Condition] = msgspec.field(default_factory=list)


class Deployment(Object, frozen=True, kw_only=True, tag="Deployment"):
    api_version: str = API_VERSION
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: DeploymentSpec = msgspec.field(default_factory=DeploymentSpec)
    status: DeploymentStatus = msgspec.field(default_factory=DeploymentStatus)


class DeploymentRevision(Object, frozen=True, kw_only=True, tag="DeploymentRevision"):
    """The pod template of one rollout of a Deployment, named ``<deployment>-<template hash>``."""

    api_version: str = API_VERSION
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    revision: int = 0
    template: PodTemplateSpec = msgspec.field(default_factory=PodTemplateSpec)
    change_cause: str = ""


class ConditionType(StrEnum):
    AVAILABLE = "Available"
    PROGRESSING = "Progressing"
    ROLLED_BACK = "RolledBack"


class RolloutReason(StrEnum):
    """Reasons of the Progressing and RolledBack conditions (Kubernetes' names where they exist)."""

    NEW_REVISION = "NewRevisionCreated"
    UPDATED = "RevisionUpdated"
    AVAILABLE = "NewRevisionAvailable"
    DEADLINE = "ProgressDeadlineExceeded"
    PAUSED = "DeploymentPaused"
    CANARY_PAUSE = "CanaryPause"
    RESUMED = "DeploymentResumed"


LABEL_TEMPLATE_HASH = "shoal.io/template-hash"
LABEL_DEPLOYMENT = "shoal.io/deployment"  # on a DeploymentRevision: the name of its Deployment
ANNOTATION_REVISION = "shoal.io/revision"  # on a Deployment and its pods: the revision number
ANNOTATION_CHANGE_CAUSE = "shoal.io/change-cause"  # on a Deployment: copied into the revision it starts
ANNOTATION_RESTARTED_AT = "shoal.io/restartedAt"  # on a pod template: set by `shoal rollout restart`
