"""Read image layers once, as streams, and keep only the files catalogers want.

Each layer is a tar (uncompressed, gzip or zstd: sniffed from its first bytes, media
types are not trusted) read front to back with :mod:`vulnwatch.tarstream` (a strict,
forward-only tar reader that skips unwanted bodies in 1 MiB chunks). Layers
are applied bottom to top like overlayfs: ``.wh.<name>`` deletes ``<name>`` of the
layers below, ``.wh..wh..opq`` empties a directory of the layers below. Symlinks are
recorded (never followed out of the image root) so that a file wanted at
``lib/apk/db/installed`` is found when ``lib -> usr/lib``.

Limits (:class:`LayerLimits`) guard against hostile layers: per-file size, total
uncompressed bytes, compression ratio (decompression bombs), number of entries,
symlink hops; names that climb out of the root with ``..`` are refused.

:class:`LayerStack` splits the walk in two so layers can be cached
(:mod:`vulnwatch.layercache`): ``read`` streams one blob on top of the layers applied
so far and returns what it contributes (:class:`LayerContents`), ``apply`` puts such
contents on the stack, ``result`` is the merged :class:`WalkResult`.
:func:`walk_layers` is read + apply for every layer; :class:`CatalogPlan` turns
catalogers into the walker's ``wants`` and executable reader and catalogs a result.
"""

from __future__ import annotations

import io
import zlib
from collections import ChainMap
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, BinaryIO

import zstandard

try:  # ISA-L inflates about twice as fast as zlib; same API, same checks (CRC, length)
    from isal import isal_zlib as _inflate
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    _inflate = zlib
_INFLATE_ERRORS = (zlib.error,) if _inflate is zlib else (zlib.error, _inflate.error)

from .catalogers.interface import CatalogContext, Cataloger, CatalogError, Distro
from .catalogers.os_release import OS_RELEASE_PATHS, find_distro
from .model import Package
from .tarstream import EntryType, TarFormatError, TarStreamReader

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OS_RELEASE_MAX_SIZE = 64 * 1024
"""Size limit for os-release files (wanted whatever the catalogers are)."""

Wants = Callable[[str], "int | None"]
"""``wants(path) -> max size`` to keep the file at ``path``, or None to skip it."""
ExecutableReader = Callable[[str, IO[bytes], int], "bytes | None"]
"""``reader(path, stream, size) -> bytes to keep`` for regular files with an exec bit."""
ReducerFor = Callable[[str], "ExecutableReader | None"]
"""``reducer_for(path)``: for a wanted file, the function that reads it as it streams past and
returns the small stand-in to keep (same signature as an executable reader), or None to keep
the file whole."""


class LayerError(Exception):
    """A layer cannot be read safely. The message names the layer and, when known, the
    path inside it, and says which limit was hit or what is damaged."""

    def __init__(self, layer: str, message: str, *, path: str | None = None, code: str = "LayerUnreadable") -> None:
        where = f"layer {layer}" + (f", {path!r}" if path is not None else "")
        super().__init__(f"{where}: {message}")
        self.layer = layer
        self.path = path
        self.code = code


@dataclass(frozen=True)
class LayerLimits:
    """Safety limits for reading layers. The defaults suit real images."""

    max_file_size: int = 256 * 1024 * 1024
    """Upper bound for any kept file, whatever a cataloger asks for."""
    oversize_is_error: bool = False
    """False: a wanted file over its size limit is skipped with a warning; True: LayerError."""
    max_total_bytes: int = 16 * 1024 * 1024 * 1024
    """Uncompressed bytes over all layers of one image."""
    max_ratio: float = 200.0
    """Largest uncompressed/compressed ratio tolerated for one layer (decompression bomb)..."""
    ratio_min_bytes: int = 64 * 1024 * 1024
    """... checked once a layer has produced this many uncompressed bytes."""
    max_entries: int = 2_000_000
    """Tar entries over all layers."""
    max_symlink_hops: int = 40
    """Symlinks followed while resolving one path (Linux uses 40); more is a loop."""
    max_executable_size: int = 256 * 1024 * 1024
    """Executables larger than this are not offered to the executable reader."""


