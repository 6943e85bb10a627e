"""Benchmark: peak memory of ``vulnwatch scan`` on an image of about 1 GB (target: <= 150 MB RSS).

Builds (once, cached) two OCI layouts with :func:`tests.support.images.write_oci_layout`:

``data``  the real Debian bookworm rootfs (~130 MB), a layer of large incompressible
          files (4 x 128 MB of random bytes) and a layer of many small files (40,000
          text files of 1-8 KB, plus 3,000 npm ``package.json`` and 500 Python
          ``METADATA`` files that the catalogers keep): ~1 GB uncompressed.
``exec``  the same plus one layer holding a 96 MB executable (ELF magic, exec bit, random
          body: a big statically linked binary, as Go and Rust images carry).

Each image is scanned in a new process, ``vulnwatch scan --sbom --format json oci:DIR``
and, after a ``skopeo`` push to a real ``docker-registry``, ``HOST/REPO:TAG --insecure``;
the peak RSS of exactly that child comes from ``os.wait4``.

    python bench/scan_memory.py [--cache DIR] [--no-registry]

Building the layouts the first time takes about a minute (more if the bookworm rootfs
is not cached yet); a scan takes a few seconds each.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.images import (  # noqa: E402
    BUILDER_VERSION, LayerWriter, bench_cache_dir, cached, debian_rootfs, load_layout, write_oci_layout)
from tests.support.registry import start_registry  # noqa: E402

BENCH_VERSION = "1"
"""Bump when the generated layers change."""
TARGET_MB = 150
MB = 1024 * 1024
BIG_FILES = 4
BIG_FILE_SIZE = 128 * MB
SMALL_FILES = 40_000
NPM_PACKAGES = 3_000
PYTHON_DISTS = 500
EXECUTABLE_SIZE = 96 * MB
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu container layer image registry "
         "vulnerability package version manifest digest").split()


# ---------------------------------------------------------------- the image

def big_files_layer(out: Path) -> Path:
    rnd = random.Random(1)
    with open(out, "wb") as f:
        w = LayerWriter(f)
        for i in range(BIG_FILES):
            w.file(f"opt/data/blob-{i}.bin", rnd.randbytes(BIG_FILE_SIZE))
        w.close()
    return out


def small_files_layer(out: Path) -> Path:
    rnd = random.Random(2)
    with open(out, "wb") as f:
        w = LayerWriter(f)
        for i in range(SMALL_FILES):
            size = rnd.randint(1024, 8192)
            words = []
            length = 0
            while length < size:
                word = rnd.choice(WORDS)
                words.append(word)
                length += len(word) + 1
            w.file(f"srv/www/d{i // 500:03d}/page-{i:05d}.txt", " ".join(words).encode()[:size])
        for i in range(NPM_PACKAGES):
            name = f"bench-pkg-{i:04d}"
            doc = {"name": name, "version": f"1.{i % 50}.{i % 7}", "description": " ".join(rnd.choices(WORDS, k=40)),
                   "license": "MIT", "main": "index.js", "dependencies": {f"bench-pkg-{(i + 1) % NPM_PACKAGES:04d}": "^1.0.0"}}
            w.file(f"srv/app/node_modules/{name}/package.json", json.dumps(doc, indent=2).encode())
            w.file(f"srv/app/node_modules/{name}/index.js", b"module.exports = {};\n" * rnd.randint(10, 200))
        site = "usr/local/lib/python3.11/site-packages"
        for i in range(PYTHON_DISTS):
            name = f"bench_dist_{i:03d}"
            meta = (f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.{i}.0\nSummary: bench\n\n"
                    + " ".join(rnd.choices(WORDS, k=300)) + "\n")
            w.file(f"{site}/{name}-0.{i}.0.dist-info/METADATA", meta.encode())
            w.file(f"{site}/{name}/__init__.py", b"# bench\n" * rnd.randint(10, 400))
        w.close()
    return out


def executable_layer(out: Path) -> Path:
    rnd = random.Random(3)
    body = bytearray(rnd.randbytes(EXECUTABLE_SIZE))
    body[:4] = b"\x7fELF"
    with open(out, "wb") as f:
        w = LayerWriter(f)
        w.file("usr/local/bin/bench-server", bytes(body), mode=0o755)
        w.close()
    return out


def build_images(cache: Path) -> dict[str, Path]:
    """``{"data": layout dir, "exec": layout dir}``, built once under ``cache``."""
    rootfs = cached(cache, f"rootfs-bookworm-v{BUILDER_VERSION}",
                    lambda d: debian_rootfs(d / "rootfs.tar", "bookworm")) / "rootfs.tar"
    big = cached(cache, f"bench-big-v{BENCH_VERSION}", lambda d: big_files_layer(d / "layer.tar")) / "layer.tar"
    small = cached(cache, f"bench-small-v{BENCH_VERSION}", lambda d: small_files_layer(d / "layer.tar")) / "layer.tar"
    exe = cached(cache, f"bench-exec-v{BENCH_VERSION}", lambda d: executable_layer(d / "layer.tar")) / "layer.tar"
    data = cached(cache, f"bench-1gb-data-v{BENCH_VERSION}",
                  lambda d: write_oci_layout(d / "oci", [rootfs, big, small]) and None) / "oci"
    with_exec = cached(cache, f"bench-1gb-exec-v{BENCH_VERSION}",
                       lambda d: write_oci_layout(d / "oci", [rootfs, big, small, exe]) and None) / "oci"
    return {"data": data, "exec": with_exec}


# ---------------------------------------------------------------- measuring

def vulnwatch_command() -> list[str]:
    script = Path(sys.executable).parent / "vulnwatch"
    return [sys.executable, str(script)] if script.exists() else ["vulnwatch"]


MEASURE = r"""
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""Runs a command and writes its peak RSS (KiB). A small launcher, because Linux carries a
parent's RSS high-water mark into a forked child's ``ru_maxrss`` across exec: measured
straight from this (large, image-building) process every child would report our peak."""


def peak_rss(cmd: list[str], env: dict, stdout, stderr) -> tuple[int, float, float]:
    """(exit code, seconds, peak RSS in MB) of ``cmd`` in a new process."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.perf_counter()
        code = subprocess.call([sys.executable, "-c", MEASURE, rss.name, *cmd], env=env, stdout=stdout,
                               stderr=stderr)
        took = time.perf_counter() - start
        value = rss.read().strip()
    return code, took, int(value or 0) / 1024


