"""Reading one layer on top of the layers below: one small handler per tar entry type.

:class:`LayerReader` streams one layer's tar entries (from :class:`~.source.LayerSource`) and
works out what the layer changes in the merged view of the wanted files, without changing that
view: the result is a :class:`~.contents.LayerContents` (which a cache may store). The layers
below matter: their symlinks decide where a path lands (``lib/x`` written through
``lib -> usr/lib`` is ``usr/lib/x``) and under which spellings it is wanted.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping, Sequence
from typing import Protocol

from .contents import LayerContents, WalkedFile, WalkPlan, Wants
from .limits import LayerError, LayerLimits
from .paths import lexical_target, member_path, resolve_path
from .source import LayerSource
from .tarstream import EntryType, TarFormatError, TarEntry, TarStreamReader

__all__ = ["LayerBelow", "LayerReader", "OPAQUE_MARKER", "WHITEOUT_PREFIX", "wanted_size"]

WHITEOUT_PREFIX = ".wh."
"""``.wh.<name>`` in a layer deletes ``<name>`` of the layers below."""
OPAQUE_MARKER = ".wh..wh..opq"
"""In a directory of a layer: the directory's contents of the layers below are hidden."""


class LayerBelow(Protocol):
    """What a layer is read on top of: the merged view of the layers applied so far."""

    files: Mapping[str, WalkedFile]
    executables: Mapping[str, WalkedFile]
    symlinks: Mapping[str, str]

    def holds(self, path: str) -> bool:
        """Whether ``path`` is a kept file, executable or symlink of the layers below."""


def wanted_size(path: str, alias_paths: Sequence[str], wants: Wants) -> int | None:
    """The largest size any spelling of ``path`` (itself or a symlinked alias) is wanted at."""
    best = wants(path)
    for alias in alias_paths:
        limit = wants(alias)
        if limit is not None and (best is None or limit > best):
            best = limit
    return best


