"""``shoal image build``: run a parsed Dockerfile into a named image in the content store.

Owns the build loop: stages in order (skipping ones the target does not need), FROM (scratch,
an earlier stage, a local image, or a registry pull), the layer-producing steps COPY/ADD/RUN/
WORKDIR, the layer cache (``ROOT/buildcache/<key>.json``, key = hash of the parent chain, the
resolved instruction and its inputs' content hash; a hit needs no unpacking and no container),
and the final config/manifest. Layers are reproducible (see layerwrite.py) and the config has
no timestamps, so the same inputs give the same digest. It must not print (a :class:`Reporter`
is told about steps) and leaves containers to buildrun.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import posixpath
import shutil
import tarfile
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec

from shoal.image import mediatypes as mt
from shoal.image.assemble import write_image
from shoal.image.buildcontext import HashCache, SourceTree, copy_entries, resolve_in_root, resolve_owner, tree_digest
from shoal.image.buildrun import RunRequest, StepFailedError, StepRunner
from shoal.image.buildsteps import StageState, apply_metadata, declare_arg, step_key
from shoal.image.content import ContentStore
from shoal.image.dockerfile import Dockerfile, DockerfileError, Instruction, Stage, expand_words
from shoal.image.errors import ImageError, ImageNotFoundError
from shoal.image.layers import LayerCache
from shoal.image.layerwrite import Entry, EntryKind, LayerBlob, entries_from_upper, write_layer
from shoal.image.oci import Descriptor, decode_config
from shoal.image.platform import Want, host_platform
from shoal.image.reference import parse_reference
from shoal.image.unpack import WhiteoutMode, apply_layer

_LAYER_STEPS = ("COPY", "ADD", "RUN")


class Reporter(Protocol):
    def step(self, stage: str, index: int, total: int, text: str) -> None: ...
    def output(self, line: str) -> None: ...
    def done(self, cached: bool, seconds: float) -> None: ...


class _Silent:
    def step(self, stage: str, index: int, total: int, text: str) -> None:
        pass

    def output(self, line: str) -> None:
        pass

    def done(self, cached: bool, seconds: float) -> None:
        pass


@dataclass(frozen=True, slots=True)
class BuildOptions:
    context: Path
    dockerfile: Dockerfile
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    platform: Want | None = None
    network_host: bool = False
    target: str | None = None
    no_cache: bool = False
    step_timeout: float = 3600.0


@dataclass(frozen=True, slots=True)
class BuildResult:
    digest: str
    names: tuple[str, ...]
    steps: int
    cached_steps: int


class Builder:
    def __init__(self, store: ContentStore, reporter: Reporter | None = None) -> None:
        self.store, self.reporter = store, reporter or _Silent()
        self.cache_dir = store.root / "buildcache"
        self.cache_dir.mkdir(exist_ok=True)
        self.layers = LayerCache(store)
        self._runner = StepRunner(store.root / "build-work")
        self._hashes = HashCache(self.cache_dir / "files.json")

    # -- cache -------------------------------------------------------------------------------
    def _cached(self, key: str) -> LayerBlob | bool | None:
        """The cached layer for ``key``, None for "cached: no layer", False for a miss."""
        try:
            doc = json.loads((self.cache_dir / f"{key}.json").read_text())
        except (FileNotFoundError, ValueError):
            return False
        if doc.get("layer") is None:
            return None
        desc = msgspec.convert(doc["layer"], Descriptor)
        return LayerBlob(desc, doc["diffId"]) if self.store.has(desc.digest) else False

    def _remember(self, key: str, blob: LayerBlob | None) -> None:
        doc: dict[str, Any] = {"layer": None}
        if blob is not None:
            doc = {"layer": msgspec.to_builtins(blob.descriptor), "diffId": blob.diff_id}
        (self.cache_dir / f"{key}.json").write_text(json.dumps(doc))

    # -- the build ---------------------------------------------------------------------------
    def build(self, opts: BuildOptions) -> BuildResult:
        return asyncio.run(self.build_async(opts))

    async def build_async(self, opts: BuildOptions) -> BuildResult:
        df = opts.dockerfile
        global_args: dict[str, str] = {}
        for inst in df.global_args:
            declare_arg(inst, global_args, opts.build_args, {}, global_args, df.source)
        target = len(df.stages) - 1
        if opts.target is not None:
            found = df.stage_index(opts.target)
            if found is None:
                known = [s.name or str(s.index) for s in df.stages]
                raise DockerfileError(df.source, 0, f"--target {opts.target!r} is not a stage; stages: {known}")
            target = found
        needed = _needed(df, target, global_args)
        total = sum(1 + len(s.instructions) for s in df.stages if s.index in needed)
        states: dict[int, StageState] = {}
        counter = [0, 0]
        for stage in df.stages:
            if stage.index in needed:
                states[stage.index] = await self._stage(opts, stage, states, global_args, counter, total)
        final = states[target]
        config_doc: dict[str, Any] = {
            **final.platform,
            "config": final.config,
            "rootfs": {"type": "layers", "diff_ids": final.diff_ids},
            "history": final.history,
        }
        names = tuple(str(parse_reference(t)) for t in opts.tags)
        desc = write_image(self.store, names, final.layers, config_doc)
        self._hashes.save()
        return BuildResult(desc.digest, names, counter[0], counter[1])

    async def _stage(
        self, opts: BuildOptions, stage: Stage, states: dict[int, StageState],
        global_args: dict[str, str], counter: list[int], total: int,
    ) -> StageState:
        df = opts.dockerfile
        label = stage.name or f"stage-{stage.index}"
        counter[0] += 1
        started = time.monotonic()
        self.reporter.step(label, counter[0], total, stage.base.original)
        state = await self._from(opts, stage, states, global_args)
        counter[1] += 1
        self.reporter.done(True, time.monotonic() - started)
        for inst in stage.instructions:
            counter[0] += 1
            started = time.monotonic()
            self.reporter.step(label, counter[0], total, inst.original)
            if inst.keyword in _LAYER_STEPS or inst.keyword == "WORKDIR":
                cached = await self._layer_step(opts, inst, state, states, label)
            else:
                apply_metadata(inst, state, opts.build_args, global_args, df.source)
                state.key = step_key(state.key, inst.keyword, json.dumps(state.config, sort_keys=True),
                                     json.dumps(state.args, sort_keys=True), json.dumps(state.shell))
                state.record(inst, empty=True)
                cached = True
            counter[1] += cached
            self.reporter.done(cached, time.monotonic() - started)
        return state

    async def _from(
        self, opts: BuildOptions, stage: Stage, states: dict[int, StageState], global_args: dict[str, str]
    ) -> StageState:
        df, inst = opts.dockerfile, stage.base
        image = expand_words(inst.text.split()[0], global_args, df.source, inst.line)[0]
        platform_flag = inst.flag("platform")
        want = opts.platform or host_platform()
        if platform_flag:
            from shoal.image.platform import parse_platform

            want = parse_platform(expand_words(platform_flag, global_args, df.source, inst.line)[0])
        plat = {"architecture": want.architecture, "os": want.os}
        if want.variant:
            plat["variant"] = want.variant
        name = stage.name or str(stage.index)
        earlier = df.stage_index(image)
        if earlier is not None and earlier < stage.index and earlier in states:
            base = states[earlier]
            return StageState(name, step_key(base.key, "FROM"), list(base.layers), list(base.diff_ids),
                              json.loads(json.dumps(base.config)), list(base.history), {}, base.shell,
                              dict(base.platform))
        if image == "scratch":
            return StageState(name, step_key("scratch", json.dumps(plat, sort_keys=True)), platform=plat)
        digest = await self._base_image(image, want, inst, df.source)
        manifest = self.store.manifest(digest)
        raw = json.loads(self.store.read(manifest.config.digest))
        config = decode_config(self.store.read(manifest.config.digest), f"{image}: config")
        plat = {k: raw[k] for k in ("architecture", "os", "variant") if raw.get(k)}
        return StageState(name, step_key(digest), list(manifest.layers), list(config.rootfs.diff_ids),
                          dict(raw.get("config") or {}), list(raw.get("history") or []), platform=plat)

    async def _base_image(self, image: str, want: Want, inst: Instruction, source: str) -> str:
        try:
            return self.store.resolve(image).descriptor.digest
        except ImageNotFoundError:
            pass
        from shoal.image.pull import pull_image

        try:
            result = await pull_image(self.store, parse_reference(image), platform=want)
        except ImageError as exc:
            raise DockerfileError(source, inst.line, f"FROM {image}: {exc}") from None
        return result.digest

    def _lower_dirs(self, state: StageState) -> list[str]:
        dirs = self.layers.ensure_layers([d.digest for d in state.layers], state.diff_ids)
        return [str(p) for p in reversed(dirs)]

    async def _layer_step(
        self, opts: BuildOptions, inst: Instruction, state: StageState, states: dict[int, StageState], label: str
    ) -> bool:
        df = opts.dockerfile
        scope = state.scope()
        if inst.keyword == "WORKDIR":
            apply_metadata(inst, state, opts.build_args, {}, df.source)
            key = step_key(state.key, "WORKDIR", state.workdir())
        elif inst.keyword == "RUN":
            argv = inst.exec_form if inst.exec_form is not None else (*state.shell, inst.text)
            key = step_key(state.key, "RUN", json.dumps(argv), json.dumps(state.run_env()),
                           str(state.config.get("User") or ""), state.workdir(), str(opts.network_host))
        else:
            key = step_key(state.key, inst.keyword, self._copy_inputs(opts, inst, state, states, scope))
        hit = False if opts.no_cache else self._cached(key)
        if hit is False:
            try:
                blob = await self._execute(opts, inst, state, states, scope)
            except StepFailedError as exc:
                raise ImageError(f"{df.source}:{inst.line}: [{label}] {inst.original}: {exc}") from None
            self._remember(key, blob)
        else:
            blob = hit if isinstance(hit, LayerBlob) else None
        if blob is not None:
            state.layers.append(blob.descriptor)
            state.diff_ids.append(blob.diff_id)
        state.key = key
        state.record(inst, empty=blob is None)
        return hit is not False

    def _copy_sources(
        self, opts: BuildOptions, inst: Instruction, states: dict[int, StageState], scope: Mapping[str, str]
    ) -> tuple[list[str], str, str | None]:
        df = opts.dockerfile
        words = (
            list(inst.exec_form) if inst.exec_form is not None
            else expand_words(inst.text, scope, df.source, inst.line)
        )
        if inst.keyword == "ADD" and any("://" in w for w in words[:-1]):
            raise DockerfileError(df.source, inst.line, "ADD from a URL is not supported; download the file "
                                  "into the build context and ADD or COPY it from there")
        frm = inst.flag("from")
        return words[:-1], words[-1], expand_words(frm, scope, df.source, inst.line)[0] if frm else None

    def _copy_inputs(
        self, opts: BuildOptions, inst: Instruction, state: StageState, states: dict[int, StageState],
        scope: Mapping[str, str],
    ) -> str:
        srcs, dest, frm = self._copy_sources(opts, inst, states, scope)
        desc = [json.dumps([srcs, dest, inst.flag("chown"), inst.flag("chmod"), state.workdir()])]
        if frm is None:
            tree = SourceTree.context(opts.context)
            rels = [r for s in srcs for r in tree.select(s, f"{opts.dockerfile.source}:{inst.line}")]
            desc.append(tree_digest(tree, rels, self._hashes))
        else:
            index = opts.dockerfile.stage_index(frm)
            desc.append(states[index].key if index is not None and index in states else f"image:{frm}")
        return "\n".join(desc)

    async def _execute(
        self, opts: BuildOptions, inst: Instruction, state: StageState, states: dict[int, StageState],
        scope: Mapping[str, str],
    ) -> LayerBlob | None:
        lowers = self._lower_dirs(state)
        if inst.keyword == "RUN":
            return await self._run(opts, inst, state, lowers)
        with self._runner.view(lowers) as root:
            if inst.keyword == "WORKDIR":
                path = state.workdir().strip("/")
                if not path or resolve_in_root(root, path).exists():
                    return None
                return write_layer(self.store, _parents(root, path, include_self=True))
            return await self._copy(opts, inst, state, states, scope, root)

    async def _run(self, opts: BuildOptions, inst: Instruction, state: StageState, lowers: list[str]) -> LayerBlob:
        if state.platform.get("architecture", host_platform().architecture) != host_platform().architecture:
            raise StepFailedError(f"RUN needs a {state.platform.get('architecture')} host; this one is "
                                  f"{host_platform().architecture} (build without RUN or on such a node)")
        argv = inst.exec_form if inst.exec_form is not None else (*state.shell, inst.text)
        user_spec = str(state.config.get("User") or "0")
        with self._runner.view(lowers) as root:
            uid, gid, _ = resolve_owner(root, user_spec, f"USER {user_spec}")
            if ":" not in user_spec and user_spec.isdigit():
                gid = 0
        request = RunRequest(tuple(argv), state.run_env(), state.workdir(),
                             _user(uid, gid), opts.network_host, opts.step_timeout)

        def collect(upper: Path, skip: list[str]) -> LayerBlob:
            return write_layer(self.store, entries_from_upper(upper, skip))

        with self.store.lease():
            return await self._runner.run(lowers, request, self.reporter.output, collect)

    async def _copy(
        self, opts: BuildOptions, inst: Instruction, state: StageState, states: dict[int, StageState],
        scope: Mapping[str, str], root: Path,
    ) -> LayerBlob:
        where = f"{opts.dockerfile.source}:{inst.line}"
        srcs, dest, frm = self._copy_sources(opts, inst, states, scope)
        dest_rel = posixpath.normpath(posixpath.join(state.workdir(), dest)).strip("/")
        uid = gid = None
        chown = inst.flag("chown")
        if chown:
            uid, gid, _ = resolve_owner(root, expand_words(chown, scope)[0], f"{where}: --chown")
        with contextlib.ExitStack() as stack:
            if frm is None:
                tree = SourceTree.context(opts.context)
            else:
                lowers, what = await self._other_root(frm, states, where)
                tree = SourceTree(stack.enter_context(self._runner.view(lowers)), what=what)
            rels = [r for s in srcs for r in tree.select(s, where)]
            if inst.keyword == "ADD" and frm is None:
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=self.store.root / "ingest")))
                tree, rels = _extract_archives(tree, rels, tmp)
            existing = resolve_in_root(root, dest_rel) if dest_rel else root
            first = tree.root / rels[0] if rels[0] else tree.root
            dest_is_dir = (
                dest.endswith("/") or len(rels) > 1 or any(c in "".join(srcs) for c in "*?[")
                or existing.is_dir() or (first.is_dir() and not first.is_symlink())
            )
            entries = _chmod(copy_entries(tree, rels, "/" + dest_rel, dest_is_dir, uid, gid), inst.flag("chmod"), where)
            parents = _parents(root, dest_rel, include_self=dest_is_dir, owner=(uid, gid))
            have = {e.path for e in entries}
            return write_layer(self.store, [*entries, *(p for p in parents if p.path not in have)])

    async def _other_root(self, frm: str, states: dict[int, StageState], where: str) -> tuple[list[str], str]:
        """Lower dirs (topmost first) of a stage, or of an image when ``frm`` is not a stage name."""
        for index, st in states.items():
            if st.name == frm.lower() or str(index) == frm:
                return self._lower_dirs(st), f"stage {frm!r}"
        digest = await self._base_image(frm, host_platform(), Instruction(0, "COPY", ""), where)
        manifest = self.store.manifest(digest)
        config = decode_config(self.store.read(manifest.config.digest), frm)
        dirs = self.layers.ensure_layers([d.digest for d in manifest.layers], list(config.rootfs.diff_ids))
        return [str(p) for p in reversed(dirs)], f"image {frm!r}"


def _user(uid: int, gid: int) -> Any:
    from shoal.runtime.protocol import User

    return User(uid=uid, gid=gid)


def _chmod(entries: list[Entry], flag: str | None, where: str) -> list[Entry]:
    if flag is None:
        return entries
    try:
        mode = int(flag, 8)
    except ValueError:
        raise ImageError(f"{where}: --chmod={flag!r} must be octal, e.g. --chmod=0755") from None
    return [
        Entry(e.path, e.kind, mode, e.uid, e.gid, e.source, e.link) if e.kind in (EntryKind.FILE, EntryKind.DIR)
        else e
        for e in entries
    ]


def _parents(root: Path, rel: str, include_self: bool,
             owner: tuple[int | None, int | None] = (None, None)) -> list[Entry]:
    """DIR entries for the missing directories leading to ``rel`` (and ``rel`` itself if asked).

    Parents are root-owned; the destination itself takes ``owner`` (from --chown) when given."""
    parts = [p for p in rel.split("/") if p]
    out = []
    for i in range(len(parts) if include_self else len(parts) - 1):
        path = "/".join(parts[: i + 1])
        if not resolve_in_root(root, path).exists():
            last = i == len(parts) - 1
            uid, gid = ((owner[0] or 0), (owner[1] or 0)) if last else (0, 0)
            out.append(Entry(path, EntryKind.DIR, 0o755, uid, gid))
    return out


def _extract_archives(tree: SourceTree, rels: list[str], tmp: Path) -> tuple[SourceTree, list[str]]:
    """ADD: local tar archives (plain, gzip, zstd) are unpacked safely; other sources are copied."""
    out = []
    for i, rel in enumerate(rels):
        src = tree.root / rel if rel else tree.root
        slot = tmp / str(i)
        slot.mkdir()
        if src.is_file() and not src.is_symlink() and _is_archive(src):
            with open(src, "rb") as f:
                apply_layer(f, slot, mode=WhiteoutMode.APPLY)
            out.append(str(i))
        elif src.is_dir() and not src.is_symlink():
            shutil.copytree(src, slot, symlinks=True, dirs_exist_ok=True)
            out.append(str(i))
        else:
            shutil.copy2(src, slot / src.name, follow_symlinks=False)
            out.append(f"{i}/{src.name}")
    return SourceTree(tmp, what="ADD sources"), out


def _is_archive(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4)
    if mt.sniff_compression(head) is not mt.Compression.NONE:
        return True
    return bool(tarfile.is_tarfile(path))


def _needed(df: Dockerfile, target: int, global_args: Mapping[str, str]) -> set[int]:
    """Stages the target depends on (through FROM <stage> and COPY --from=<stage>)."""
    needed: set[int] = set()
    todo = [target]
    while todo:
        index = todo.pop()
        if index in needed:
            continue
        needed.add(index)
        stage = df.stages[index]
        refs = [expand_words(stage.base.text.split()[0], global_args)[0]]
        refs += [i.flag("from") or "" for i in stage.instructions if i.flag("from")]
        for ref in refs:
            found = df.stage_index(ref)
            if found is not None and found < index:
                todo.append(found)
    return needed
