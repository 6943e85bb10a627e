"""Which repositories and images to watch: pure selection, plus loading watch lists.

Repositories (per registry)
    :func:`plan_repositories` says which repositories are known without asking the registry:
    names given exactly (a selector without glob characters, or every watch-list entry) go
    straight to the registry's image listing (``tags/list``), so that registries that do not list
    their repositories (GHCR, Docker Hub, GitLab, Harbor robot accounts answer 404 or 401 to
    ``/v2/_catalog``) work; only glob selectors without a watch list need the registry's list
    (:attr:`RepositoryPlan.globs`), and :meth:`RepositoryPlan.select` adds what they take from it.

    The rules:

    * no selectors configured means one selector taking every repository (``name: "*"``);
    * a repository takes the selector with its exact name, else the first glob (in file order)
      that matches it; a repository no selector matches is not watched;
    * with a watch list, only repositories it names are watched (selectors still apply: the two
      narrow together); an empty watch list watches nothing;
    * a name given exactly that the registry does not have is the registry's to say (its image
      listing raises ``RepositoryNotFoundError``): one deleted repository must not stop the
      monitoring of the others, the caller reports it as a warning.

Images (per repository)
    :func:`select_images` keeps an image when ANY of its tags is included by the selector's tag
    filter and not excluded; untagged images only with ``untagged: true``; then the newest N by
    ``pushed_at`` (unknown push times last). Order: newest first, ties by digest.

Watch lists
    :func:`load_watch_list` reads the existing watch-list format, a JSON array of repository
    names, from a local file or ``s3://bucket/key``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fnmatch import fnmatchcase

from .model import Image, as_utc

__all__ = ["RepositoryPlan", "Selector", "TargetError", "is_glob", "load_watch_list", "plan_repositories",
           "select_images"]


def is_glob(pattern: str) -> bool:
    """True when ``pattern`` has glob characters (``*``, ``?``, ``[``), False for an exact name."""
    return any(c in pattern for c in "*?[")


@dataclass(frozen=True)
class Selector:
    """Which repositories to watch and which of their images (the values of one configured
    ``repositories[]`` entry)."""

    name: str = "*"
    """Exact repository name or ``fnmatch`` glob (``team/*``; ``*`` also matches ``/``)."""
    include: tuple[str, ...] = ("*",)
    """Tag globs to take (case-sensitive)."""
    exclude: tuple[str, ...] = ()
    """Tag globs to leave out, applied after ``include``."""
    newest: int | None = None
    """Keep only the newest N images by push time (after tag filters); None = all."""
    untagged: bool = False
    """Also take images that have no tag (tag filters do not apply to them)."""

    @property
    def is_exact(self) -> bool:
        """True when ``name`` is an exact repository name (no glob characters)."""
        return not is_glob(self.name)

    def matches(self, repository: str) -> bool:
        """True when ``repository`` is selected by ``name``."""
        return fnmatchcase(repository, self.name)

    def accepts(self, tag: str) -> bool:
        """True when ``tag`` is included and not excluded."""
        return (any(fnmatchcase(tag, p) for p in self.include)
                and not any(fnmatchcase(tag, p) for p in self.exclude))


class TargetError(Exception):
    """A watch list could not be read or has the wrong shape. The message names the source
    (file path or ``s3://`` URL) and what to fix."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"watch list {source}: {message}")
        self.source = source


# --------------------------------------------------------------------------------------------
# watch lists
# --------------------------------------------------------------------------------------------

def _parse_watch_list(source: str, raw: bytes) -> list[str]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TargetError(source, f"not UTF-8 text (byte {e.start}); save it as a UTF-8 JSON file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise TargetError(source, f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}; "
                                  'expected an array of repository names, e.g. ["team/app", "base"]') from None
    except RecursionError:
        raise TargetError(source, "JSON nested too deeply; expected a flat array of repository names") from None
    except ValueError as e:   # e.g. an integer of thousands of digits (Python's conversion limit)
        raise TargetError(source, f"invalid JSON ({e}); expected an array of repository names") from None
    if not isinstance(data, list):
        raise TargetError(source, f"expected a JSON array of repository names, got {_json_kind(data)}")
    names: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(data):
        if not isinstance(item, str):
            raise TargetError(source, f"item [{i}] is {_json_kind(item)}, expected a repository name (string)")
        name = item.strip()
        if not name:
            raise TargetError(source, f"item [{i}] is an empty repository name")
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({json.dumps(value)})"
    if value is None:
        return "null"
    return f"a string ({json.dumps(value)[:60]})"


def _read_s3(source: str, s3_client: Any) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = source[len("s3://"):].partition("/")
    if not bucket or not key:
        raise TargetError(source, "bad S3 URL: use s3://bucket/key")
    if s3_client is None:
        import boto3
        s3_client = boto3.client("s3")
    try:
        return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise TargetError(source, f"no object {key!r} in bucket {bucket!r}; upload the watch list "
                                      "or fix watch_list in the configuration") from None
        if code == "NoSuchBucket":
            raise TargetError(source, f"bucket {bucket!r} does not exist; fix watch_list in the "
                                      "configuration") from None
        if code in ("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise TargetError(source, f"access denied ({code}); the credentials need s3:GetObject "
                                      "on this object") from None
        raise TargetError(source, f"S3 error {code or 'unknown'}: {e.response.get('Error', {}).get('Message', '')}"
                          ) from None
    except BotoCoreError as e:
        raise TargetError(source, f"cannot reach S3: {e}") from None


def _read_file(source: str) -> bytes:
    path = Path(os.path.expanduser(source))
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TargetError(source, "file not found; create it (a JSON array of repository names) "
                                  "or fix watch_list in the configuration") from None
    except IsADirectoryError:
        raise TargetError(source, "is a directory, expected a JSON file") from None
    except OSError as e:
        raise TargetError(source, f"cannot read: {e.strerror or e}") from None


def load_watch_list(source: str, *, s3_client: Any = None) -> list[str]:
    """Repository names from a watch list: a JSON array of strings in a local file or at
    ``s3://bucket/key`` (read with ``s3_client``, default ``boto3.client("s3")``).

    Names are stripped and de-duplicated, first occurrence order kept. Raises
    :class:`TargetError` naming ``source`` for a missing file/object, bad JSON or wrong shape."""
    raw = _read_s3(source, s3_client) if source.startswith("s3://") else _read_file(source)
    return _parse_watch_list(source, raw)


# --------------------------------------------------------------------------------------------
# repositories
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RepositoryPlan:
    """How to find one registry's repositories: the names known exactly, and the globs that
    need the registry to list its repositories."""

    direct: tuple[tuple[str, Selector], ...]
    """(repository name, its selector) for every name known without listing: exact selectors,
    or, with a watch list, every entry a selector takes. Sorted by name."""
    globs: tuple[Selector, ...]
    """Glob selectors that need the registry's list of repositories (file order); empty when
    every name is known (only exact selectors, or a watch list)."""

    @property
    def needs_listing(self) -> bool:
        """True when the registry must list its repositories (``/v2/_catalog``)."""
        return bool(self.globs)

    def select(self, listed: Iterable[str] = ()) -> tuple[tuple[str, Selector], ...]:
        """The direct names, plus the ``listed`` names the globs take (a name known exactly keeps
        its own selector; otherwise the first matching glob applies). Sorted by name."""
        chosen = dict(self.direct)
        for name in sorted(set(listed)):
            if name in chosen:
                continue
            sel = next((s for s in self.globs if s.matches(name)), None)
            if sel is not None:
                chosen[name] = sel
        return tuple(sorted(chosen.items()))


def plan_repositories(selectors: Sequence[Selector], watch_list: Iterable[str] | None = None) -> RepositoryPlan:
    """Which repositories ``selectors`` (``[]`` = every repository) and ``watch_list`` (None = no
    watch list) name exactly, and which globs need the registry's list. With a watch list every
    name is known: each entry takes the selector with its exact name, else the first matching
    glob, else it is not watched. A name that turns out not to exist is the registry's to say
    (its image listing answers "not found")."""
    sels = list(selectors) or [Selector()]
    exact: dict[str, Selector] = {}
    for s in sels:
        if s.is_exact:
            exact.setdefault(s.name, s)
    globs = tuple(s for s in sels if not s.is_exact)
    if watch_list is None:
        return RepositoryPlan(tuple(sorted(exact.items())), globs)
    direct = {}
    for name in watch_list:
        sel = exact.get(name) or next((s for s in globs if s.matches(name)), None)
        if sel is not None:
            direct.setdefault(name, sel)
    return RepositoryPlan(tuple(sorted(direct.items())), ())


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------

_OLDEST = datetime.min.replace(tzinfo=timezone.utc)


def _merge(images: Iterable[Image]) -> list[Image]:
    """One image per (registry, repository, digest): tags united, the latest push time kept
    (some registries list a digest once per tag)."""
    by_key: dict[tuple[str, str, str], Image] = {}
    for img in images:
        old = by_key.get(img.key)
        if old is None:
            by_key[img.key] = img
            continue
        tags = tuple(sorted(set(old.tags) | set(img.tags)))
        pushed = max((t for t in (old.pushed_at, img.pushed_at) if t is not None), default=None,
                     key=as_utc)
        by_key[img.key] = Image(registry=old.registry, repository=old.repository, digest=old.digest,
                                tags=tags, pushed_at=pushed, media_type=old.media_type or img.media_type,
                                size_bytes=old.size_bytes if old.size_bytes is not None else img.size_bytes)
    return list(by_key.values())



def _order(img: Image) -> tuple[int, float, str, str, str]:
    # newest first; unknown push time last; then a stable tie-break
    if img.pushed_at is None:
        return (1, 0.0, img.digest, img.repository, img.registry)
    return (0, -as_utc(img.pushed_at).timestamp(), img.digest, img.repository, img.registry)


def select_images(images: Iterable[Image], selector: Selector) -> list[Image]:
    """The images of one repository that ``selector`` takes, newest first.

    Tagged images: kept when any tag is included and not excluded. Untagged images: kept
    only when ``selector.untagged``. Then ``selector.newest`` keeps the N most recently
    pushed (images without ``pushed_at`` count as oldest). Duplicate entries of one digest
    are merged first."""
    kept = []
    for img in _merge(images):
        if not img.tags:
            if selector.untagged:
                kept.append(img)
        elif any(selector.accepts(t) for t in img.tags):
            kept.append(img)
    kept.sort(key=_order)
    if selector.newest is not None:
        kept = kept[:selector.newest]
    return kept