class LayerReader:
    """Reads one layer (``source``) on top of ``below``; :meth:`read` returns its contents.

    ``entries_before`` is the count of tar entries of the layers below (the entry limit spans
    the image). One reader reads one layer once."""

    def __init__(self, layer: str, source: LayerSource, plan: WalkPlan, limits: LayerLimits,
                 below: LayerBelow, entries_before: int, kept_before: int = 0) -> None:
        self.layer = layer
        self.source = source
        self.plan = plan
        self.limits = limits
        self.below = below
        self.entries = entries_before
        self._first_entry = entries_before
        self.kept = kept_before
        """Bytes kept so far, the layers below included (against ``LayerLimits.max_kept_bytes``)."""
        self.warnings: list[str] = []
        self.files: dict[str, WalkedFile] = {}
        self.executables: dict[str, WalkedFile] = {}
        self.links: dict[str, str] = {}
        self.replaced: list[str] = []                 # lower entries replaced at exactly this path
        self.deletions: list[tuple[str, bool]] = []   # (path, opaque)
        # directory-ish symlinks by lexical target, for the aliases a path is also wanted under
        self._reverse: dict[str, list[str]] = {}
        for link, target in below.symlinks.items():
            self._reverse.setdefault(lexical_target(link, target), []).append(link)
        self._dir_cache: dict[str, str] = {}
        self._warned_absolute = False
        # symlinks of the layers below and of this layer so far (a live view, no copies)
        self._links_view: Mapping[str, str] = ChainMap(self.links, below.symlinks)
        self._handlers = {
            EntryType.DIRECTORY: self._directory,
            EntryType.SYMLINK: self._symlink,
            EntryType.HARDLINK: self._hardlink,
            EntryType.FILE: self._file,
            EntryType.SPARSE: self._sparse,
        }

    # ------------------------------------------------------------------ the loop
    def read(self) -> LayerContents:
        """Stream the layer's entries once. Raises :class:`LayerError`."""
        layer, source = self.layer, self.source
        try:
            for member in TarStreamReader(source.next_chunk):
                self.entries += 1
                if self.entries > self.limits.max_entries:
                    raise LayerError(layer, f"more than {self.limits.max_entries} tar entries "
                                     "(limits.max_tar_entries)", path=member.name, code="LayerTooLarge")
                source.current_path = member.name
                path = self._path_of(member)
                if path is None:
                    continue
                handler = self._handlers.get(member.type)
                if handler is not None:       # devices, fifos and other types keep nothing
                    handler(path, member)
        except TarFormatError as e:
            if e.number == 1 and not e.truncated:
                raise LayerError(layer, f"not a tar archive ({e}); check the layer media type and blob",
                                 code="LayerCorrupt") from None
            raise LayerError(layer, f"damaged tar stream ({e}); the blob is truncated or not a layer",
                             path=e.name, code="LayerCorrupt") from None
        finally:
            source.current_path = None
        # only lower entries matter for ``replaced`` (the rest is this layer's own)
        below = self.below
        lower_replaced = tuple(p for p in dict.fromkeys(self.replaced) if below.holds(p))
        return LayerContents(layer, files=self.files, executables=self.executables, symlinks=self.links,
                             replaced=lower_replaced, deletions=tuple(self.deletions),
                             warnings=tuple(self.warnings), uncompressed_bytes=source.count,
                             entries=self.entries - self._first_entry)

    def _path_of(self, member: TarEntry) -> str | None:
        """The entry's path in the merged tree (parents resolved through symlinks); None for
        the root itself and for whiteouts (recorded here)."""
        raw = member.name
        if raw.startswith("/") and not self._warned_absolute:
            self._warned_absolute = True
            self.warnings.append(f"layer {self.layer}: absolute entry names (e.g. {raw!r}) read as relative "
                                 "to the image root")
        path = member_path(raw, self.layer)
        if not path:
            return None
        try:
            path = self._canonical_parent(path)
        except LayerError as e:
            raise LayerError(self.layer, str(e).split(": ", 1)[-1], path=raw, code=e.code) from None
        parent, _, base = path.rpartition("/")
        if base.startswith(WHITEOUT_PREFIX):
            if base == OPAQUE_MARKER:
                self.deletions.append((parent, True))
            else:
                hidden = base[len(WHITEOUT_PREFIX):]
                self.deletions.append((f"{parent}/{hidden}" if parent else hidden, False))
            return None
        return path

    # ------------------------------------------------------------------ one handler per type
    def _directory(self, path: str, member: TarEntry) -> None:
        if path in self.below.symlinks or path in self.below.files:
            self.replaced.append(path)
        self.links.pop(path, None)

    def _symlink(self, path: str, member: TarEntry) -> None:
        self.links[path] = member.linkname
        self._dir_cache.clear()
        self.files.pop(path, None)
        self.executables.pop(path, None)
        self.replaced.append(path)
        self._reverse.setdefault(lexical_target(path, member.linkname), []).append(path)

    def _hardlink(self, path: str, member: TarEntry) -> None:
        self.links.pop(path, None)
        self.replaced.append(path)
        if wanted_size(path, self._aliases(path), self.plan.wants) is None:
            return
        try:
            target = self._canonical_parent(member_path(member.linkname, self.layer))
        except LayerError:
            target = ""
        source = self.files.get(target) or self.below.files.get(target)
        if source is None:
            self.warnings.append(f"layer {self.layer}: {path!r} is a hard link to {member.linkname!r}, whose "
                                 "content was not kept; it is not read")
        else:
            self.files[path] = WalkedFile(path, source.data, self.layer, member.mode)

    def _keep(self, table: dict[str, WalkedFile], path: str, data: bytes, mode: int) -> None:
        self.kept += len(data)
        if self.kept > self.limits.max_kept_bytes:
            raise LayerError(self.layer, f"more than {self.limits.max_kept_bytes} bytes of package metadata kept "
                             "from the image (limits.max_metadata_bytes); an image this dense in metadata is "
                             "refused (raise the limit if it is genuine)", path=path, code="MetadataTooLarge")
        table[path] = WalkedFile(path, data, self.layer, mode)

    def _sparse(self, path: str, member: TarEntry) -> None:
        self._replace_with_file(path)
        limit = wanted_size(path, self._aliases(path), self.plan.wants)
        if limit is not None or (self.plan.executable_reader is not None and member.mode & 0o111):
            self.warnings.append(f"layer {self.layer}: {path!r} is a sparse file (GNU sparse format), which "
                                 "is not expanded; not read")

    def _file(self, path: str, member: TarEntry) -> None:
        self._replace_with_file(path)
        plan, limits, layer = self.plan, self.limits, self.layer
        limit = wanted_size(path, self._aliases(path), plan.wants)
        if limit is not None:
            reduce = plan.reducer_for(path) if plan.reducer_for is not None else None
            if reduce is not None:        # read as it streams past; keep only the small stand-in
                kept = reduce(path, member.open(), member.size)
                if kept is None:
                    self.warnings.append(f"layer {layer}: {path!r} could not be read; not cataloged")
                else:
                    self._keep(self.files, path, kept, member.mode)
                return
            limit = min(limit, limits.max_file_size)
            if member.size > limit:
                if limits.oversize_is_error:
                    raise LayerError(layer, f"file is {member.size} bytes, over the {limit}-byte limit for the "
                                     "package metadata it is read as; its packages cannot be judged, so the image "
                                     "is refused rather than reported without them", path=path, code="FileTooLarge")
                self.warnings.append(f"layer {layer}: {path!r} is {member.size} bytes, over the {limit}-byte "
                                     "limit for this file; not read")
                return
            if self.kept + member.size > limits.max_kept_bytes:   # refused before it is read
                raise LayerError(layer, f"more than {limits.max_kept_bytes} bytes of package metadata kept from "
                                 "the image (limits.max_metadata_bytes); an image this dense in metadata is "
                                 "refused (raise the limit if it is genuine)", path=path, code="MetadataTooLarge")
            self._keep(self.files, path, member.open().read(), member.mode)
            return
        if (plan.executable_reader is not None and member.mode & 0o111
                and 0 < member.size <= limits.max_executable_size):
            kept = plan.executable_reader(path, member.open(), member.size)
            if kept is not None:
                self._keep(self.executables, path, kept, member.mode)

    # ------------------------------------------------------------------ helpers
    def _replace_with_file(self, path: str) -> None:
        self.links.pop(path, None)
        self.replaced.append(path)
        self.files.pop(path, None)
        self.executables.pop(path, None)

    def _canonical_parent(self, path: str) -> str:
        parent, _, base = path.rpartition("/")
        if not parent or not self._links_view:
            return path
        real = self._dir_cache.get(parent)
        if real is None:
            real = resolve_path(parent, self._links_view, max_hops=self.limits.max_symlink_hops, layer=self.layer)
            self._dir_cache[parent] = real
        return f"{real}/{base}" if real else base

    def _aliases(self, path: str) -> list[str]:
        reverse = self._reverse
        out: list[str] = []
        if not reverse:
            return out
        out.extend(reverse.get(path, ()))
        prefix = path
        while "/" in prefix:
            prefix = prefix.rpartition("/")[0]
            for link in reverse.get(prefix, ()):
                out.append(link + path[len(prefix):])
        return out