@dataclass(frozen=True)
class WalkedFile:
    """A file kept by the walker: its final content in the merged filesystem."""

    path: str
    """Path in the image, relative to the root (``var/lib/dpkg/status``)."""
    data: bytes
    """Content (for executables: what the executable reader chose to keep)."""
    layer: str
    """The layer (as named by the caller, normally the diff id) that wrote this version."""
    mode: int = 0o644
    """Permission bits from the tar header."""


@dataclass(frozen=True)
class WalkResult:
    """The merged view of the wanted files after all layers and whiteouts."""

    files: Mapping[str, WalkedFile]
    """Wanted files by path. A file reachable through a symlink is also listed under
    the symlinked path when that path is wanted."""
    executables: Mapping[str, WalkedFile]
    """What the executable reader kept, by path."""
    symlinks: Mapping[str, str]
    """Final symlinks: path -> target as written in the tar."""
    warnings: tuple[str, ...] = ()
    """Remarks naming layer and path (skipped oversize files, unreadable hardlinks, ...)."""
    layers: tuple[str, ...] = ()
    """The layers read, bottom first."""

    def data(self) -> dict[str, bytes]:
        """Path -> bytes of the wanted files."""
        return {p: f.data for p, f in self.files.items()}

    def layer_of(self) -> dict[str, str]:
        """Path -> layer for wanted files and executables."""
        out = {p: f.layer for p, f in self.executables.items()}
        out.update({p: f.layer for p, f in self.files.items()})
        return out


# ---------------------------------------------------------------- streams

class _CountingReader(io.RawIOBase):
    """Counts bytes read from a binary stream (the compressed side)."""

    def __init__(self, raw: IO[bytes], prefix: bytes = b"") -> None:
        self._raw = raw
        self._prefix = prefix
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = len(b)
        if self._prefix:
            chunk = self._prefix[:n]
            self._prefix = self._prefix[len(chunk):]
        else:
            chunk = self._raw.read(n)
        if not chunk:
            return 0
        b[: len(chunk)] = chunk
        self.count += len(chunk)
        return len(chunk)


_CHUNK_SIZE = 1 << 20
"""Compressed bytes read from the blob at a time, and most uncompressed bytes produced at
a time: bodies nobody wants are skipped in chunks this large."""


