"""ArchiveRegistry on archives made by skopeo from the same images the registry tests push."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess

import pytest

from vulnwatch.registries.archive import ArchiveRegistry
from vulnwatch.registries.interface import RegistryError
from vulnwatch.registries.oci import OCIRegistry


def skopeo(src: str, dest: str) -> None:
    subprocess.run(["skopeo", "copy", "--quiet", src, dest], check=True, capture_output=True)


@pytest.fixture(scope="module")
def archives(tmp_path_factory, images):
    d = tmp_path_factory.mktemp("archives")
    lay = images.layout
    skopeo(f"oci:{lay}:v1", f"docker-archive:{d / 'app.tar'}:myteam/app:v1")
    skopeo(f"oci:{lay}:v1", f"oci-archive:{d / 'oci-app.tar'}:v1")
    with open(d / "app.tar", "rb") as src, gzip.open(d / "app.tar.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    return d


def read_blob(reg, repo, digest) -> bytes:
    with reg.blob(repo, digest) as f:
        return f.read()


def test_docker_archive_matches_the_image(archives, images):
    reg = ArchiveRegistry("local", archives / "app.tar")
    assert list(reg.repositories()) == ["myteam/app"]
    [img] = list(reg.images("myteam/app"))
    assert img.tags == ("v1",) and img.registry == "local"
    m = reg.manifest("myteam/app", "v1")
    assert reg.kind == "docker-archive"
    assert m.digest == img.digest
    assert m.config.digest == images.v1.config_digest
    # docker archives hold uncompressed layers: their digests are the config's diff_ids
    assert tuple(layer.digest for layer in m.layers) == images.v1.diff_ids
    assert read_blob(reg, "myteam/app", m.layers[0].digest) == gzip.decompress(images.v1.layer_bytes[0])
    assert read_blob(reg, "myteam/app", m.config.digest).startswith(b"{")
    # the synthesised manifest is stable
    assert ArchiveRegistry("again", archives / "app.tar").manifest("myteam/app", "v1").digest == m.digest


def test_gzipped_docker_archive(archives, images):
    reg = ArchiveRegistry("local", archives / "app.tar.gz")
    m = reg.manifest("myteam/app", "v1")
    assert m.config.digest == images.v1.config_digest
    assert read_blob(reg, "myteam/app", m.layers[0].digest) == gzip.decompress(images.v1.layer_bytes[0])


def test_oci_layout_dir_same_as_registry(images, plain_registry):
    reg = ArchiveRegistry("local", images.layout)
    assert list(reg.repositories()) == ["layout"]
    tags = {t for i in reg.images("layout") for t in i.tags}
    assert tags == {"v1", "v2", "corrupt", "multi"}
    remote = OCIRegistry("remote", plain_registry.url, insecure=True)
    local_m, remote_m = reg.manifest("layout", "v1"), remote.manifest("app", "v1")
    assert local_m.digest == remote_m.digest and local_m.raw == remote_m.raw
    assert local_m.layers == remote_m.layers
    assert read_blob(reg, "layout", local_m.layers[0].digest) == read_blob(remote, "app", remote_m.layers[0].digest)


def test_oci_layout_index_picks_platform(images):
    reg = ArchiveRegistry("local", images.layout, platform="linux/arm64")
    m = reg.manifest("layout", "multi")
    assert m.platform == "linux/arm64" and m.index_digest == images.index_digest
    assert m.digest == images.per_platform["linux/arm64"].manifest_digest
    with pytest.raises(RegistryError, match="available platforms: linux/amd64, linux/arm64"):
        ArchiveRegistry("local", images.layout, platform="windows/amd64").manifest("layout", "multi")


def test_oci_archive_tarball(archives, images):
    reg = ArchiveRegistry("local", archives / "oci-app.tar")
    assert list(reg.repositories()) == ["oci-app"]
    m = reg.manifest("oci-app", "v1")
    assert reg.kind == "oci-archive"
    assert m.digest == images.v1.manifest_digest
    assert read_blob(reg, "oci-app", m.layers[0].digest) == images.v1.layer_bytes[0]


def test_unknown_tag_lists_what_exists(archives):
    with pytest.raises(RegistryError, match="myteam/app:v1"):
        ArchiveRegistry("local", archives / "app.tar").manifest("myteam/app", "v9")


def test_truncated_archive_names_the_file(archives, tmp_path):
    data = (archives / "app.tar").read_bytes()
    bad = tmp_path / "truncated.tar"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(RegistryError) as e:
        reg = ArchiveRegistry("local", bad)
        m = reg.manifest("myteam/app", "v1")
        for layer in m.layers:
            read_blob(reg, "myteam/app", layer.digest)
    assert str(bad) in str(e.value)


def test_truncated_gzip_archive_names_the_file(archives, tmp_path):
    data = (archives / "app.tar.gz").read_bytes()
    bad = tmp_path / "cut.tar.gz"
    bad.write_bytes(data[: len(data) - 40])
    with pytest.raises(RegistryError) as e:
        list(ArchiveRegistry("local", bad).repositories())
    assert str(bad) in str(e.value) and "truncated or corrupt" in str(e.value)


def test_garbage_file_names_the_file(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not an image\n" * 100)
    with pytest.raises(RegistryError) as e:
        list(ArchiveRegistry("local", bad).repositories())
    assert str(bad) in str(e.value)


def test_missing_path(tmp_path):
    with pytest.raises(RegistryError, match="no such file"):
        list(ArchiveRegistry("local", tmp_path / "nope.tar").repositories())


def test_corrupt_blob_in_layout_detected(images, tmp_path):
    lay = tmp_path / "layout"
    shutil.copytree(images.layout, lay)
    digest = images.v1.layer_digests[0]
    blob = lay / "blobs" / "sha256" / digest.split(":", 1)[1]
    blob.write_bytes(blob.read_bytes()[:-1] + b"X")
    reg = ArchiveRegistry("local", lay)
    with pytest.raises(RegistryError) as e:
        read_blob(reg, "layout", digest)
    assert "does not match its digest" in str(e.value) and str(lay) in str(e.value)
    assert hashlib.sha256(blob.read_bytes()).hexdigest() != digest.split(":", 1)[1]
