"""Local images: ``docker save`` archives, OCI layout directories and OCI layout tarballs.

Nothing is unpacked to disk: an uncompressed tarball is indexed once (member offsets) and
blobs are streamed from those offsets; a compressed tarball is read through ``tarfile``.
Every blob is verified against its digest while it is read, like a registry's.

Repositories are the names found in the archive: ``RepoTags`` of a docker archive, the
``io.containerd.image.name`` / ``org.opencontainers.image.ref.name`` annotations of an OCI
index. A bare tag annotation (what ``skopeo copy ... oci:DIR:TAG`` writes) and untagged
images belong to a repository named after the file or directory (``app.tar`` -> ``app``).
A docker archive has no registry manifest: a Docker v2 schema2 manifest is synthesised
from ``manifest.json`` (deterministic, so its digest is stable for the same archive).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..model import Image
from .interface import Manifest, Registry, RegistryError, RepositoryNotFoundError, RequestLimits
from ._manifest import DOCKER_MANIFEST, VerifyingReader, resolve_manifests
from .reference import DOCKER_HUB, InvalidReferenceError, parse_reference

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
_CHUNK = 1 << 16
_HEX64 = re.compile(r"(?:^|/)([0-9a-f]{64})(?:\.tar)?$")


# ---------------------------------------------------------------------------- file sources


class _Source:
    """Files of a layout, by relative path: a directory or a tarball."""

    def exists(self, name: str) -> bool: ...
    def open(self, name: str) -> BinaryIO: ...
    def size(self, name: str) -> int: ...
    def names(self) -> list[str]: ...

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        if self.size(name) > limit:
            raise ValueError(f"{name} is larger than {limit} bytes")
        with self.open(name) as f:
            return f.read()


class _DirSource(_Source):
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        p = (self.root / name).resolve()
        if not str(p).startswith(str(self.root.resolve()) + os.sep):
            raise FileNotFoundError(name)
        return p

    def exists(self, name: str) -> bool:
        try:
            return self._path(name).is_file()
        except FileNotFoundError:
            return False

    def open(self, name: str) -> BinaryIO:
        return open(self._path(name), "rb")

    def size(self, name: str) -> int:
        return self._path(name).stat().st_size

    def names(self) -> list[str]:
        return [str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()]


class _Window(io.RawIOBase):
    """``size`` bytes of a file starting at ``offset``."""

    def __init__(self, path: Path, offset: int, size: int) -> None:
        super().__init__()
        self._f = open(path, "rb")
        self._f.seek(offset)
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._left <= 0:
            return 0
        n = self._f.readinto(memoryview(b)[:min(len(b), self._left)])
        self._left -= n or 0
        return n or 0

    def close(self) -> None:
        self._f.close()
        super().close()


class _TarSource(_Source):
    """Members of a tarball; uncompressed ones are read by offset, compressed ones through tarfile."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._members: dict[str, tarfile.TarInfo] = {}
        with open(path, "rb") as f:
            magic = f.read(6)
        self.compressed = magic[:2] == b"\x1f\x8b" or magic[:3] == b"BZh" or magic == b"\xfd7zXZ\x00"
        file_size = path.stat().st_size
        with tarfile.open(path, "r:*") as tar:
            for m in tar:
                name = _norm(m.name)
                if not self.compressed and m.isfile() and m.offset_data + m.size > file_size:
                    raise EOFError(f"member {name} runs past the end of the file")
                self._members[name] = m
        if not self._members:
            raise tarfile.ReadError("no members")

    def _resolve(self, name: str) -> tarfile.TarInfo:
        name = _norm(name)
        for _ in range(10):
            m = self._members.get(name)
            if m is None:
                raise FileNotFoundError(name)
            if m.issym():
                name = _norm(os.path.join(os.path.dirname(name), m.linkname))
            elif m.islnk():
                name = _norm(m.linkname)
            else:
                return m
        raise FileNotFoundError(name)

    def exists(self, name: str) -> bool:
        try:
            return self._resolve(name).isfile()
        except FileNotFoundError:
            return False

    def size(self, name: str) -> int:
        return self._resolve(name).size

    def names(self) -> list[str]:
        return list(self._members)

    def open(self, name: str) -> BinaryIO:
        m = self._resolve(name)
        if not self.compressed:
            return io.BufferedReader(_Window(self.path, m.offset_data, m.size))
        tar = tarfile.open(self.path, "r:*")
        f = tar.extractfile(m.name)
        if f is None:
            tar.close()
            raise FileNotFoundError(name)
        return _ClosingWrapper(f, tar)