class _LayerSource:
    """A layer blob as chunks of its uncompressed tar stream (``next_chunk``), enforcing
    the limits on the uncompressed side: total bytes and the compression ratio."""

    def __init__(self, layer: str, stream: IO[bytes], head: bytes, limits: LayerLimits,
                 total_before: int) -> None:
        self._layer = layer
        self._limits = limits
        self._total_before = total_before
        self.count = 0
        """Uncompressed bytes produced so far."""
        self.compressed: int | None = None
        """Compressed bytes consumed so far (None for an uncompressed layer)."""
        self.current_path: str | None = None
        """The tar entry being read, for error messages."""
        if head.startswith(b"\x1f\x8b"):
            self.compressed = 0
            self._chunks = self._gunzip(stream, head)
        elif head.startswith(b"\x28\xb5\x2f\xfd"):
            self.compressed = 0
            self._chunks = self._unzstd(stream, head)
        elif head.startswith(b"BZh") or head.startswith(b"\xfd7zXZ"):
            raise LayerError(layer, "bzip2/xz compressed layers are not supported (OCI layers are tar, gzip or zstd)",
                             code="LayerUnsupported")
        else:
            self._chunks = self._raw(stream, head)  # uncompressed tar (the tar reader checks)

    def _gunzip(self, stream: IO[bytes], data: bytes) -> Iterator[bytes]:
        # members one after another (multi-member gzip), zero padding between them allowed
        # (as gzip.GzipFile); zlib checks each member's CRC and length
        total_in = len(data)
        inflater = None
        last_full = False
        while True:
            if inflater is None:
                data = data.lstrip(b"\0")
                while len(data) < 2:
                    more = stream.read(_CHUNK_SIZE)
                    if not more:
                        if data:
                            raise OSError(f"trailing garbage after the last gzip member ({data!r})")
                        self.compressed = total_in
                        return
                    total_in += len(more)
                    data = (data + more).lstrip(b"\0")
                if not data.startswith(b"\x1f\x8b"):
                    raise OSError(f"not a gzip member after the previous one (starts {data[:4]!r})")
                inflater = _inflate.decompressobj(16 + zlib.MAX_WBITS)
            if not data and not last_full:
                data = stream.read(_CHUNK_SIZE)
                if not data:
                    out = inflater.flush()
                    if out:
                        yield out
                    if not inflater.eof:
                        raise EOFError("compressed file ended before the end-of-stream marker was reached")
                    return
                total_in += len(data)
            out = inflater.decompress(data, _CHUNK_SIZE)
            last_full = len(out) >= _CHUNK_SIZE
            if inflater.eof:
                data = inflater.unused_data
                inflater = None
                last_full = False
            else:
                data = inflater.unconsumed_tail
            self.compressed = total_in - len(data)
            if out:
                yield out

    def _unzstd(self, stream: IO[bytes], head: bytes) -> Iterator[bytes]:
        counting = _CountingReader(stream, head)
        reader = zstandard.ZstdDecompressor().stream_reader(counting, read_across_frames=True)
        while True:
            out = reader.read(_CHUNK_SIZE)
            self.compressed = counting.count
            if not out:
                return
            yield out

    def _raw(self, stream: IO[bytes], head: bytes) -> Iterator[bytes]:
        yield head
        while True:
            out = stream.read(_CHUNK_SIZE)
            if not out:
                return
            yield out

    def next_chunk(self) -> bytes:
        """The next piece of the uncompressed stream; b"" at its end. Raises LayerError."""
        try:
            chunk = next(self._chunks, b"")
        except (OSError, EOFError, zstandard.ZstdError, *_INFLATE_ERRORS) as e:
            raise LayerError(self._layer, f"cannot decompress ({e}); the blob is damaged or not a layer",
                             path=self.current_path, code="LayerCorrupt") from e
        if not chunk:
            return b""
        self.count += len(chunk)
        lim = self._limits
        if self._total_before + self.count > lim.max_total_bytes:
            raise LayerError(self._layer, f"image exceeds {lim.max_total_bytes} uncompressed bytes "
                             "(LayerLimits.max_total_bytes); raise the limit if the image is genuine",
                             path=self.current_path, code="LayerTooLarge")
        if self.compressed is not None and self.count >= lim.ratio_min_bytes:
            ratio = self.count / max(1, self.compressed)
            if ratio > lim.max_ratio:
                raise LayerError(self._layer, f"compression ratio {ratio:.0f}:1 exceeds {lim.max_ratio:.0f}:1 "
                                 "(possible decompression bomb; LayerLimits.max_ratio)",
                                 path=self.current_path, code="LayerBomb")
        return chunk


def _open_layer(layer: str, stream: IO[bytes], limits: LayerLimits, total_before: int) -> _LayerSource | None:
    """Sniff compression and return the uncompressed chunks, or None for an empty blob."""
    head = b""
    while len(head) < 6:
        more = stream.read(6 - len(head))
        if not more:
            break
        head += more
    if not head:
        return None
    return _LayerSource(layer, stream, head, limits, total_before)


# ---------------------------------------------------------------- paths

def normalize_name(name: str, layer: str = "?") -> str:
    """Tar member name -> path relative to the root (``./a//b/`` -> ``a/b``; ``/a`` -> ``a``).

    ``..`` is resolved lexically; a name that climbs above the root raises LayerError.
    """
    parts: list[str] = []
    for comp in name.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                raise LayerError(layer, "entry name climbs out of the image root with '..'; the layer is "
                                 "hostile or damaged and is refused", path=name, code="LayerHostile")
            parts.pop()
            continue
        parts.append(comp)
    return "/".join(parts)


