"""Real test images, built from real packages (no fakes), written as OCI layouts.

- Debian rootfs (bookworm, bullseye) with ``mmdebstrap`` from the machine's apt mirrors.
- A Python layer: old, known-vulnerable wheels installed with ``pip install --target``.
- An npm layer: old versions pinned by a lockfile we write, installed with ``npm ci``.
- A whiteout layer: deletes a dpkg-listed file, a Python package's dist-info, and
  makes an npm package directory opaque (with a newer package.json inside).

Builders are plain functions (reusable by any test directory); the fixtures in
``tests/catalogers/conftest.py`` call them once per session. Set
``VULNWATCH_TEST_IMAGE_CACHE=/some/dir`` to keep built images across sessions.

Every image is an OCI layout directory: ``oci-layout``, ``index.json`` (one manifest,
``org.opencontainers.image.ref.name`` = tag), gzip layer blobs, and a config whose
``rootfs.diff_ids`` are the sha256 of the uncompressed tars.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

BUILDER_VERSION = "3"
"""Bump when a builder changes so cached images are rebuilt."""

PYTHON_PACKAGES = {"Jinja2": "2.10", "urllib3": "1.24.1", "requests": "2.19.1", "Django": "2.2.1",
                   "Flask": "0.12.2", "Werkzeug": "0.14.1"}
"""Old, vulnerable, pure-Python releases installed in the Python layer."""
PYTHON_SITE = "usr/local/lib/python3.11/site-packages"
"""Where the Python layer puts them."""

NPM_PACKAGES = {
    "lodash": ("4.17.4", "sha512-6X37Sq9KCpLSXEh8uM12AKYlviHPNNk4RxiGBn4cmKGJinbXBneWIV7iE/nXkM928O7ytHcHb6+X6Svl0f4hXg=="),
    "minimist": ("0.0.8", "sha512-miQKw5Hv4NS1Psg2517mV4e4dYNaO3++hjAvLOAzKqZ61rH8NS1SK+vbfBWZ5PY/Me/bEWhUwqMghEW5Fb9T7Q=="),
}
"""npm packages pinned by the lockfile: name -> (version, integrity)."""
NPM_APP = "app"
"""Directory of the npm application (its own package.json is ``app/package.json``)."""

WHITEOUT_DPKG_FILE = "usr/bin/curl"
"""A dpkg-listed file the whiteout layer deletes."""
WHITEOUT_PYTHON = "Werkzeug"
"""The Python package whose dist-info the whiteout layer deletes."""
OPAQUE_NPM = "minimist"
"""The npm package directory the whiteout layer makes opaque ..."""
OPAQUE_NPM_VERSION = "1.2.8"
"""... putting a package.json of this version in it."""

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class ImageLayout:
    """An OCI layout directory holding one image."""

    path: Path
    """The layout directory (``oci-dir:`` for syft, ``oci:DIR:TAG`` for skopeo)."""
    manifest_digest: str
    """``sha256:`` digest of the manifest bytes."""
    layer_paths: tuple[Path, ...]
    """Layer blobs (compressed), bottom first."""
    diff_ids: tuple[str, ...]
    """sha256 of each uncompressed layer tar, bottom first."""
    tag: str = "latest"
    """Tag recorded in index.json."""

    @contextlib.contextmanager
    def open_layers(self) -> Iterator[list[tuple[str, BinaryIO]]]:
        """``(diff id, open blob)`` pairs for :func:`vulnwatch.walker.walk_layers`."""
        with contextlib.ExitStack() as stack:
            yield [(d, stack.enter_context(open(p, "rb"))) for d, p in zip(self.diff_ids, self.layer_paths)]

    @property
    def manifest(self) -> dict:
        return json.loads(self.blob(self.manifest_digest))

    def blob(self, digest: str) -> bytes:
        return (self.path / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


# ---------------------------------------------------------------- tar helpers

def _tarinfo(name: str, *, type_: bytes = tarfile.REGTYPE, mode: int = 0o644, size: int = 0,
             linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = type_
    info.mode = mode
    info.size = size
    info.linkname = linkname
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


class LayerWriter:
    """Writes a layer tar by hand (names as given, deterministic metadata): for whiteouts,
    hostile names and other things a filesystem cannot hold."""

    def __init__(self, out: BinaryIO) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)
        self._dirs: set[str] = set()

    def _parents(self, name: str) -> None:
        parts = name.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self._dirs:
                self._dirs.add(d)
                self.tar.addfile(_tarinfo(d + "/", type_=tarfile.DIRTYPE, mode=0o755))

    def dir(self, name: str) -> None:
        self._parents(name.rstrip("/") + "/x")

    def file(self, name: str, data: bytes, mode: int = 0o644, parents: bool = True) -> None:
        if parents:
            self._parents(name)
        self.tar.addfile(_tarinfo(name, mode=mode, size=len(data)), io.BytesIO(data))

    def symlink(self, name: str, target: str) -> None:
        self._parents(name)
        self.tar.addfile(_tarinfo(name, type_=tarfile.SYMTYPE, mode=0o777, linkname=target))

    def hardlink(self, name: str, target: str) -> None:
        self._parents(name)
        self.tar.addfile(_tarinfo(name, type_=tarfile.LNKTYPE, linkname=target))

    def whiteout(self, path: str) -> None:
        """Delete ``path`` of the layers below."""
        parent, _, base = path.rpartition("/")
        self.file(f"{parent}/.wh.{base}" if parent else f".wh.{base}", b"")

    def opaque(self, directory: str) -> None:
        """Hide everything the layers below have in ``directory``."""
        self.file(f"{directory.rstrip('/')}/.wh..wh..opq", b"")

    def close(self) -> None:
        self.tar.close()


def layer_bytes(build: Callable[[LayerWriter], None]) -> bytes:
    """An uncompressed layer tar made by ``build(writer)``."""
    buf = io.BytesIO()
    w = LayerWriter(buf)
    build(w)
    w.close()
    return buf.getvalue()


def tar_directory(src: Path, out: Path, prefix: str) -> Path:
    """Tar the tree ``src`` as ``prefix/...`` (deterministic order and metadata)."""
    with open(out, "wb") as f:
        w = LayerWriter(f)
        w.dir(prefix)
        for root, dirs, files in os.walk(src):
            dirs.sort()
            rel = os.path.relpath(root, src)
            base = prefix if rel == "." else f"{prefix}/{rel}"
            w.dir(base)
            for name in sorted(files):
                p = Path(root) / name
                if p.is_symlink():
                    w.symlink(f"{base}/{name}", os.readlink(p))
                else:
                    w.file(f"{base}/{name}", p.read_bytes(), mode=p.stat().st_mode & 0o777)
            for name in dirs:
                p = Path(root) / name
                if p.is_symlink():
                    w.symlink(f"{base}/{name}", os.readlink(p))
        w.close()
    return out


# ---------------------------------------------------------------- OCI layout

def write_oci_layout(out_dir: Path, layer_tars: list[Path | bytes], *, compression: str = "gzip",
                     tag: str = "latest") -> ImageLayout:
    """Write an OCI layout with the given uncompressed layer tars (paths or bytes)."""
    out_dir = Path(out_dir)
    blobs = out_dir / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}"

    layers, diff_ids, paths = [], [], []
    for item in layer_tars:
        raw = item if isinstance(item, bytes) else Path(item).read_bytes()
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        if compression == "gzip":
            blob, media = gzip.compress(raw, compresslevel=1, mtime=0), MEDIA_LAYER_GZIP
        elif compression == "zstd":
            import zstandard
            blob, media = zstandard.ZstdCompressor(level=3).compress(raw), MEDIA_LAYER_ZSTD
        else:
            blob, media = raw, MEDIA_LAYER_TAR
        digest = put(blob)
        paths.append(blobs / digest.split(":")[1])
        layers.append({"mediaType": media, "digest": digest, "size": len(blob)})
    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created_by": "vulnwatch test image builder"} for _ in diff_ids]}
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_digest = put(config_bytes)
    manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": len(config_bytes)},
                "layers": layers}
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    manifest_digest = put(manifest_bytes)
    (out_dir / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (out_dir / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": MEDIA_MANIFEST, "digest": manifest_digest, "size": len(manifest_bytes),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return ImageLayout(out_dir, manifest_digest, tuple(paths), tuple(diff_ids), tag)


def load_layout(path: Path) -> ImageLayout:
    """Read back an :class:`ImageLayout` written by :func:`write_oci_layout`."""
    path = Path(path)
    index = json.loads((path / "index.json").read_text())
    desc = index["manifests"][0]
    blobs = path / "blobs" / "sha256"
    manifest = json.loads((blobs / desc["digest"].split(":")[1]).read_bytes())
    config = json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_bytes())
    return ImageLayout(path, desc["digest"],
                       tuple(blobs / lay["digest"].split(":")[1] for lay in manifest["layers"]),
                       tuple(config["rootfs"]["diff_ids"]),
                       desc.get("annotations", {}).get("org.opencontainers.image.ref.name", "latest"))


def to_docker_archive(layout: ImageLayout, out_file: Path, name: str = "vulnwatch/test") -> Path:
    """``docker save``-style archive of ``layout`` made by skopeo."""
    out_file = Path(out_file)
    out_file.unlink(missing_ok=True)
    subprocess.run(["skopeo", "copy", "--quiet", f"oci:{layout.path}:{layout.tag}",
                    f"docker-archive:{out_file}:{name}:{layout.tag}"], check=True, capture_output=True)
    return out_file


# ---------------------------------------------------------------- real content

def apt_mirrors() -> tuple[str, str]:
    """(debian mirror, security mirror) from the machine's apt sources."""
    main = security = None
    texts = []
    for d in (Path("/etc/apt/sources.list.d"), Path("/etc/apt")):
        for p in sorted(d.glob("*.sources")) + sorted(d.glob("*.list")):
            texts.append(p.read_text())
    for url in re.findall(r"(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", "\n".join(texts)):
        if "debian-security" in url and not security:
            security = url
        elif url.rstrip("/").endswith("/debian") and not main:
            main = url
    return (main or "http://deb.debian.org/debian", security or "http://deb.debian.org/debian-security")