class _ClosingWrapper(io.RawIOBase):
    def __init__(self, f, owner) -> None:
        super().__init__()
        self._f, self._owner = f, owner

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._f.read(len(b))
        b[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._f.close()
        self._owner.close()
        super().close()


def _norm(name: str) -> str:
    return os.path.normpath(name.lstrip("./") if name.startswith("./") else name).lstrip("/")


def _file_digest(source: _Source, name: str) -> str:
    h = hashlib.sha256()
    with source.open(name) as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


# ---------------------------------------------------------------------------- the registry


@dataclass
class _Entry:
    """One image found in the archive."""

    repository: str
    tags: list[str]
    digest: str
    media_type: str
    docker_index: int | None = None
    """Position in a docker archive's manifest.json."""


class ArchiveRegistry(Registry):
    """Images from a local archive or layout at ``path`` (detected from its contents).

    ``platform`` picks from a multi-platform index as the OCI registry does.
    """

    @classmethod
    def from_config(cls, registry: Any, limits: RequestLimits | None = None) -> "ArchiveRegistry":
        limits = limits or RequestLimits()
        return cls(registry.name, registry.path, max_blob_size=limits.max_blob_bytes,
                   max_manifest_size=limits.max_manifest_bytes)

    def __init__(self, name: str, path: str | os.PathLike, *, platform: str = "linux/amd64",
                 max_blob_size: int | None = None, max_manifest_size: int = 4 << 20) -> None:
        self.name = name
        self.path = Path(path)
        self.platform = platform
        self.max_blob_size = max_blob_size
        self.max_manifest_size = max_manifest_size
        self._lock = threading.Lock()
        self._loaded = False
        self._source: _Source | None = None
        self.kind: str | None = None
        """``oci-layout``, ``oci-archive`` or ``docker-archive``, once loaded."""
        self._entries: list[_Entry] = []
        self._docker_manifests: dict[str, bytes] = {}
        self._docker_blobs: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"ArchiveRegistry(name={self.name!r}, path={str(self.path)!r})"

    # ------------------------------------------------------------------ loading

    def _fail(self, problem: str, **where) -> RegistryError:
        return RegistryError(f"{self.path}: {problem}", registry=self.name, **where)

    def _load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            try:
                self._load_unlocked()
            except RegistryError:
                raise
            except FileNotFoundError as e:
                if not self.path.exists():
                    raise self._fail("no such file or directory; check the path") from None
                raise self._fail(f"{e.args[0] if e.args else e} is missing: the archive is truncated or not "
                                 "an image archive") from None
            except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError, KeyError, TypeError) as e:
                raise self._fail(f"not a readable docker-archive or OCI layout ({type(e).__name__}: {e}); "
                                 "the file may be truncated or corrupt: re-create it") from None
            self._loaded = True

    def _load_unlocked(self) -> None:
        if self.path.is_dir():
            self._source = _DirSource(self.path)
        elif self.path.is_file():
            self._source = _TarSource(self.path)
        else:
            raise FileNotFoundError(str(self.path))
        src = self._source
        if src.exists("index.json") and (src.exists("oci-layout") or not src.exists("manifest.json")):
            self.kind = "oci-layout" if self.path.is_dir() else "oci-archive"
            self._load_oci(src)
        elif src.exists("manifest.json"):
            self.kind = "docker-archive"
            self._load_docker(src)
        else:
            raise self._fail("has neither index.json (OCI layout) nor manifest.json (docker save); "
                             "give a docker-archive, an OCI layout directory or an OCI layout tarball")

    def _default_repository(self) -> str:
        stem = self.path.name
        for suffix in (".tar.gz", ".tgz", ".tar.zst", ".tar"):
            if stem.endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        return stem.lower() or "image"

    def _split_name(self, text: str) -> tuple[str, str | None]:
        """``docker.io/library/app:1`` -> (``app``, ``1``); keeps a non-Hub host in the repository."""
        try:
            ref = parse_reference(text)
        except InvalidReferenceError:
            return text, None
        repo = ref.repository
        if ref.registry == DOCKER_HUB:
            repo = repo.removeprefix("library/")
        else:
            repo = f"{ref.registry}/{repo}"
        return repo, ref.tag

    def _load_oci(self, src: _Source) -> None:
        index = json.loads(src.read("index.json"))
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise ValueError("index.json has no manifests list")
        by_key: dict[tuple[str, str], _Entry] = {}
        for d in index["manifests"]:
            ann = d.get("annotations") or {}
            full = ann.get("io.containerd.image.name")
            ref = ann.get("org.opencontainers.image.ref.name")
            repo, tag = self._default_repository(), None
            if full:
                repo, tag = self._split_name(full)
            elif ref and ("/" in ref or ":" in ref):
                repo, tag = self._split_name(ref)
            elif ref:
                tag = ref
            entry = by_key.setdefault((repo, d["digest"]), _Entry(repo, [], d["digest"], d.get("mediaType", "")))
            if tag and tag not in entry.tags:
                entry.tags.append(tag)
        self._entries = list(by_key.values())

    def _load_docker(self, src: _Source) -> None:
        items = json.loads(src.read("manifest.json"))
        if not isinstance(items, list):
            raise ValueError("manifest.json is not a list")
        for i, item in enumerate(items):
            config_name = item["Config"]
            config_raw = src.read(config_name)
            config_digest = "sha256:" + hashlib.sha256(config_raw).hexdigest()
            diff_ids = (json.loads(config_raw).get("rootfs") or {}).get("diff_ids") or []
            layers = []
            for pos, layer_name in enumerate(item["Layers"]):
                with src.open(layer_name) as f:
                    gz = f.read(2) == b"\x1f\x8b"
                m = _HEX64.search(_norm(layer_name))
                named = f"sha256:{m.group(1)}" if m else None
                if named and (layer_name.startswith("blobs/") or
                              (not gz and pos < len(diff_ids) and diff_ids[pos] == named)):
                    digest = named  # verified when streamed
                else:
                    digest = _file_digest(src, layer_name)
                layers.append({"mediaType": DOCKER_LAYER_GZIP if gz else DOCKER_LAYER,
                               "size": src.size(layer_name), "digest": digest})
                self._docker_blobs[digest] = layer_name
            self._docker_blobs[config_digest] = config_name
            manifest = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                        "config": {"mediaType": DOCKER_CONFIG, "size": len(config_raw), "digest": config_digest},
                        "layers": layers}
            raw = json.dumps(manifest, indent=3).encode()
            digest = "sha256:" + hashlib.sha256(raw).hexdigest()
            self._docker_manifests[digest] = raw
            tags_by_repo: dict[str, list[str]] = {}
            for repo_tag in item.get("RepoTags") or ():
                repo, tag = self._split_name(repo_tag)
                tags_by_repo.setdefault(repo, []).extend([tag] if tag else [])
            if not tags_by_repo:
                tags_by_repo[self._default_repository()] = []
            for repo, tags in tags_by_repo.items():
                self._entries.append(_Entry(repo, tags, digest, DOCKER_MANIFEST, docker_index=i))

    # ------------------------------------------------------------------ Registry API

    def repositories(self) -> Iterator[str]:
        self._load()
        yield from sorted({e.repository for e in self._entries})

    def images(self, repository: str) -> Iterator[Image]:
        """The archive's images of ``repository``; :class:`RepositoryNotFoundError` when it holds none."""
        self._load()
        if not any(e.repository == repository for e in self._entries):
            have = ", ".join(sorted({e.repository for e in self._entries})) or "none"
            raise RepositoryNotFoundError(f"{self.path} has no repository {repository!r} (it has {have})",
                                          registry=self.name, repository=repository)
        for e in self._entries:
            if e.repository == repository:
                yield Image(registry=self.name, repository=repository, digest=e.digest,
                            tags=tuple(sorted(e.tags)), media_type=e.media_type)

    def _raw_manifest(self, repository: str, digest: str) -> bytes:
        where = {"repository": repository, "reference": digest}
        if self.kind == "docker-archive":
            raw = self._docker_manifests.get(digest)
            if raw is None:
                raise self._fail("no such manifest in the archive", **where)
            return raw
        with self.blob(repository, digest) as f:
            raw = f.read(self.max_manifest_size + 1)
        if len(raw) > self.max_manifest_size:
            raise self._fail(f"manifest is larger than {self.max_manifest_size} bytes "
                             "(limits.max_manifest_bytes); refused", **where)
        return raw

    def manifest(self, repository: str, reference: str) -> Manifest:
        self._load()
        where = {"repository": repository, "reference": reference}
        candidates = [e for e in self._entries if e.repository == repository
                      and (reference == e.digest or reference in e.tags)]
        if not candidates:
            if self.kind != "docker-archive" and reference.startswith("sha256:"):
                digest = reference  # a manifest inside an index, addressed by digest
            else:
                known = sorted({f"{e.repository}:{t}" for e in self._entries for t in e.tags})
                raise self._fail(f"no image {repository}:{reference} in the archive; it has "
                                 f"{', '.join(known) or 'only untagged images'}", **where)
        else:
            digest = candidates[0].digest
        where = {"registry": self.name, **where}
        return resolve_manifests(lambda ref: (self._raw_manifest(repository, ref), None, ref), digest, self.platform,
                                 where)[0]

    def blob(self, repository: str, digest: str, *, size: int | None = None) -> BinaryIO:
        self._load()
        where = {"registry": self.name, "repository": repository, "reference": digest}
        assert self._source is not None
        if self.kind == "docker-archive":
            name = self._docker_blobs.get(digest)
        else:
            algo, _, hexpart = digest.partition(":")
            name = f"blobs/{algo}/{hexpart}" if re.fullmatch(r"[a-z0-9]+", algo) and re.fullmatch(
                r"[0-9a-f]+", hexpart) else None
        if name is None or not self._source.exists(name):
            raise RegistryError(f"{self.path}: blob not in the archive (truncated or incomplete?)", **where)
        actual = self._source.size(name)
        if self.max_blob_size is not None and actual > self.max_blob_size:
            raise RegistryError(f"{self.path}: blob is {actual} bytes, over limits.max_blob_bytes", **where)
        f = self._source.open(name)

        def chunks():
            while chunk := f.read(_CHUNK):
                yield chunk

        where_file = {**where, "registry": f"{self.name} ({self.path})"}
        raw = VerifyingReader(chunks(), digest, expected_size=size if size is not None else actual,
                              max_size=self.max_blob_size, where=where_file, on_close=f.close)
        return io.BufferedReader(raw, buffer_size=_CHUNK)