def resolve_path(path: str, symlinks: Mapping[str, str], *, follow_last: bool = True,
                 max_hops: int = 40, layer: str = "?") -> str:
    """Resolve ``path`` through ``symlinks`` (path -> target) confined to the image root,
    as a container runtime does: absolute targets start again at the root, ``..`` never
    climbs above it. Raises LayerError after ``max_hops`` symlinks (a loop)."""
    if not symlinks:
        return path
    pending = [c for c in reversed(path.split("/"))]
    resolved: list[str] = []
    hops = 0
    while pending:
        comp = pending.pop()
        if comp in ("", "."):
            continue
        if comp == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = "/".join(resolved + [comp]) if resolved else comp
        target = symlinks.get(candidate)
        if target is not None and (pending or follow_last):
            hops += 1
            if hops > max_hops:
                raise LayerError(layer, f"more than {max_hops} symlinks while resolving the path "
                                 "(symlink loop)", path=path, code="SymlinkLoop")
            if target.startswith("/"):
                resolved = []
            pending.extend(reversed(target.split("/")))
        else:
            resolved.append(comp)
    return "/".join(resolved)


def _lexical_target(link_path: str, target: str) -> str:
    """Where a symlink points, lexically (no further symlinks), relative to the root."""
    if target.startswith("/"):
        joined = target
    else:
        parent = link_path.rpartition("/")[0]
        joined = f"{parent}/{target}" if parent else target
    parts: list[str] = []
    for comp in joined.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts:
                parts.pop()
            continue
        parts.append(comp)
    return "/".join(parts)


def _under(path: str, prefix: str) -> bool:
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


# ---------------------------------------------------------------- the walk

@dataclass(frozen=True)
class LayerContents:
    """What one layer changes in the merged view of the wanted files: the per-layer
    result of :meth:`LayerStack.read`, applied by :meth:`LayerStack.apply`.

    It is computed on top of the layers below (their symlinks decide where a path
    lands and under which spelling it is wanted), so it is only valid on top of the
    same lower layers read with the same ``wants``, executable reader and limits:
    :mod:`vulnwatch.layercache` keys it by the layer's chain id for that reason.
    """

    layer: str
    """The layer's name as the caller gave it (normally its digest)."""
    files: Mapping[str, WalkedFile] = field(default_factory=dict)
    """Wanted files this layer writes, by path (in tar order)."""
    executables: Mapping[str, WalkedFile] = field(default_factory=dict)
    """What the executable reader kept from this layer's executables, by path."""
    symlinks: Mapping[str, str] = field(default_factory=dict)
    """Symlinks this layer adds: path -> target as written in the tar."""
    replaced: tuple[str, ...] = ()
    """Paths kept from the layers below (files, executables, symlinks) that an entry of
    this layer replaces at exactly that path."""
    deletions: tuple[tuple[str, bool], ...] = ()
    """Whiteouts, in tar order: ``(path, False)`` deletes ``path`` of the layers below,
    ``(directory, True)`` empties ``directory`` of the layers below (opaque)."""
    warnings: tuple[str, ...] = ()
    """Remarks about this layer, naming layer and path."""
    uncompressed_bytes: int = 0
    """Uncompressed bytes read from the blob (counted against ``LayerLimits.max_total_bytes``)."""
    entries: int = 0
    """Tar entries in the layer (counted against ``LayerLimits.max_entries``)."""


class _State:
    """Merged filesystem of the layers applied so far (only what we keep)."""

    def __init__(self) -> None:
        self.files: dict[str, WalkedFile] = {}
        self.executables: dict[str, WalkedFile] = {}
        self.symlinks: dict[str, str] = {}

    def delete(self, path: str, *, keep_self: bool = False) -> None:
        for table in (self.files, self.executables, self.symlinks):
            doomed = [p for p in table if _under(p, path) and not (keep_self and p == path)]
            for p in doomed:
                del table[p]

    def holds(self, path: str) -> bool:
        return path in self.files or path in self.executables or path in self.symlinks


