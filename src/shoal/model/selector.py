"""Label selectors: the string form users type (``app=web,tier!=db,env in (a,b),!legacy``)
and the structured ``LabelSelector`` of manifests, both compiled to one matcher.

Pure: no I/O. Errors name the offending part of the expression.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from shoal.model.meta import LabelSelector


class SelectorError(ValueError):
    """A selector that does not parse."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "=":
            return labels.get(self.key) in self.values
        if self.operator == "!=":
            return labels.get(self.key) not in self.values
        if self.operator == "in":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "notin":
            return labels.get(self.key) not in self.values
        if self.operator == "exists":
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True, slots=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(req.matches(labels) for req in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def equality_labels(self) -> dict[str, str]:
        """The ``key=value`` requirements, usable as an index lookup."""
        return {r.key: next(iter(r.values)) for r in self.requirements if r.operator == "=" and len(r.values) == 1}


_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_SET = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)\s*$")
_EXISTS = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


def _split_terms(text: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term for term in terms if term.strip()]


def parse_selector(text: str) -> Selector:
    """Parse ``app=web,tier in (a,b),!legacy`` into a ``Selector``."""
    requirements = []
    for term in _split_terms(text or ""):
        if match := _SET.match(term):
            values = frozenset(v.strip() for v in match.group(3).split(",") if v.strip())
            requirements.append(Requirement(match.group(1), match.group(2), values))
        elif match := _EQ.match(term):
            op = "!=" if match.group(2) == "!=" else "="
            requirements.append(Requirement(match.group(1), op, frozenset([match.group(3)])))
        elif match := _EXISTS.match(term):
            op = "!" if match.group(1) else "exists"
            requirements.append(Requirement(match.group(2), op, frozenset()))
        else:
            raise SelectorError(f'cannot parse label selector term "{term.strip()}"; '
                                'use key=value, key!=value, key in (a,b), key notin (a,b), key or !key')
    return Selector(tuple(requirements))


_STRUCTURED_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def from_label_selector(selector: LabelSelector) -> Selector:
    requirements = [Requirement(k, "=", frozenset([v])) for k, v in sorted(selector.match_labels.items())]
    for expr in selector.match_expressions:
        if expr.operator not in _STRUCTURED_OPS:
            raise SelectorError(f'operator "{expr.operator}" is not one of In, NotIn, Exists, DoesNotExist')
        requirements.append(Requirement(expr.key, _STRUCTURED_OPS[expr.operator], frozenset(expr.values)))
    return Selector(tuple(requirements))


def format_labels(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
