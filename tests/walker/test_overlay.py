"""The layer walker on hand-made layers: whiteouts, opaque dirs, symlinks, limits."""

from __future__ import annotations

import gzip
import io

import pytest
import zstandard

from tests.support.images import layer_bytes
from vulnwatch.walker import LayerError, LayerLimits, walk_layers
from vulnwatch.walker.paths import member_path, resolve_path


def wanted(*paths: str, size: int = 1 << 20):
    paths_set = set(paths)
    return lambda p: size if p in paths_set else None


def streams(*layers: bytes) -> list[tuple[str, io.BytesIO]]:
    return [(f"layer{i}", io.BytesIO(data)) for i, data in enumerate(layers)]


def test_reads_only_wanted_files_and_records_layer():
    l0 = layer_bytes(lambda w: (w.file("etc/a", b"A"), w.file("etc/b", b"B")))
    l1 = layer_bytes(lambda w: w.file("etc/a", b"A2"))
    res = walk_layers(streams(l0, l1), wanted("etc/a"))
    assert set(res.files) == {"etc/a"}
    assert res.files["etc/a"].data == b"A2"
    assert res.files["etc/a"].layer == "layer1"
    assert res.layers == ("layer0", "layer1")


@pytest.mark.parametrize("compress", [lambda b: b, lambda b: gzip.compress(b),
                                      lambda b: zstandard.ZstdCompressor().compress(b)],
                         ids=["tar", "gzip", "zstd"])
def test_compression_is_sniffed(compress):
    raw = layer_bytes(lambda w: w.file("./var/lib/dpkg/status", b"Package: x\n"))
    res = walk_layers(streams(compress(raw)), wanted("var/lib/dpkg/status"))
    assert res.data() == {"var/lib/dpkg/status": b"Package: x\n"}


def test_zstd_multi_frame_layer():
    raw = layer_bytes(lambda w: [w.file(f"d/f{i}", bytes([i]) * 1000) for i in range(50)])
    half = len(raw) // 2
    blob = zstandard.ZstdCompressor().compress(raw[:half]) + zstandard.ZstdCompressor().compress(raw[half:])
    res = walk_layers(streams(blob), wanted("d/f49"))
    assert res.files["d/f49"].data == bytes([49]) * 1000


def test_whiteout_removes_lower_file_and_directory():
    l0 = layer_bytes(lambda w: (w.file("usr/bin/tool", b"x"), w.file("site/pkg-1.dist-info/METADATA", b"m"),
                                w.file("site/keep-1.dist-info/METADATA", b"k")))
    l1 = layer_bytes(lambda w: (w.whiteout("usr/bin/tool"), w.whiteout("site/pkg-1.dist-info")))
    want = wanted("usr/bin/tool", "site/pkg-1.dist-info/METADATA", "site/keep-1.dist-info/METADATA")
    assert set(walk_layers(streams(l0), want).files) == {
        "usr/bin/tool", "site/pkg-1.dist-info/METADATA", "site/keep-1.dist-info/METADATA"}
    assert set(walk_layers(streams(l0, l1), want).files) == {"site/keep-1.dist-info/METADATA"}


def test_whiteout_does_not_hide_same_layer_or_higher_files():
    l0 = layer_bytes(lambda w: w.file("a/f", b"old"))
    # the whiteout and the new file in one layer: the new file survives (whiteouts hit lower layers)
    l1 = layer_bytes(lambda w: (w.file("a/f", b"new"), w.whiteout("a/f")))
    res = walk_layers(streams(l0, l1), wanted("a/f"))
    assert res.files["a/f"].data == b"new"
    l2 = layer_bytes(lambda w: w.file("a/f", b"again"))
    res = walk_layers(streams(l0, layer_bytes(lambda w: w.whiteout("a/f")), l2), wanted("a/f"))
    assert res.files["a/f"].data == b"again"


def test_opaque_dir_hides_lower_content_keeps_own():
    l0 = layer_bytes(lambda w: (w.file("app/m/package.json", b"old"), w.file("app/m/lib/x.json", b"x"),
                                w.file("app/other/package.json", b"o")))
    l1 = layer_bytes(lambda w: (w.opaque("app/m"), w.file("app/m/package.json", b"new")))
    want = wanted("app/m/package.json", "app/m/lib/x.json", "app/other/package.json")
    res = walk_layers(streams(l0, l1), want)
    assert res.data() == {"app/m/package.json": b"new", "app/other/package.json": b"o"}


def test_usr_merge_symlink_dirs_are_followed():
    l0 = layer_bytes(lambda w: (w.symlink("lib", "usr/lib"), w.file("usr/lib/apk/db/installed", b"P:x\n")))
    res = walk_layers(streams(l0), wanted("lib/apk/db/installed"))
    assert res.files["lib/apk/db/installed"].data == b"P:x\n"


def test_file_written_through_symlinked_dir_lands_at_real_path():
    l0 = layer_bytes(lambda w: (w.dir("usr/lib"), w.symlink("lib", "usr/lib")))
    l1 = layer_bytes(lambda w: w.file("lib/os-release", b"ID=alpine\n", parents=False))
    res = walk_layers(streams(l0, l1), wanted("usr/lib/os-release"))
    assert res.files["usr/lib/os-release"].data == b"ID=alpine\n"


def test_file_symlink_alias():
    l0 = layer_bytes(lambda w: (w.symlink("etc/os-release", "../usr/lib/os-release"),
                                w.file("usr/lib/os-release", b"ID=debian\n")))
    res = walk_layers(streams(l0), wanted("etc/os-release"))
    assert res.files["etc/os-release"].data == b"ID=debian\n"