class LayerStack:
    """Layers applied bottom to top, like overlayfs, keeping only what ``wants`` asks for.

    ``read(layer, stream)`` streams one blob on top of the layers applied so far and
    returns its :class:`LayerContents` without applying it; ``apply(contents)`` puts it
    on the stack (a read result or one from a cache); ``add`` does both; ``result()``
    is the merged :class:`WalkResult`. Limits that span layers (total bytes, entries)
    count applied layers, whether read or cached.
    """

    def __init__(self, wants: Wants, *, executable_reader: ExecutableReader | None = None,
                 limits: LayerLimits | None = None, reducer_for: ReducerFor | None = None) -> None:
        self.wants = wants
        self.executable_reader = executable_reader
        self.reducer_for = reducer_for
        self.limits = limits or LayerLimits()
        self.total_bytes = 0
        """Uncompressed bytes of the layers applied so far."""
        self.entries = 0
        """Tar entries of the layers applied so far."""
        self._state = _State()
        self._warnings: list[str] = []
        self._names: list[str] = []

    def add(self, layer: str, stream: IO[bytes]) -> LayerContents:
        """Read ``stream`` on top of the stack and apply it; returns what it contributed."""
        contents = self.read(layer, stream)
        self.apply(contents)
        return contents

    def read(self, layer: str, stream: IO[bytes]) -> LayerContents:
        """Stream one layer blob (tar, gzip or zstd) once, on top of the layers applied so
        far, without changing the stack. Raises :class:`LayerError`."""
        reader = _open_layer(layer, stream, self.limits, self.total_bytes)
        if reader is None:
            return LayerContents(layer)  # empty blob: an empty layer
        return _read_one(layer, reader, self.wants, self.executable_reader, self.limits, self._state, self.entries,
                         self.reducer_for)

    def apply(self, contents: LayerContents) -> None:
        """Put one layer's contents on top: its whiteouts hide the layers below, then its
        entries go on top. Raises :class:`LayerError` when a limit spanning layers is hit."""
        lim = self.limits
        layer = contents.layer
        if self.entries + contents.entries > lim.max_entries:
            raise LayerError(layer, f"more than {lim.max_entries} tar entries (LayerLimits.max_entries)",
                             code="LayerTooLarge")
        if self.total_bytes + contents.uncompressed_bytes > lim.max_total_bytes:
            raise LayerError(layer, f"image exceeds {lim.max_total_bytes} uncompressed bytes "
                             "(LayerLimits.max_total_bytes); raise the limit if the image is genuine",
                             code="LayerTooLarge")
        state = self._state
        for path, opaque in contents.deletions:
            state.delete(path, keep_self=opaque)
        for path in contents.replaced:
            state.files.pop(path, None)
            state.executables.pop(path, None)
            state.symlinks.pop(path, None)
        state.files.update(contents.files)
        state.executables.update(contents.executables)
        state.symlinks.update(contents.symlinks)
        self._warnings.extend(contents.warnings)
        self._names.append(layer)
        self.total_bytes += contents.uncompressed_bytes
        self.entries += contents.entries

    def result(self) -> WalkResult:
        """The merged view of the wanted files after the layers applied so far."""
        state = self._state
        files = dict(state.files)
        _add_symlink_aliases(files, state, self.wants, self.limits)
        return WalkResult(files=files, executables=dict(state.executables), symlinks=dict(state.symlinks),
                          warnings=tuple(self._warnings), layers=tuple(self._names))


def walk_layers(layers: Iterable[tuple[str, BinaryIO]], wants: Wants, *,
                executable_reader: ExecutableReader | None = None,
                limits: LayerLimits | None = None) -> WalkResult:
    """Stream each ``(layer name, blob stream)`` once, bottom layer first, and return the
    merged view of the files ``wants`` asks for.

    ``wants(path)`` returns the largest size to keep for ``path`` or None. When
    ``executable_reader`` is given, regular files with an exec bit that no one wants by
    path are offered to it (with their tar stream); whatever it returns is kept under
    :attr:`WalkResult.executables`. Raises :class:`LayerError`.
    """
    stack = LayerStack(wants, executable_reader=executable_reader, limits=limits)
    for layer, stream in layers:
        stack.add(layer, stream)
    return stack.result()


def merge_layers(contents: Iterable[LayerContents], wants: Wants, *,
                 limits: LayerLimits | None = None) -> WalkResult:
    """Apply layer contents (from :meth:`LayerStack.read` or a cache), bottom first, and
    return the merged view. ``wants`` and ``limits`` must be those they were read with."""
    stack = LayerStack(wants, limits=limits)
    for c in contents:
        stack.apply(c)
    return stack.result()


