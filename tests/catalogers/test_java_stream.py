"""Java archives reduced as they stream past: same packages as reading the archive whole,
memory independent of the archive's size."""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from tests.support.images import layer_bytes
from vulnwatch.catalogers.interface import CatalogContext
from vulnwatch.catalogers.java import WHOLE_LIMIT, JavaArchiveCataloger, reduce_bytes, reduce_stream
from vulnwatch.catalogers.plan import catalog_image

CAT = JavaArchiveCataloger()


def packages(files: dict[str, bytes]) -> list[tuple[str, str]]:
    res = CAT.catalog(files, CatalogContext(distro=None, layer_of={}))
    return sorted((p.name, p.version) for p in res.packages)


def pom(group: str, artifact: str, version: str) -> tuple[str, bytes]:
    return (f"META-INF/maven/{group}/{artifact}/pom.properties",
            f"groupId={group}\nartifactId={artifact}\nversion={version}\n".encode())


class NonSeekable(io.RawIOBase):
    """A write target zipfile cannot seek in: it then writes data descriptors, as streaming
    writers (and the JDK's ZipOutputStream) do."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.buf += b
        return len(b)

    def seekable(self) -> bool:
        return False


def make_jar(entries: list[tuple[str, bytes]], *, stream: bool = False, compression=zipfile.ZIP_DEFLATED,
             zip64: bool = False) -> bytes:
    target = NonSeekable() if stream else io.BytesIO()
    with zipfile.ZipFile(target, "w", compression) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = compression
            with zf.open(info, "w", force_zip64=zip64) as out:
                out.write(data)
    return bytes(target.buf) if stream else target.getvalue()


def same_as_whole(path: str, data: bytes) -> list[tuple[str, str]]:
    whole = packages({path: data})
    assert packages({path: reduce_bytes(data)}) == whole
    assert packages({path: reduce_stream(io.BytesIO(data), len(data))}) == whole
    return whole


@pytest.mark.parametrize("stream", [False, True], ids=["sizes-in-headers", "data-descriptors"])
@pytest.mark.parametrize("zip64", [False, True], ids=["zip32", "zip64"])
def test_fat_jar_with_nested_archives(stream, zip64):
    lib_a = make_jar([pom("org.yaml", "snakeyaml", "1.33"), ("org/yaml/A.class", os.urandom(3000))],
                     stream=stream)
    lib_b = make_jar([("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\nImplementation-Version: 2.1\n"),
                      ("x/B.class", b"\xca\xfe" * 500)], stream=stream)
    war = make_jar([pom("com.example", "inner-war", "0.1"),
                    ("WEB-INF/lib/commons-text-1.9.jar", make_jar([pom("org.apache.commons", "commons-text", "1.9")]))],
                   stream=stream)
    app = make_jar([("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\nStart-Class: x.App\n"),
                    pom("com.example", "app", "1.0.0"),
                    ("BOOT-INF/lib/snakeyaml-1.33.jar", lib_a),
                    ("BOOT-INF/lib/guava-2.1.jar", lib_b),
                    ("BOOT-INF/lib/inner.war", war),
                    ("BOOT-INF/classes/big.bin", os.urandom(200_000))], stream=stream, zip64=zip64)
    found = same_as_whole("app/app.jar", app)
    assert ("com.example:app", "1.0.0") in found and ("org.yaml:snakeyaml", "1.33") in found
    assert ("org.apache.commons:commons-text", "1.9") in found        # two levels down
    assert ("guava:guava", "2.1") in found                            # manifest + file name


def test_stored_nested_jars_as_spring_boot_writes_them():
    inner = make_jar([pom("io.netty", "netty-codec", "4.1.60.Final")])
    outer = make_jar([pom("com.example", "svc", "3"), ("BOOT-INF/lib/netty-codec-4.1.60.Final.jar", inner)],
                     compression=zipfile.ZIP_STORED)
    assert ("io.netty:netty-codec", "4.1.60.Final") in same_as_whole("svc.jar", outer)


@pytest.mark.skipif(shutil.which("jar") is None, reason="the JDK's jar tool is not installed")
def test_jars_written_by_the_jdk_jar_tool(tmp_path):
    (tmp_path / "META-INF/maven/org.example/tool").mkdir(parents=True)
    (tmp_path / "META-INF/maven/org.example/tool/pom.properties").write_text(
        "groupId=org.example\nartifactId=tool\nversion=9.9\n")
    (tmp_path / "data.bin").write_bytes(os.urandom(100_000))
    out = tmp_path / "tool.jar"
    subprocess.run(["jar", "cf", str(out), "-C", str(tmp_path), "META-INF", "-C", str(tmp_path), "data.bin"],
                   check=True)
    data = out.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert any(i.flag_bits & 0x08 for i in zf.infolist())        # the JDK writes data descriptors
    assert same_as_whole("opt/tool.jar", data) == [("org.example:tool", "9.9")]


def test_real_jars_on_this_machine_give_the_same_packages():
    jars = sorted(Path("/usr/share/maven/lib").glob("*.jar")) + sorted(Path("/usr/share/java").glob("*.jar"))
    jars = [j for j in jars if j.is_file() and not j.is_symlink()][:40]
    if not jars:
        pytest.skip("no system jars here (maven/JDK not installed)")
    for jar in jars:
        same_as_whole(f"usr/share/java/{jar.name}", jar.read_bytes())


def test_a_large_archive_streams_through_the_walker_in_small_memory():
    rnd = random.Random(7)
    big = bytes(rnd.getrandbits(8) for _ in range(1 << 16)) * ((WHOLE_LIMIT + (8 << 20)) >> 16)
    inner = make_jar([pom("org.slf4j", "slf4j-api", "1.7.30")])
    jar = make_jar([("BOOT-INF/classes/blob.bin", big), pom("com.example", "big", "5"),
                    ("BOOT-INF/lib/slf4j-api-1.7.30.jar", inner)], stream=True)
    assert len(jar) > WHOLE_LIMIT
    layer = layer_bytes(lambda w: w.file("app/big.jar", jar))
    del big
    tracemalloc.start()
    try:
        inv = catalog_image([("sha256:" + "1" * 64, io.BytesIO(layer))], [JavaArchiveCataloger()])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    found = sorted((p.name, p.version) for p in inv.packages)
    assert found == [("com.example:big", "5"), ("org.slf4j:slf4j-api", "1.7.30")]
    assert peak < 4 << 20, f"reading a {len(jar) >> 20} MB archive peaked at {peak >> 20} MB"


def test_unreadable_archive_is_a_warning_naming_it():
    layer = layer_bytes(lambda w: w.file("opt/broken.jar", b"PK\x03\x04" + b"\0" * 40))
    inv = catalog_image([("sha256:" + "2" * 64, io.BytesIO(layer))], [JavaArchiveCataloger()])
    assert inv.packages == ()
    assert any("opt/broken.jar" in w and "not a readable zip" in w for w in inv.warnings)
