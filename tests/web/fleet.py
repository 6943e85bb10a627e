"""A small real fleet for the dashboard tests, filled by real pipeline runs through the CLI.

Images are built from the layers of the bundled example archive (real dpkg and Python package
metadata), so the built-in scanner finds real OSV advisories in them:

* ``example/webapp:1.0``  Debian 11 + Jinja2 2.10, requests, urllib3 (the example image); in the
  last run the tag moves to a rebuild with Jinja2 upgraded to 2.11.3 (a ``rebuild`` event that
  fixes the Jinja2 findings);
* ``example/api:2.0``     the same without requests (a whiteout layer);
* ``tools/base:bullseye`` the Debian layer alone;
* ``tools/empty:1``       (last run only) an os-release file and a METADATA file without
  Name/Version: a coverage warning in the snapshot's notes, no findings;
* ``evil`` registry       a layer with a ``../`` name: a failure recorded for the image.

Runs: ``db import`` of the older OSV data, ``run``; ``db import`` of the newer data (re-matching
adds advisories: ``findings_changed``); then the rebuild and ``run`` again. A webhook sink
``hook`` points at a closed port with ``max_attempts: 1``, so every one of its deliveries is a
dead letter; the ``console`` sink delivers.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from vulnwatch.cli.main import app
from vulnwatch.examples import IMAGE_ARCHIVE, OSV_DIR, OSV_OLDER_DIR

SITE = "usr/local/lib/python3.9/site-packages"
HOOK_SECRET = "whsec-never-rendered-0123"
"""The webhook's signing secret: no page or API answer may contain it (nor the hook's URL)."""


def _example_layers() -> tuple[dict, list[bytes]]:
    with tarfile.open(IMAGE_ARCHIVE) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))[0]
        config = json.load(tar.extractfile(manifest["Config"]))
        layers = [tar.extractfile(name).read() for name in manifest["Layers"]]
    return config, layers


def _tar(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1677628800
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _metadata(name: str, version: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()


def write_archive(path: Path, images: dict[str, list[bytes]]) -> None:
    """A ``docker save`` archive holding one image per ``repo:tag`` -> layer tars."""
    base_config, _ = _example_layers()
    manifest, blobs = [], {}
    for ref, layers in images.items():
        names = []
        for layer in layers:
            digest = hashlib.sha256(layer).hexdigest()
            blobs[f"{digest}.tar"] = layer
            names.append(f"{digest}.tar")
        config = dict(base_config, rootfs={"type": "layers", "diff_ids": [f"sha256:{n[:-4]}" for n in names]},
                      history=[{"created_by": f"layer {i}"} for i in range(len(names))])
        data = json.dumps(config, sort_keys=True).encode()
        config_name = hashlib.sha256(data).hexdigest() + ".json"
        blobs[config_name] = data
        manifest.append({"Config": config_name, "RepoTags": [ref], "Layers": names})
    blobs["manifest.json"] = json.dumps(manifest).encode()
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(_tar(blobs))
    tmp.replace(path)


def fleet_images(rebuilt: bool) -> dict[str, list[bytes]]:
    _, (debian, python, whiteout) = _example_layers()
    os_release = _tar({"etc/os-release": b'ID=debian\nVERSION_ID="11"\n',   # and an unreadable metadata file
                       f"{SITE}/broken-1.0.dist-info/METADATA": b"this is not a metadata file\n"})
    webapp = [debian, python, whiteout]
    if rebuilt:
        webapp = webapp + [_tar({f"{SITE}/.wh.Jinja2-2.10.dist-info": b"",
                                 f"{SITE}/Jinja2-2.11.3.dist-info/METADATA": _metadata("Jinja2", "2.11.3")})]
    images = {
        "example/webapp:1.0": webapp,
        "example/api:2.0": [debian, python, whiteout, _tar({f"{SITE}/.wh.requests-2.19.1.dist-info": b""})],
        "tools/base:bullseye": [debian],
    }
    if rebuilt:   # new in the last run: a re-match keeps no catalog warnings, a first scan does
        images["tools/empty:1"] = [os_release]
    return images


def hostile_archive(path: Path) -> None:
    write_archive(path, {"evil/app:1": [_tar({"../../etc/passwd": b"root:x:0:0::/root:/bin/sh\n"})]})


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Fleet:
    dir: Path
    config: Path
    state: str
    """``state:`` YAML of the store (path or url)."""
    outputs: list[str]

    def config_text(self, hook_url: str, web: str = "") -> str:
        return _config(self.dir, self.state, hook_url, web)


def _config(d: Path, state: str, hook_url: str, web: str = "") -> str:
    return f"""
state: {state}
vulndb: {{path: {d / 'osv.db'}}}
delivery: {{max_attempts: 1}}
registries:
  - name: local
    type: archive
    path: {d / 'local.tar'}
  - name: evil
    type: archive
    path: {d / 'evil.tar'}
notifications:
  - name: console
    type: console
  - name: hook
    type: webhook
    url: {hook_url}
    secret: {HOOK_SECRET}
{web}"""


def cli(cfg: Path, *args: str):
    return CliRunner().invoke(app, ["--config", str(cfg), *args], catch_exceptions=False)


def fill(d: Path, state: str) -> Fleet:
    """Three real pipeline runs into the store ``state`` (see the module's docstring)."""
    d.mkdir(parents=True, exist_ok=True)
    cfg = d / "fill.yaml"
    cfg.write_text(_config(d, state, f"http://127.0.0.1:{closed_port()}/hook"))
    write_archive(d / "local.tar", fleet_images(rebuilt=False))
    hostile_archive(d / "evil.tar")
    outputs = []
    steps = [("db", "import", str(OSV_OLDER_DIR / "Debian"), str(OSV_OLDER_DIR / "PyPI")),
             ("run",),
             ("db", "import", str(OSV_DIR / "Debian"), str(OSV_DIR / "PyPI")),
             None,
             ("run",)]
    for step in steps:
        if step is None:
            write_archive(d / "local.tar", fleet_images(rebuilt=True))
            continue
        r = cli(cfg, *step)
        outputs.append(r.output)
        assert r.exit_code in (0, 1), r.output
    return Fleet(d, cfg, state, outputs)