def _read_one(layer: str, reader: _LayerSource, wants: Wants, executable_reader: ExecutableReader | None,
              limits: LayerLimits, state: _State, entries: int,
              reducer_for: ReducerFor | None = None) -> LayerContents:
    """One layer on top of ``state`` (read, never modified)."""
    first_entry = entries
    warnings: list[str] = []
    new_files: dict[str, WalkedFile] = {}
    new_exec: dict[str, WalkedFile] = {}
    new_links: dict[str, str] = {}
    replaced: list[str] = []          # lower entries replaced at exactly this path
    deletions: list[tuple[str, bool]] = []  # (path, opaque)
    # reverse map of directory-ish symlinks for aliases: lexical target -> link paths
    reverse: dict[str, list[str]] = {}
    for link, target in state.symlinks.items():
        reverse.setdefault(_lexical_target(link, target), []).append(link)
    dir_cache: dict[str, str] = {}
    warned_absolute = False

    # symlinks of the layers below and of this layer so far (a live view, no copies)
    links_view: Mapping[str, str] = ChainMap(new_links, state.symlinks)

    def canonical_parent(path: str) -> str:
        parent, _, base = path.rpartition("/")
        if not parent or not links_view:
            return path
        real = dir_cache.get(parent)
        if real is None:
            real = resolve_path(parent, links_view, max_hops=limits.max_symlink_hops, layer=layer)
            dir_cache[parent] = real
        return f"{real}/{base}" if real else base

    def aliases(path: str) -> list[str]:
        out: list[str] = []
        if not reverse:
            return out
        for link in reverse.get(path, ()):
            out.append(link)
        prefix = path
        while "/" in prefix:
            prefix = prefix.rpartition("/")[0]
            for link in reverse.get(prefix, ()):
                out.append(link + path[len(prefix):])
        return out

    try:
        for member in TarStreamReader(reader.next_chunk):
            entries += 1
            if entries > limits.max_entries:
                raise LayerError(layer, f"more than {limits.max_entries} tar entries (LayerLimits.max_entries)",
                                 path=member.name, code="LayerTooLarge")
            raw_name = member.name
            reader.current_path = raw_name
            if raw_name.startswith("/") and not warned_absolute:
                warned_absolute = True
                warnings.append(f"layer {layer}: absolute entry names (e.g. {raw_name!r}) read as relative "
                                "to the image root")
            path = normalize_name(raw_name, layer)
            if not path:
                continue  # the root directory itself
            try:
                path = canonical_parent(path)
            except LayerError as e:
                raise LayerError(layer, str(e).split(": ", 1)[-1], path=raw_name, code=e.code) from None
            parent, _, base = path.rpartition("/")
            if base.startswith(WHITEOUT_PREFIX):
                if base == OPAQUE_MARKER:
                    deletions.append((parent, True))
                else:
                    hidden = base[len(WHITEOUT_PREFIX):]
                    deletions.append((f"{parent}/{hidden}" if parent else hidden, False))
                continue
            mtype = member.type
            if mtype is EntryType.DIRECTORY:
                if path in state.symlinks or path in state.files:
                    replaced.append(path)
                new_links.pop(path, None)
                continue
            if mtype is EntryType.SYMLINK:
                new_links[path] = member.linkname
                dir_cache.clear()
                new_files.pop(path, None)
                new_exec.pop(path, None)
                replaced.append(path)
                reverse.setdefault(_lexical_target(path, member.linkname), []).append(path)
                continue
            if mtype is EntryType.HARDLINK:
                new_links.pop(path, None)
                replaced.append(path)
                limit = _wanted(path, aliases(path), wants)
                if limit is None:
                    continue
                try:
                    target = canonical_parent(normalize_name(member.linkname, layer))
                except LayerError:
                    target = ""
                source = new_files.get(target) or state.files.get(target)
                if source is None:
                    warnings.append(f"layer {layer}: {path!r} is a hard link to {member.linkname!r}, whose "
                                    "content was not kept; it is not read")
                else:
                    new_files[path] = WalkedFile(path, source.data, layer, member.mode)
                continue
            if mtype is not EntryType.FILE and mtype is not EntryType.SPARSE:
                continue  # devices, fifos, other types
            new_links.pop(path, None)
            replaced.append(path)
            new_files.pop(path, None)
            new_exec.pop(path, None)
            limit = _wanted(path, aliases(path), wants)
            if mtype is EntryType.SPARSE:
                if limit is not None or (executable_reader is not None and member.mode & 0o111):
                    warnings.append(f"layer {layer}: {path!r} is a sparse file (GNU sparse format), which "
                                    "is not expanded; not read")
                continue
            reduce = reducer_for(path) if (limit is not None and reducer_for is not None) else None
            if reduce is not None:        # read as it streams past; keep only the small stand-in
                kept = reduce(path, member.open(), member.size)
                if kept is None:
                    warnings.append(f"layer {layer}: {path!r} could not be read; not cataloged")
                else:
                    new_files[path] = WalkedFile(path, kept, layer, member.mode)
                continue
            if limit is not None:
                limit = min(limit, limits.max_file_size)
                if member.size > limit:
                    msg = (f"layer {layer}: {path!r} is {member.size} bytes, over the {limit}-byte limit "
                           "for this file; not read")
                    if limits.oversize_is_error:
                        raise LayerError(layer, f"file is {member.size} bytes, over the {limit}-byte limit",
                                         path=path, code="FileTooLarge")
                    warnings.append(msg)
                    continue
                data = member.open().read()
                new_files[path] = WalkedFile(path, data, layer, member.mode)
                continue
            if (executable_reader is not None and member.mode & 0o111
                    and 0 < member.size <= limits.max_executable_size):
                kept = executable_reader(path, member.open(), member.size)
                if kept is not None:
                    new_exec[path] = WalkedFile(path, kept, layer, member.mode)
    except TarFormatError as e:
        if e.number == 1 and not e.truncated:
            raise LayerError(layer, f"not a tar archive ({e}); check the layer media type and blob",
                             code="LayerCorrupt") from None
        raise LayerError(layer, f"damaged tar stream ({e}); the blob is truncated or not a layer",
                         path=e.name, code="LayerCorrupt") from None
    finally:
        reader.current_path = None
    # only lower entries matter for ``replaced`` (the rest is this layer's own)
    lower_replaced = tuple(p for p in dict.fromkeys(replaced) if state.holds(p))
    return LayerContents(layer, files=new_files, executables=new_exec, symlinks=new_links,
                         replaced=lower_replaced, deletions=tuple(deletions), warnings=tuple(warnings),
                         uncompressed_bytes=reader.count, entries=entries - first_entry)


