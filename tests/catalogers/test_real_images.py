"""Real images (mmdebstrap rootfs + pip + npm ci + whiteouts): our inventory agrees with syft."""

from __future__ import annotations

import tarfile

import pytest

from tests.support import images
from tests.support.images import load_layout, to_docker_archive, write_oci_layout
from vulnwatch.catalogers.plan import catalog_image
from vulnwatch.walker import walk_layers

pytestmark = pytest.mark.slow


def ours(layout) -> set[tuple[str, str, str]]:
    with layout.open_layers() as layers:
        inv = catalog_image(layers)
    kinds = {"PyPI": "python", "npm": "npm"}
    out = set()
    for p in inv.packages:
        kind = "deb" if p.ecosystem.startswith("Debian") else kinds.get(p.ecosystem, p.ecosystem)
        name = p.name.lower() if kind == "python" else p.name
        out.add((kind, name, p.version))
    return out


def syft_set(doc: dict, types=("deb", "python", "npm")) -> set[tuple[str, str, str]]:
    return {(a["type"], a["name"], a["version"]) for a in doc["artifacts"] if a["type"] in types}


def test_app_image_agrees_with_syft(app_image, syft_of):
    mine = ours(app_image)
    theirs = syft_set(syft_of(app_image))
    assert mine == theirs
    kinds = {k for k, _, _ in mine}
    assert kinds == {"deb", "python", "npm"}
    assert sum(1 for k, _, _ in mine if k == "deb") > 80


def test_app_image_old_packages_present_and_whiteouts_honoured(app_image, syft_of):
    mine = ours(app_image)
    theirs = syft_set(syft_of(app_image))
    for name, version in images.PYTHON_PACKAGES.items():
        entry = ("python", name.lower(), version)
        if name == images.WHITEOUT_PYTHON:
            assert entry not in mine and entry not in theirs
        else:
            assert entry in mine and entry in theirs
    assert ("npm", "lodash", "4.17.4") in mine
    # the opaque directory replaced minimist 0.0.8 with a newer package.json
    assert ("npm", images.OPAQUE_NPM, "0.0.8") not in mine | theirs
    assert ("npm", images.OPAQUE_NPM, images.OPAQUE_NPM_VERSION) in mine & theirs


def test_whiteout_deletes_dpkg_listed_file(app_image):
    want = lambda p: 1 << 20 if p in (images.WHITEOUT_DPKG_FILE, "usr/bin/openssl") else None  # noqa: E731
    with app_image.open_layers() as layers:
        base_only = walk_layers(layers[:1], want)
    with app_image.open_layers() as layers:
        full = walk_layers(layers, want)
    assert images.WHITEOUT_DPKG_FILE in base_only.files
    assert images.WHITEOUT_DPKG_FILE not in full.files
    assert "usr/bin/openssl" in full.files


def test_deb_purls_match_syft(app_image, syft_of):
    with app_image.open_layers() as layers:
        inv = catalog_image(layers)
    mine = {p.name: p.purl for p in inv.packages if p.ecosystem == "Debian:12"}
    theirs = {a["name"]: a["purl"] for a in syft_of(app_image)["artifacts"] if a["type"] == "deb"}
    assert mine == theirs
    assert inv.ecosystem == "Debian:12"
    assert inv.warnings == ()


def test_bullseye_agrees_with_syft(bullseye_image, syft_of):
    with bullseye_image.open_layers() as layers:
        inv = catalog_image(layers)
    assert inv.ecosystem == "Debian:11"
    assert ours(bullseye_image) == syft_set(syft_of(bullseye_image))
    assert any(p.name == "openssl" for p in inv.packages)


def test_zstd_and_uncompressed_layouts_give_same_inventory(app_image, tmp_path):
    import gzip
    raw = []
    for path in app_image.layer_paths:
        with gzip.open(path, "rb") as f:
            raw.append(f.read())
    expected = ours(app_image)
    for compression in ("zstd", "none"):
        layout = write_oci_layout(tmp_path / compression, raw, compression=compression)
        assert layout.diff_ids == app_image.diff_ids
        assert ours(load_layout(layout.path)) == expected


def test_docker_archive_helper(bullseye_image, tmp_path):
    archive = to_docker_archive(bullseye_image, tmp_path / "img.tar", name="vulnwatch/bullseye")
    with tarfile.open(archive) as tf:
        import json
        manifest = json.load(tf.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"][0].endswith("vulnwatch/bullseye:latest")
    assert len(manifest[0]["Layers"]) == 1
