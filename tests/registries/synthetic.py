"""Small synthetic OCI images written with the standard library (no Debian, no network).

``write_image(layout, tag, files=...)`` adds a one-layer image to an OCI layout directory;
``write_index(layout, tag, {platform: files})`` adds a multi-platform index.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class WrittenImage:
    """What was written: digests to compare against what a registry serves."""

    manifest_digest: str
    config_digest: str
    layer_digests: tuple[str, ...]
    diff_ids: tuple[str, ...]
    layer_bytes: tuple[bytes, ...]
    """The (gzip) layer blobs as written."""
    index_digest: str | None = None


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tar with ``files`` (path -> content), deterministic."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for path in sorted(files):
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)
            data = files[path]
            info = tarfile.TarInfo(path.strip("/"))
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _init_layout(layout: Path) -> dict:
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index_path = layout / "index.json"
    if index_path.exists():
        return json.loads(index_path.read_text())
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def _put_blob(layout: Path, data: bytes) -> str:
    digest = _sha(data)
    (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(data)
    return digest


def _add_ref(layout: Path, index: dict, desc: dict, tag: str) -> None:
    index["manifests"] = [m for m in index["manifests"]
                          if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") != tag]
    index["manifests"].append({**desc, "annotations": {"org.opencontainers.image.ref.name": tag}})
    (layout / "index.json").write_text(json.dumps(index))


def _image_blobs(layout: Path, files: dict[str, bytes], os_: str = "linux", arch: str = "amd64",
                 variant: str | None = None) -> tuple[dict, WrittenImage]:
    tar = layer_tar(files)
    gz = gzip.compress(tar, mtime=0)
    layer_digest = _put_blob(layout, gz)
    config = {"architecture": arch, "os": os_, "config": {"Env": ["PATH=/usr/bin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": [_sha(tar)]},
              "history": [{"created_by": "vulnwatch test"}]}
    if variant:
        config["variant"] = variant
    config_raw = json.dumps(config, sort_keys=True).encode()
    config_digest = _put_blob(layout, config_raw)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_raw)},
                "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": len(gz)}]}
    raw = json.dumps(manifest, sort_keys=True).encode()
    mdigest = _put_blob(layout, raw)
    desc = {"mediaType": OCI_MANIFEST, "digest": mdigest, "size": len(raw)}
    return desc, WrittenImage(mdigest, config_digest, (layer_digest,), (_sha(tar),), (gz,))


def write_image(layout: Path, tag: str, files: dict[str, bytes]) -> WrittenImage:
    """Add a single-platform (linux/amd64) one-layer image tagged ``tag`` to the layout."""
    index = _init_layout(layout)
    desc, written = _image_blobs(layout, files)
    _add_ref(layout, index, desc, tag)
    return written


def write_index(layout: Path, tag: str, platforms: dict[str, dict[str, bytes]]) -> tuple[str, dict[str, WrittenImage]]:
    """Add a multi-platform index tagged ``tag``: ``{"linux/arm64": files, ...}``. Returns (index digest, per platform)."""
    index = _init_layout(layout)
    entries, per = [], {}
    for plat, files in platforms.items():
        parts = plat.split("/")
        desc, written = _image_blobs(layout, files, parts[0], parts[1], parts[2] if len(parts) > 2 else None)
        p = {"os": parts[0], "architecture": parts[1]}
        if len(parts) > 2:
            p["variant"] = parts[2]
        entries.append({**desc, "platform": p})
        per[plat] = written
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    raw = json.dumps(doc, sort_keys=True).encode()
    digest = _put_blob(layout, raw)
    _add_ref(layout, index, {"mediaType": OCI_INDEX, "digest": digest, "size": len(raw)}, tag)
    return digest, per
