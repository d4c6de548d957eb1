"""What COPY/ADD read: the build context (with ``.dockerignore``) or another stage's root, and owners.

Owns ``.dockerignore`` matching (``*``, ``?``, ``**``, ``!`` exceptions; a match on a directory
excludes what is under it), resolving COPY sources (globs, no escaping the root: ``..`` and
symlinks are resolved as if the root were ``/``), the content hash of the selected sources
(with a stat-keyed cache so a rebuild does not re-read big files), turning a COPY into layer
:class:`Entry` values, and looking up user/group names in a root's ``/etc/passwd``/``/etc/group``.
It must not write layers or run anything.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import posixpath
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from shoal.image.errors import ImageError
from shoal.image.layerwrite import Entry, EntryKind

_MAX_LINKS = 40


class ContextError(ImageError):
    """A COPY/ADD source or owner the builder cannot use."""


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            if pattern.startswith("/", i):
                out[-1] = "(?:.*/)?"
                i += 1
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True, slots=True)
class IgnoreRules:
    rules: tuple[tuple[bool, re.Pattern[str]], ...] = ()  # (is_exception, regex)

    @classmethod
    def parse(cls, text: str) -> IgnoreRules:
        rules = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            line = posixpath.normpath(line.removeprefix("!").strip()).lstrip("/")
            if line in ("", "."):
                continue
            rules.append((negate, _pattern_regex(line)))
        return cls(tuple(rules))

    def ignored(self, rel: str) -> bool:
        """Whether context path ``rel`` is excluded (the last matching rule wins; parents count)."""
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        verdict = False
        for negate, regex in self.rules:
            if any(regex.match(p) for p in prefixes):
                verdict = not negate
        return verdict


def resolve_in_root(root: Path, rel: str, follow_last: bool = True) -> Path:
    """``root/rel`` with every symlink resolved as if ``root`` were ``/`` (never leaves root)."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = root.joinpath(*done, part)
        if candidate.is_symlink() and (parts or follow_last):
            hops += 1
            if hops > _MAX_LINKS:
                raise ContextError(f"{rel}: too many levels of symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        done.append(part)
    return root.joinpath(*done)


@dataclass(frozen=True, slots=True)
class Source:
    """One COPY source: its root, the path below it, and what it is called in the layer."""

    root: Path
    rel: str  # "" for the root itself


class SourceTree:
    """A directory COPY reads from: the build context (with ignore rules) or a stage's root."""

    def __init__(self, root: Path, ignore: IgnoreRules | None = None, what: str = "build context") -> None:
        self.root, self.ignore, self.what = root, ignore or IgnoreRules(), what

    @classmethod
    def context(cls, root: Path) -> SourceTree:
        ignore_file = root / ".dockerignore"
        rules = IgnoreRules.parse(ignore_file.read_text()) if ignore_file.is_file() else IgnoreRules()
        return cls(root, rules)

    def _walk(self) -> Iterator[str]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel_dir = os.path.relpath(dirpath, self.root)
            rel_dir = "" if rel_dir == "." else rel_dir
            dirnames.sort()
            for name in sorted([*dirnames, *filenames]):
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if not self.ignore.ignored(rel):
                    yield rel

    def select(self, pattern: str, inst: str) -> list[str]:
        """Context-relative paths a COPY source names (globs expanded); raises if nothing matches."""
        clean = posixpath.normpath(pattern).lstrip("/")
        if clean == ".." or clean.startswith("../"):
            raise ContextError(f"{inst}: source {pattern!r} is outside the {self.what}; sources must be inside it")
        if clean == ".":
            return [""]
        if any(c in clean for c in "*?["):
            depth = clean.count("/")
            hits = [p for p in self._walk() if p.count("/") == depth and fnmatch.fnmatchcase(p, clean)]
        else:
            path = resolve_in_root(self.root, clean, follow_last=False)
            exists = os.path.lexists(path) and not self.ignore.ignored(clean)
            hits = [os.path.relpath(path, self.root)] if exists else []
        if not hits:
            raise ContextError(
                f"{inst}: {pattern!r} not found in the {self.what}"
                + (" (or excluded by .dockerignore)" if self.ignore.rules else "")
            )
        return hits

    def files_under(self, rel: str) -> list[str]:
        """``rel`` and everything below it (ignored paths excluded), sorted."""
        base = self.root / rel if rel else self.root
        if not base.is_dir() or base.is_symlink():
            return [rel]
        out = [rel] if rel else []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in [*dirnames, *filenames]:
                sub = os.path.relpath(os.path.join(dirpath, name), self.root)
                if not self.ignore.ignored(sub):
                    out.append(sub)
        return sorted(out)


class HashCache:
    """sha256 of files keyed by (path, size, mtime, ctime, inode), persisted as one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._map: dict[str, str] = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            self._map = {}
        self._dirty = False

    def file_digest(self, path: Path, st: os.stat_result) -> str:
        key = f"{path}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
        hit = self._map.get(key)
        if hit is None:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            hit = self._map[key] = h.hexdigest()
            self._dirty = True
        return hit

    def save(self) -> None:
        if self._dirty:
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(self._map))
            os.replace(tmp, self.path)


def tree_digest(tree: SourceTree, rels: list[str], cache: HashCache) -> str:
    """A hash of every selected path's name, type, mode and content (owners and mtimes excluded)."""
    h = hashlib.sha256()
    for top in rels:
        for rel in tree.files_under(top):
            full = tree.root / rel if rel else tree.root
            st = os.lstat(full)
            h.update(f"{rel}\0{st.st_mode:o}\0".encode())
            if stat.S_ISREG(st.st_mode):
                h.update(cache.file_digest(full, st).encode())
            elif stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(full).encode())
            h.update(b"\n")
    return h.hexdigest()


