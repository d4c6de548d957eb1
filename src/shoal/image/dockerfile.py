"""A pure Dockerfile parser: lines, continuations, comments, flags, JSON/shell forms, stages.

Owns turning Dockerfile text into frozen :class:`Instruction` values grouped into
:class:`Stage` s, and the word lexer (:func:`expand_words`) that applies ARG/ENV substitution
(``$V``, ``${V}``, ``${V:-default}``, ``${V:+alt}``) with shell quoting, as Docker does for
FROM, COPY, ADD, ENV, ARG, LABEL, WORKDIR, USER, EXPOSE. Every error is a
:class:`DockerfileError` naming the line and the fix. It must not touch files or run anything.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from shoal.image.errors import ImageError

KEYWORDS = (
    "FROM", "RUN", "CMD", "ENTRYPOINT", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "EXPOSE",
    "LABEL", "HEALTHCHECK", "SHELL", "STOPSIGNAL", "VOLUME", "MAINTAINER",
)
_FLAGS: dict[str, tuple[str, ...]] = {
    "FROM": ("platform",),
    "COPY": ("from", "chown", "chmod"),
    "ADD": ("chown", "chmod"),
    "HEALTHCHECK": ("interval", "timeout", "start-period", "start-interval", "retries"),
}
_EXEC_FORM = ("RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME")
_NEEDS_ARGS = frozenset(KEYWORDS) - {"HEALTHCHECK"}


class DockerfileError(ImageError):
    """A Dockerfile the builder cannot use; ``line`` is 1-based (0 when it is not about one line)."""

    def __init__(self, source: str, line: int, message: str) -> None:
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")
        self.line = line


@dataclass(frozen=True, slots=True)
class Instruction:
    line: int
    keyword: str
    text: str  # the rest of the instruction after flags, continuations joined
    flags: tuple[tuple[str, str], ...] = ()
    exec_form: tuple[str, ...] | None = None  # set when written as a JSON array

    def flag(self, name: str) -> str | None:
        for key, value in self.flags:
            if key == name:
                return value
        return None

    @property
    def original(self) -> str:
        flags = "".join(f"--{k}={v} " for k, v in self.flags)
        return f"{self.keyword} {flags}{self.text}".strip()


@dataclass(frozen=True, slots=True)
class Stage:
    index: int
    name: str | None
    base: Instruction  # the FROM
    instructions: tuple[Instruction, ...]


@dataclass(frozen=True, slots=True)
class Dockerfile:
    source: str
    global_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...] = field(default=())

    def stage_index(self, name: str) -> int | None:
        for stage in self.stages:
            if stage.name is not None and stage.name == name.lower():
                return stage.index
        return int(name) if name.isdigit() and int(name) < len(self.stages) else None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (pending and not stripped):
            continue  # comments and blank lines inside a continuation are dropped, as Docker does
        if not pending:
            start = number
            if not stripped:
                continue
        body = raw.rstrip()
        if body.endswith("\\"):
            pending.append(body[:-1])
            continue
        pending.append(body)
        out.append((start, " ".join(p.strip() for p in pending if p.strip())))
        pending = []
    if pending:
        out.append((start, " ".join(p.strip() for p in pending if p.strip())))
    return out


def _split_flags(keyword: str, rest: str, source: str, line: int) -> tuple[tuple[tuple[str, str], ...], str]:
    flags: list[tuple[str, str]] = []
    allowed = _FLAGS.get(keyword, ())
    while rest.startswith("--"):
        token, _, after = rest.partition(" ")
        name, eq, value = token[2:].partition("=")
        if name not in allowed:
            hint = f"; {keyword} takes {', '.join('--' + a for a in allowed)}" if allowed else ""
            raise DockerfileError(source, line, f"{keyword} does not take the flag --{name}{hint}")
        if not eq or not value:
            raise DockerfileError(source, line, f"flag --{name} needs a value, e.g. --{name}=VALUE")
        flags.append((name, value))
        rest = after.strip()
    return tuple(flags), rest


def _json_form(rest: str, source: str, line: int, keyword: str) -> tuple[str, ...] | None:
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except json.JSONDecodeError:
        return None  # Docker treats a malformed JSON array as shell form
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DockerfileError(source, line, f"{keyword}: the JSON form must be an array of strings")
    return tuple(value)


def parse(text: str, source: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile text; raises DockerfileError with the line number and a fix."""
    global_args: list[Instruction] = []
    stages: list[tuple[str | None, Instruction, list[Instruction]]] = []
    for line, logical in _logical_lines(text):
        keyword_raw, _, rest = logical.partition(" ")
        keyword, rest = keyword_raw.upper(), rest.strip()
        if keyword not in KEYWORDS:
            close = difflib.get_close_matches(keyword, KEYWORDS, n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; expected one of {', '.join(KEYWORDS)}"
            raise DockerfileError(source, line, f"unknown instruction {keyword_raw!r}{hint}")
        flags, rest = _split_flags(keyword, rest, source, line)
        if not rest and keyword in _NEEDS_ARGS:
            raise DockerfileError(source, line, f"{keyword} needs arguments")
        exec_form = _json_form(rest, source, line, keyword) if keyword in _EXEC_FORM else None
        if keyword == "SHELL" and exec_form is None:
            raise DockerfileError(source, line, 'SHELL must be a JSON array, e.g. SHELL ["/bin/sh", "-c"]')
        if keyword in ("COPY", "ADD"):
            sources = exec_form if exec_form is not None else tuple(expand_words(rest, {}, source, line))
            if len(sources) < 2:
                raise DockerfileError(source, line, f"{keyword} needs at least one source and a destination")
        if keyword in ("ENV", "ARG", "LABEL", "USER", "WORKDIR", "EXPOSE", "FROM"):
            expand_words(rest, {}, source, line)  # reject unterminated quotes now, with the line
        instruction = Instruction(line, keyword, rest, flags, exec_form)
        if keyword == "FROM":
            words = rest.split()
            name = None
            if len(words) == 3 and words[1].lower() == "as":
                name = words[2].lower()
            elif len(words) != 1:
                raise DockerfileError(source, line, "FROM takes IMAGE [AS NAME], e.g. FROM busybox:1.36 AS build")
            if name is not None and any(s[0] == name for s in stages):
                raise DockerfileError(source, line, f"stage name {name!r} is already used; pick another")
            stages.append((name, instruction, []))
        elif not stages:
            if keyword != "ARG":
                raise DockerfileError(
                    source, line, f"{keyword} before the first FROM; only ARG may come before FROM"
                )
            global_args.append(instruction)
        else:
            stages[-1][2].append(instruction)
    if not stages:
        raise DockerfileError(source, 0, "no FROM instruction; start with e.g. FROM scratch")
    return Dockerfile(
        source,
        tuple(global_args),
        tuple(Stage(i, name, base, tuple(body)) for i, (name, base, body) in enumerate(stages)),
    )


def _variable(text: str, i: int, env: Mapping[str, str], source: str, line: int) -> tuple[str, int]:
    """Expand the variable starting after ``$`` at ``text[i]``; returns (value, next index)."""
    if i < len(text) and text[i] == "{":
        end = text.find("}", i)
        if end < 0:
            raise DockerfileError(source, line, "unterminated ${...}; add the closing }")
        body = text[i + 1 : end]
        name, op, word = body, "", ""
        for candidate in (":-", ":+"):
            if candidate in body:
                name, word = body.split(candidate, 1)
                op = candidate
                break
        if not name or not (name[0].isalpha() or name[0] == "_") or not name.replace("_", "a").isalnum():
            raise DockerfileError(source, line, f"bad substitution ${{{body}}}; use ${{NAME}} or ${{NAME:-default}}")
        value = env.get(name, "")
        if op == ":-":
            value = value or "".join(expand_words(word, env, source, line, split=False))
        elif op == ":+":
            value = "".join(expand_words(word, env, source, line, split=False)) if value else ""
        return value, end + 1
    j = i
    while j < len(text) and (text[j].isalnum() or text[j] == "_"):
        j += 1
    if j == i:
        return "$", i
    return env.get(text[i:j], ""), j


def expand_words(
    text: str, env: Mapping[str, str], source: str = "Dockerfile", line: int = 0, split: bool = True
) -> list[str]:
    """Shell-like words of ``text``: quotes removed, ``\\`` escapes, variables expanded (not in '')."""
    words: list[str] = []
    current: list[str] = []
    has_word = False
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if quote == "'":
            if c == "'":
                quote = ""
            else:
                current.append(c)
            i += 1
        elif c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if quote == '"' and nxt not in '"\\$':
                current.append(c)
            current.append(nxt)
            has_word = True
            i += 2
        elif c == "$":
            value, i = _variable(text, i + 1, env, source, line)
            current.append(value)
            has_word = has_word or bool(value) or bool(quote)
        elif quote == '"':
            if c == '"':
                quote = ""
            else:
                current.append(c)
            i += 1
        elif c in "'\"":
            quote, has_word = c, True
            i += 1
        elif c.isspace() and split:
            if has_word or current:
                words.append("".join(current))
            current, has_word = [], False
            i += 1
        else:
            current.append(c)
            has_word = True
            i += 1
    if quote:
        raise DockerfileError(source, line, f"unterminated {quote} quote; close it on the same logical line")
    if has_word or current:
        words.append("".join(current))
    return words


def key_values(
    inst: Instruction, env: Mapping[str, str], source: str, legacy: bool = True
) -> list[tuple[str, str]]:
    """``K=V K2="v 2"`` pairs of ENV/LABEL (and legacy ``ENV K some value``)."""
    words = expand_words(inst.text, env, source, inst.line)
    if legacy and words and "=" not in words[0]:
        if len(words) < 2:
            raise DockerfileError(source, inst.line, f"{inst.keyword} {words[0]} needs a value: {words[0]}=VALUE")
        first = inst.text.split(None, 1)
        rest = expand_words(first[1], env, source, inst.line, split=False)
        return [(words[0], " ".join(rest).strip())]
    out = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise DockerfileError(source, inst.line, f"{inst.keyword}: {word!r} is not KEY=VALUE")
        out.append((key, value))
    return out