def _wanted(path: str, alias_paths: Sequence[str], wants: Wants) -> int | None:
    best = wants(path)
    for alias in alias_paths:
        limit = wants(alias)
        if limit is not None and (best is None or limit > best):
            best = limit
    return best


def _add_symlink_aliases(files: dict[str, WalkedFile], state: _State, wants: Wants, limits: LayerLimits) -> None:
    """List files kept only because a symlinked spelling of their path is wanted under
    that spelling too (``etc/os-release`` -> ``../usr/lib/os-release``; ``lib -> usr/lib``)."""
    if not state.symlinks or not state.files:
        return
    by_ancestor: dict[str, list[str]] = {}
    for p in state.files:
        by_ancestor.setdefault(p, []).append(p)
        prefix = p
        while "/" in prefix:
            prefix = prefix.rpartition("/")[0]
            by_ancestor.setdefault(prefix, []).append(p)
    # only files kept for an alias's sake: a file wanted under its real path is not
    # listed twice (lib/python3/... and usr/lib/python3/... would be two packages)
    alias_only = {p for p in state.files if wants(p) is None}
    if not alias_only:
        return
    for link in state.symlinks:
        try:
            target = resolve_path(link, state.symlinks, max_hops=limits.max_symlink_hops)
        except LayerError:
            continue  # a loop nothing we keep goes through
        for real in by_ancestor.get(target, ()):
            if real not in alias_only:
                continue
            alias = link + real[len(target):]
            if alias in files:
                continue
            limit = wants(alias)
            src = state.files[real]
            if limit is not None and len(src.data) <= limit:
                files[alias] = WalkedFile(alias, src.data, src.layer, src.mode)


