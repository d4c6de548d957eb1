"""A Deployment's revision history: one ``DeploymentRevision`` per distinct pod template.

``plan_history`` is pure: given the Deployment, the revisions it owns, the template hash of its
``spec.template`` and the hashes that still have live pods, it says which revision is current and
returns the creates/updates/deletes that keep the history right. A new template gets revision
``max + 1``; returning to an older template (``shoal rollout undo``, an automatic rollback) moves
that revision to ``max + 1`` (as Kubernetes renumbers ReplicaSets). Old revisions beyond
``spec.revisionHistoryLimit`` are deleted oldest first, never one that still has pods.
Revisions left behind by a deleted Deployment are found by ``orphaned_revisions``.
This module never reads the store and never touches pods.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import msgspec

from shoal.controllers.actions import Action, Create, Update, delete_of
from shoal.model import Deployment, DeploymentRevision, ObjectMeta, OwnerReference
from shoal.model.workloads import ANNOTATION_CHANGE_CAUSE, LABEL_DEPLOYMENT, LABEL_TEMPLATE_HASH

_MAX_NAME = 253


@dataclass(frozen=True)
class HistoryPlan:
    current: int  # the revision number of spec.template
    previous: DeploymentRevision | None  # the newest other revision: where a rollback goes
    steps: list[Action] = field(default_factory=list)


def revision_name(deploy: Deployment, pod_hash: str) -> str:
    return f"{deploy.metadata.name[: _MAX_NAME - len(pod_hash) - 1]}-{pod_hash}"


def hash_of(revision: DeploymentRevision) -> str:
    return revision.metadata.labels.get(LABEL_TEMPLATE_HASH, "")


def new_revision(deploy: Deployment, pod_hash: str, number: int) -> DeploymentRevision:
    owner = OwnerReference(api_version=deploy.api_version, kind="Deployment", name=deploy.metadata.name,
                           uid=deploy.metadata.uid, controller=True, block_owner_deletion=True)
    labels = {LABEL_DEPLOYMENT: deploy.metadata.name, LABEL_TEMPLATE_HASH: pod_hash}
    metadata = ObjectMeta(name=revision_name(deploy, pod_hash), namespace=deploy.metadata.namespace,
                          labels=labels, owner_references=[owner])
    return DeploymentRevision(metadata=metadata, revision=number, template=deploy.spec.template,
                              change_cause=deploy.metadata.annotations.get(ANNOTATION_CHANGE_CAUSE, ""))


def plan_history(deploy: Deployment, revisions: Sequence[DeploymentRevision], pod_hash: str,
                 hashes_with_pods: Collection[str]) -> HistoryPlan:
    """The current revision number, the rollback target and the history writes for one reconcile."""
    ordered = sorted(revisions, key=lambda r: (r.revision, r.metadata.name))
    highest = ordered[-1].revision if ordered else 0
    match = next((r for r in reversed(ordered) if hash_of(r) == pod_hash), None)
    steps: list[Action] = []
    if match is None:
        current = highest + 1
        steps.append(Create(new_revision(deploy, pod_hash, current)))
    elif match.revision != highest or sum(1 for r in ordered if r.revision == highest) > 1:
        current = highest + 1
        steps.append(Update(msgspec.structs.replace(match, revision=current)))
    else:
        current = match.revision
    others = [r for r in ordered if r is not match]
    previous = others[-1] if others else None
    limit = max(deploy.spec.revision_history_limit, 0)
    prunable = [r for r in others if hash_of(r) not in hashes_with_pods]
    excess = len(others) - limit
    for revision in prunable[:max(excess, 0)]:
        if revision is previous and limit > 0:
            continue
        steps.append(delete_of(revision))
    return HistoryPlan(current, previous, steps)


def orphaned_revisions(namespace: str, name: str, revisions: Sequence[DeploymentRevision],
                       owner_alive: Callable[[str], bool]) -> list[Action]:
    """Deletes for revisions of Deployment ``name`` whose owning Deployment (by uid) is gone."""
    steps: list[Action] = []
    for revision in revisions:
        if revision.metadata.namespace != namespace or revision.metadata.labels.get(LABEL_DEPLOYMENT) != name:
            continue
        uids = [ref.uid for ref in revision.metadata.owner_references if ref.controller and ref.kind == "Deployment"]
        if uids and not any(owner_alive(uid) for uid in uids):
            steps.append(delete_of(revision, precondition=False))
    return steps
