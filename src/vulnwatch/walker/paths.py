"""Paths inside an image: tar member names made relative to the root, and symlinks resolved
the way a container runtime does (never above the root)."""

from __future__ import annotations

from collections.abc import Mapping

from .limits import LayerError

__all__ = ["lexical_target", "member_path", "resolve_path", "under"]


def member_path(name: str, layer: str = "?") -> str:
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


def lexical_target(link_path: str, target: str) -> str:
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


def under(path: str, prefix: str) -> bool:
    return prefix == "" or path == prefix or path.startswith(prefix + "/")