def test_no_duplicate_alias_when_real_path_is_wanted():
    meta = "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA"
    l0 = layer_bytes(lambda w: (w.symlink("lib", "usr/lib"), w.file(meta, b"Name: six\nVersion: 1.16.0\n")))
    res = walk_layers(streams(l0), lambda p: 100 if p.endswith(".dist-info/METADATA") else None)
    assert set(res.files) == {meta}


def test_symlink_loop_is_an_error_naming_layer_and_path():
    l0 = layer_bytes(lambda w: (w.symlink("a", "b"), w.symlink("b", "a")))
    l1 = layer_bytes(lambda w: w.file("a/file", b"x", parents=False))
    with pytest.raises(LayerError) as e:
        walk_layers(streams(l0, l1), wanted("a/file"))
    assert e.value.code == "SymlinkLoop"
    assert "layer1" in str(e.value) and "a/file" in str(e.value)


def test_unused_symlink_loop_is_harmless():
    l0 = layer_bytes(lambda w: (w.symlink("a", "b"), w.symlink("b", "a"), w.file("c/f", b"ok")))
    assert walk_layers(streams(l0), wanted("c/f")).files["c/f"].data == b"ok"


def test_dotdot_escape_is_refused():
    l0 = layer_bytes(lambda w: w.file("../../etc/passwd", b"x", parents=False))
    with pytest.raises(LayerError) as e:
        walk_layers(streams(l0), wanted("etc/passwd"))
    assert e.value.code == "LayerHostile" and "../../etc/passwd" in str(e.value) and "layer0" in str(e.value)


def test_absolute_and_dotted_names_are_normalised():
    l0 = layer_bytes(lambda w: (w.file("/etc/x", b"1", parents=False), w.file("./a/./b/../c", b"2", parents=False)))
    res = walk_layers(streams(l0), wanted("etc/x", "a/c"))
    assert res.data() == {"etc/x": b"1", "a/c": b"2"}
    assert any("absolute" in w for w in res.warnings)


def test_symlink_target_cannot_escape_root():
    assert resolve_path("x/y", {"x": "../../../../usr"}) == "usr/y"
    assert resolve_path("x/y", {"x": "/opt"}) == "opt/y"
    assert member_path("./a//b/") == "a/b"


def test_oversize_file_skipped_with_warning_or_error():
    l0 = layer_bytes(lambda w: w.file("big", b"x" * 2000))
    res = walk_layers(streams(l0), wanted("big", size=1000), limits=LayerLimits(oversize_is_error=False))
    assert "big" not in res.files
    assert any("'big'" in w and "2000" in w for w in res.warnings)
    with pytest.raises(LayerError, match="over the 1000-byte limit") as e:    # the default: never judged silently
        walk_layers(streams(l0), wanted("big", size=1000))
    assert e.value.code == "FileTooLarge" and e.value.path == "big"


def test_decompression_bomb_is_refused():
    l0 = layer_bytes(lambda w: w.file("zeros", b"\0" * (8 * 1024 * 1024)))
    blob = gzip.compress(l0, compresslevel=9)
    assert len(l0) / len(blob) > 500
    limits = LayerLimits(max_ratio=100, ratio_min_bytes=1024 * 1024)
    with pytest.raises(LayerError) as e:
        walk_layers(streams(blob), wanted(), limits=limits)
    assert e.value.code == "LayerBomb" and "layer0" in str(e.value)
    # the same layer is fine under a generous ratio
    walk_layers(streams(blob), wanted(), limits=LayerLimits(max_ratio=10_000, ratio_min_bytes=1024 * 1024))


def test_total_size_limit():
    l0 = layer_bytes(lambda w: w.file("f", b"x" * 100_000))
    with pytest.raises(LayerError) as e:
        walk_layers(streams(l0, l0), wanted(), limits=LayerLimits(max_total_bytes=150_000))
    assert e.value.code == "LayerTooLarge" and "layer1" in str(e.value)


def test_damaged_layer_names_layer():
    full = gzip.compress(layer_bytes(lambda w: w.file("f", bytes(range(256)) * 400)))
    blob = full[: len(full) // 2]
    with pytest.raises(LayerError) as e:
        walk_layers(streams(blob), wanted("f"))
    assert "layer0" in str(e.value)
    with pytest.raises(LayerError, match="layer0"):
        walk_layers(streams(b"this is not a tar archive at all" * 40), wanted("f"))


def test_empty_blob_is_empty_layer():
    res = walk_layers(streams(b"", layer_bytes(lambda w: w.file("f", b"1"))), wanted("f"))
    assert res.data() == {"f": b"1"}


def test_hardlink_to_kept_file():
    l0 = layer_bytes(lambda w: (w.file("a/x", b"data"), w.hardlink("b/x", "a/x")))
    res = walk_layers(streams(l0), wanted("a/x", "b/x"))
    assert res.files["b/x"].data == b"data"
    res = walk_layers(streams(l0), wanted("b/x"))
    assert "b/x" not in res.files and any("hard link" in w for w in res.warnings)


def test_executable_reader_sees_only_exec_files_and_whiteouts_apply():
    seen = []

    def reader(path, stream, size):
        seen.append(path)
        data = stream.read(size)
        return data if data.startswith(b"\x7fELF") else None

    l0 = layer_bytes(lambda w: (w.file("bin/tool", b"\x7fELF...", mode=0o755), w.file("bin/script", b"#!/bin/sh", mode=0o755),
                                w.file("lib/data", b"\x7fELF", mode=0o644), w.file("bin/gone", b"\x7fELF", mode=0o755)))
    l1 = layer_bytes(lambda w: w.whiteout("bin/gone"))
    res = walk_layers(streams(l0, l1), wanted(), executable_reader=reader)
    assert sorted(seen) == ["bin/gone", "bin/script", "bin/tool"]
    assert set(res.executables) == {"bin/tool"}