# ---------------------------------------------------------------- catalogers

@dataclass(frozen=True)
class Inventory:
    """What is installed in an image, according to our catalogers."""

    packages: tuple[Package, ...] = ()
    """All packages found, grouped by cataloger in the order given."""
    distro: Distro | None = None
    """The operating system, from os-release; None when absent."""
    warnings: tuple[str, ...] = ()
    """Remarks from the walker and the catalogers, naming layer/file."""
    layers: tuple[str, ...] = ()
    """Layers read, bottom first."""

    @property
    def ecosystem(self) -> str | None:
        """OSV ecosystem of the distro (``Debian:12``)."""
        return self.distro.ecosystem if self.distro else None


class CatalogPlan:
    """What a set of catalogers asks of the walker: ``wants`` (path -> size limit) and
    the executable reader, built once from the catalogers' declarations."""

    def __init__(self, catalogers: Sequence[Cataloger] | None = None) -> None:
        if catalogers is None:
            from .catalogers import all_catalogers
            catalogers = all_catalogers()
        self.catalogers: list[Cataloger] = list(catalogers)
        """The catalogers, in the order their packages are reported."""
        os_paths = frozenset(OS_RELEASE_PATHS)
        cats = self.catalogers

        def wants(path: str) -> int | None:
            best: int | None = OS_RELEASE_MAX_SIZE if path in os_paths else None
            for c in cats:
                if c.wants(path) and (best is None or c.max_file_size > best):
                    best = c.max_file_size
            return best

        self.wants: Wants = wants
        exec_catalogers = [c for c in cats if c.wants_executables]
        reader: ExecutableReader | None = None
        if len(exec_catalogers) == 1:
            reader = exec_catalogers[0].read_executable
        elif exec_catalogers:
            def reader(path: str, stream: IO[bytes], size: int) -> bytes | None:  # noqa: F811
                data = stream.read(size)
                for c in exec_catalogers:
                    kept = c.read_executable(path, io.BytesIO(data), size)
                    if kept is not None:
                        return kept
                return None
        self.executable_reader: ExecutableReader | None = reader
        reducing = [c for c in cats if c.reduces]

        def reducer_for(path: str) -> ExecutableReader | None:
            for c in reducing:
                if c.wants(path):
                    return c.reduce
            return None

        self.reducer_for: ReducerFor | None = reducer_for if reducing else None

    def stack(self, limits: LayerLimits | None = None) -> LayerStack:
        """An empty :class:`LayerStack` reading for these catalogers."""
        return LayerStack(self.wants, executable_reader=self.executable_reader, limits=limits,
                          reducer_for=self.reducer_for)

    def catalog(self, walked: WalkResult) -> Inventory:
        """Hand each cataloger its files from the merged view. A cataloger's
        :class:`CatalogError` becomes a warning."""
        files = walked.data()
        distro = find_distro(files)
        context = CatalogContext(distro=distro, layer_of=walked.layer_of())
        packages: list[Package] = []
        warnings = list(walked.warnings)
        for c in self.catalogers:
            mine = {p: d for p, d in files.items() if c.wants(p)}
            if c.wants_executables:
                for p, f in walked.executables.items():
                    mine.setdefault(p, f.data)
            if not mine:
                continue
            try:
                result = c.catalog(mine, context)
            except CatalogError as e:
                warnings.append(str(e))
                continue
            packages.extend(result.packages)
            warnings.extend(result.warnings)
        return Inventory(packages=tuple(packages), distro=distro, warnings=tuple(warnings),
                         layers=walked.layers)


def catalog_image(layers: Iterable[tuple[str, BinaryIO]], catalogers: Sequence[Cataloger] | None = None, *,
                  limits: LayerLimits | None = None) -> Inventory:
    """Walk ``layers`` once for all ``catalogers`` (default: every registered one) and
    return the packages found. Raises :class:`LayerError` when a layer is unsafe or
    unreadable; a cataloger's :class:`CatalogError` becomes a warning."""
    plan = CatalogPlan(catalogers)
    stack = plan.stack(limits)
    for layer, stream in layers:
        stack.add(layer, stream)
    return plan.catalog(stack.result())