def debian_rootfs(out_tar: Path, suite: str, include: str = "openssl,curl") -> Path:
    """A real Debian root filesystem tar made with mmdebstrap (variant apt)."""
    main, security = apt_mirrors()
    sec_suite = f"{suite}-security"
    cmd = ["mmdebstrap", "--variant=apt", f"--include={include}", "--quiet"]
    if suite != "bullseye":
        cmd.append("--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr")
    cmd += [suite, str(out_tar), f"deb {main} {suite} main", f"deb {security} {sec_suite} main"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=900)
    return out_tar


def python_layer(out_tar: Path, work: Path) -> Path:
    """Old Python packages installed with ``pip install --target`` into :data:`PYTHON_SITE`."""
    site = work / "site"
    reqs = [f"{n}=={v}" for n, v in PYTHON_PACKAGES.items()]
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-deps", "--no-compile", "--only-binary", ":all:", "--target", str(site), *reqs],
                   check=True, capture_output=True, timeout=600)
    shutil.rmtree(site / "bin", ignore_errors=True)
    return tar_directory(site, out_tar, PYTHON_SITE)


def npm_layer(out_tar: Path, work: Path) -> Path:
    """Old npm packages pinned by a lockfile we write, installed with ``npm ci`` into ``app/``."""
    app = work / "app"
    app.mkdir(parents=True, exist_ok=True)
    deps = {n: v for n, (v, _) in NPM_PACKAGES.items()}
    (app / "package.json").write_text(json.dumps(
        {"name": "vulnwatch-test-app", "version": "1.0.0", "private": True, "dependencies": deps}, indent=2))
    lock = {"name": "vulnwatch-test-app", "version": "1.0.0", "lockfileVersion": 3, "requires": True,
            "packages": {"": {"name": "vulnwatch-test-app", "version": "1.0.0", "dependencies": deps}}}
    for n, (v, integrity) in NPM_PACKAGES.items():
        lock["packages"][f"node_modules/{n}"] = {
            "version": v, "resolved": f"https://registry.npmjs.org/{n}/-/{n}-{v}.tgz", "integrity": integrity}
    (app / "package-lock.json").write_text(json.dumps(lock, indent=2))
    subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--silent"], cwd=app,
                   check=True, capture_output=True, timeout=600, env={**os.environ, "npm_config_update_notifier": "false"})
    return tar_directory(app, out_tar, NPM_APP)