def scan_peak(args: list[str], env: dict) -> tuple[float, float, int, str]:
    """Run ``vulnwatch scan --sbom --format json ARGS``: (seconds, peak RSS in MB, packages, stderr)."""
    cmd = vulnwatch_command() + ["scan", "--sbom", "--format", "json", "--no-layer-cache", *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        code, took, rss = peak_rss(cmd, env, out, err)
        out.seek(0)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        if code != 0:
            raise SystemExit(f"scan failed ({code}): {' '.join(cmd)}\n{stderr[-3000:]}")
        packages = len(json.loads(out.read()).get("packages") or [])
    return took, rss, packages, stderr


def layout_sizes(path: Path) -> tuple[int, int]:
    """(compressed, uncompressed) bytes of a layout's layers."""
    layout = load_layout(path)
    compressed = sum(p.stat().st_size for p in layout.layer_paths)
    manifest = layout.manifest
    config = json.loads(layout.blob(manifest["config"]["digest"]))
    assert len(config["rootfs"]["diff_ids"]) == len(layout.layer_paths)
    uncompressed = 0
    import zlib
    for p in layout.layer_paths:
        d = zlib.decompressobj(31)
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                uncompressed += len(d.decompress(chunk))
    return compressed, uncompressed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=bench_cache_dir())
    ap.add_argument("--no-registry", action="store_true", help="only scan the OCI layouts")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    images = build_images(args.cache)
    print(f"images ready in {time.perf_counter() - start:.0f} s (cache {args.cache})")
    work = Path(tempfile.mkdtemp(prefix="vulnwatch-bench-mem-"))
    config = work / "vulnwatch.yaml"
    config.write_text(f"vulndb:\n  path: {work / 'osv.db'}\n")
    env = {**os.environ, "VULNWATCH_CONFIG": str(config), "HOME": str(work)}
    registry = None
    rows = []
    try:
        for name, path in images.items():
            compressed, uncompressed = layout_sizes(path)
            took, rss, packages, _ = scan_peak([f"oci:{path}"], env)
            rows.append((name, "oci:DIR", compressed, uncompressed, took, rss, packages))
        if not args.no_registry:
            registry = start_registry(work / "registry")
            for name, path in images.items():
                layout = load_layout(path)
                registry.push(f"oci:{path}:{layout.tag}", f"bench-{name}", "v1")
                compressed, uncompressed = next((r[2], r[3]) for r in rows if r[0] == name)
                took, rss, packages, _ = scan_peak([f"{registry.host}/bench-{name}:v1", "--insecure"], env)
                rows.append((name, "registry", compressed, uncompressed, took, rss, packages))
    finally:
        if registry is not None:
            registry.stop()
        shutil.rmtree(work, ignore_errors=True)

    idle = idle_rss(env)
    print(f"baseline: `vulnwatch --version` peaks at {idle:.0f} MB RSS (interpreter + imports)")
    print(f"{'image':<6} {'source':<9} {'compressed':>11} {'uncompressed':>13} {'time':>7} {'peak RSS':>9} "
          f"{'packages':>8}  target <= {TARGET_MB} MB")
    for name, source, compressed, uncompressed, took, rss, packages in rows:
        verdict = "PASS" if rss <= TARGET_MB else "MISS"
        print(f"{name:<6} {source:<9} {compressed / 1e6:9.0f}MB {uncompressed / 1e6:11.0f}MB {took:6.1f}s "
              f"{rss:7.0f}MB {packages:8d}  {verdict}")


def idle_rss(env: dict) -> float:
    _, _, rss = peak_rss(vulnwatch_command() + ["--version"], env, subprocess.DEVNULL, subprocess.DEVNULL)
    return rss


if __name__ == "__main__":
    main()
