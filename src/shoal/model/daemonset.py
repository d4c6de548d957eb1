"""The DaemonSet kind: one pod of a template on every node its template selects.

Shapes only, following Kubernetes' field names (``updateStrategy.rollingUpdate.maxUnavailable``)
plus shoal's ``progressDeadlineSeconds``/``autoRollback`` as on Deployment. Which nodes a pod
belongs on and how an update rolls are the DaemonSet controller's rules, not this module's.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from shoal.model.base import API_VERSION, Object, Spec
from shoal.model.errors import FieldError
from shoal.model.meta import Condition, LabelSelector, ObjectMeta
from shoal.model.pod import PodTemplateSpec
from shoal.model.selector import SelectorError, from_label_selector


class DaemonSetStrategyType(StrEnum):
    ROLLING_UPDATE = "RollingUpdate"
    ON_DELETE = "OnDelete"


class DaemonSetRollingUpdate(Spec, frozen=True, kw_only=True):
    max_unavailable: int | str = 1


class DaemonSetUpdateStrategy(Spec, frozen=True, kw_only=True):
    type: DaemonSetStrategyType = DaemonSetStrategyType.ROLLING_UPDATE
    rolling_update: DaemonSetRollingUpdate | None = None


class DaemonSetSpec(Spec, frozen=True, kw_only=True, omit_defaults=False):
    selector: LabelSelector = msgspec.field(default_factory=LabelSelector)
    template: PodTemplateSpec = msgspec.field(default_factory=PodTemplateSpec)
    update_strategy: DaemonSetUpdateStrategy = msgspec.field(default_factory=DaemonSetUpdateStrategy)
    min_ready_seconds: int = 0
    progress_deadline_seconds: int = 600
    auto_rollback: bool = False
    revision_history_limit: int = 10


class DaemonSetStatus(Spec, frozen=True, kw_only=True, omit_defaults=False):
    observed_generation: int = 0
    desired_number_scheduled: int = 0
    current_number_scheduled: int = 0
    number_misscheduled: int = 0
    number_ready: int = 0
    number_available: int = 0
    number_unavailable: int = 0
    updated_number_scheduled: int = 0
    conditions: list[Condition] = msgspec.field(default_factory=list)


class DaemonSet(Object, frozen=True, kw_only=True, tag="DaemonSet"):
    api_version: str = API_VERSION
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: DaemonSetSpec = msgspec.field(default_factory=DaemonSetSpec)
    status: DaemonSetStatus = msgspec.field(default_factory=DaemonSetStatus)


def max_unavailable_errors(value: int | str, path: str) -> list[FieldError]:
    """``value`` must be a non-negative int or a percentage such as "25%"."""
    if isinstance(value, int):
        return [] if value >= 0 else [FieldError(path, "must not be negative")]
    text = value.strip()
    number = text[:-1] if text.endswith("%") else text
    if not number.isdigit():
        return [FieldError(path, f'"{value}" is neither a number nor a percentage; e.g. 1 or "25%"')]
    return []


def daemonset_errors(ds: DaemonSet) -> list[FieldError]:
    """DaemonSet-specific semantic problems (the pod template itself is checked by ``validation``)."""
    spec = ds.spec
    errors: list[FieldError] = []
    if not spec.selector.match_labels and not spec.selector.match_expressions:
        errors.append(FieldError("spec.selector", "required; e.g. selector: {matchLabels: {app: agent}}"))
    else:
        try:
            matches = from_label_selector(spec.selector).matches(spec.template.metadata.labels)
        except SelectorError as exc:
            errors.append(FieldError("spec.selector", str(exc)))
        else:
            if not matches:
                errors.append(FieldError("spec.template.metadata.labels", "must match spec.selector, or the "
                                         "DaemonSet would never see its own pods"))
    if spec.template.spec.node_name:
        errors.append(FieldError("spec.template.spec.nodeName", "leave empty; the DaemonSet sets it per node"))
    rolling = spec.update_strategy.rolling_update
    if rolling is not None:
        errors += max_unavailable_errors(rolling.max_unavailable, "spec.updateStrategy.rollingUpdate.maxUnavailable")
    if spec.progress_deadline_seconds < 1:
        errors.append(FieldError("spec.progressDeadlineSeconds", "must be at least 1"))
    return errors