def whiteout_layer(python_site_names: list[str]) -> bytes:
    """Deletes :data:`WHITEOUT_DPKG_FILE` and the dist-info of :data:`WHITEOUT_PYTHON`
    (``python_site_names``: entries of the site-packages dir, to find its exact name),
    and makes ``app/node_modules/minimist`` opaque with a newer package.json in it."""
    dist_info = next(n for n in python_site_names
                     if n.lower().startswith(WHITEOUT_PYTHON.lower() + "-") and n.endswith(".dist-info"))

    def build(w: LayerWriter) -> None:
        w.whiteout(WHITEOUT_DPKG_FILE)
        w.whiteout(f"{PYTHON_SITE}/{dist_info}")
        d = f"{NPM_APP}/node_modules/{OPAQUE_NPM}"
        w.dir(d)
        w.opaque(d)
        w.file(f"{d}/package.json", json.dumps({"name": OPAQUE_NPM, "version": OPAQUE_NPM_VERSION}).encode())
    return layer_bytes(build)


# ---------------------------------------------------------------- caching

@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def cached(cache_dir: Path, key: str, build: Callable[[Path], None]) -> Path:
    """``cache_dir/key`` built once by ``build(tmp_dir)`` (atomic rename; file-locked so
    parallel test workers build it once)."""
    cache_dir = Path(cache_dir)
    final = cache_dir / key
    with _locked(cache_dir / f".{key}.lock"):
        if (final / ".complete").exists():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache_dir))
        try:
            build(tmp)
            (tmp / ".complete").write_text("ok")
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def default_cache_dir(fallback: Path) -> Path:
    """``$VULNWATCH_TEST_IMAGE_CACHE`` when set, else ``fallback`` (a per-session temp dir)."""
    env = os.environ.get("VULNWATCH_TEST_IMAGE_CACHE")
    return Path(env) if env else Path(fallback)