def copy_entries(
    tree: SourceTree, rels: list[str], dest: str, dest_is_dir: bool, uid: int | None, gid: int | None
) -> list[Entry]:
    """Entries placing the sources at ``dest`` (absolute, in the image): dirs copy their contents."""
    out: list[Entry] = []
    base = dest.strip("/")
    for top in rels:
        full_top = tree.root / top if top else tree.root
        is_dir = full_top.is_dir() and not full_top.is_symlink()
        if is_dir:
            target_base = base
        elif dest_is_dir:
            target_base = posixpath.join(base, posixpath.basename(top))
        else:
            target_base = base
        for rel in tree.files_under(top):
            full = tree.root / rel if rel else tree.root
            st = os.lstat(full)
            sub = os.path.relpath(rel or ".", top or ".") if is_dir else "."
            path = posixpath.normpath(posixpath.join(target_base, sub)) if sub != "." else target_base
            if not path or path == ".":
                continue  # the destination root itself keeps its metadata
            owner_uid = st.st_uid if uid is None else uid
            owner_gid = st.st_gid if gid is None else gid
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                out.append(Entry(path, EntryKind.DIR, mode, owner_uid, owner_gid))
            elif stat.S_ISLNK(st.st_mode):
                out.append(Entry(path, EntryKind.SYMLINK, 0o777, owner_uid, owner_gid, link=os.readlink(full)))
            elif stat.S_ISREG(st.st_mode):
                out.append(Entry(path, EntryKind.FILE, mode, owner_uid, owner_gid, source=str(full)))
    return out


def _lookup(root: Path, file: str, name: str) -> int | None:
    path = resolve_in_root(root, file)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    return None


def resolve_owner(root: Path | None, spec: str, what: str) -> tuple[int, int, str]:
    """``user[:group]`` (names or numbers) → (uid, gid, user name or "") using the root's /etc files."""
    user, _, group = spec.partition(":")
    if not user:
        raise ContextError(f"{what}: {spec!r} has no user; use USER[:GROUP], e.g. 1000:1000 or app")
    uid = int(user) if user.isdigit() else (_lookup(root, "etc/passwd", user) if root else None)
    if uid is None:
        raise ContextError(f"{what}: user {user!r} is not in the image's /etc/passwd; add it first or use a number")
    if group:
        gid = int(group) if group.isdigit() else (_lookup(root, "etc/group", group) if root else None)
        if gid is None:
            raise ContextError(f"{what}: group {group!r} is not in the image's /etc/group; use a number")
    else:
        gid = uid if user.isdigit() else _primary_gid(root, user, uid)
    return uid, gid, "" if user.isdigit() else user


def _primary_gid(root: Path | None, user: str, uid: int) -> int:
    if root is None:
        return uid
    try:
        lines = resolve_in_root(root, "etc/passwd").read_text(errors="replace").splitlines()
    except OSError:
        return uid
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == user and fields[3].isdigit():
            return int(fields[3])
    return uid