def bench_cache_dir() -> Path:
    """Where the benchmarks keep built images: ``$VULNWATCH_TEST_IMAGE_CACHE`` when set, else
    ``/tmp/cattest/cache`` when it exists, else ``/tmp/vulnwatch-bench-cache``."""
    shared = Path("/tmp/cattest/cache")
    return default_cache_dir(shared if shared.is_dir() else Path("/tmp/vulnwatch-bench-cache"))

def build_debian_image(out_dir: Path, suite: str, cache_dir: Path | None = None) -> ImageLayout:
    """A one-layer image of a Debian ``suite`` rootfs (bookworm, bullseye)."""
    cache_dir = Path(cache_dir or out_dir)
    rootfs = cached(cache_dir, f"rootfs-{suite}-v{BUILDER_VERSION}",
                    lambda d: debian_rootfs(d / "rootfs.tar", suite)) / "rootfs.tar"
    return cached_layout(Path(out_dir), f"debian-{suite}-v{BUILDER_VERSION}", lambda: [rootfs])


def build_app_image(out_dir: Path, suite: str = "bookworm", cache_dir: Path | None = None) -> ImageLayout:
    """Debian ``suite`` rootfs + Python layer + npm layer + whiteout layer (four layers)."""
    cache_dir = Path(cache_dir or out_dir)
    rootfs = cached(cache_dir, f"rootfs-{suite}-v{BUILDER_VERSION}",
                    lambda d: debian_rootfs(d / "rootfs.tar", suite)) / "rootfs.tar"
    py = cached(cache_dir, f"python-layer-v{BUILDER_VERSION}", lambda d: python_layer(d / "layer.tar", d)) / "layer.tar"
    npm = cached(cache_dir, f"npm-layer-v{BUILDER_VERSION}", lambda d: npm_layer(d / "layer.tar", d)) / "layer.tar"

    def layers() -> list[Path | bytes]:
        with tarfile.open(py) as tf:
            names = sorted({m.name[len(PYTHON_SITE) + 1:].split("/")[0] for m in tf.getmembers()
                            if m.name.startswith(PYTHON_SITE + "/")})
        return [rootfs, py, npm, whiteout_layer(names)]
    return cached_layout(Path(out_dir), f"app-{suite}-v{BUILDER_VERSION}", layers)


def cached_layout(out_dir: Path, key: str, layers: Callable[[], list[Path | bytes]]) -> ImageLayout:
    """An OCI layout at ``out_dir/key`` written once from ``layers()``."""
    path = cached(out_dir, key, lambda d: write_oci_layout(d / "oci", layers()) and None)
    return load_layout(path / "oci")
