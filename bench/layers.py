"""Time the layer walker + catalogers on an OCI layout directory.

    python bench/layers.py OCI_DIR [REPEAT]

Prints seconds per run, compressed/uncompressed bytes and packages found.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.images import load_layout  # noqa: E402
from vulnwatch.catalogers.plan import catalog_image  # noqa: E402


def main() -> None:
    layout = load_layout(Path(sys.argv[1]))
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    compressed = sum(p.stat().st_size for p in layout.layer_paths)
    for _ in range(repeat):
        start = time.perf_counter()
        with layout.open_layers() as layers:
            inv = catalog_image(layers)
        took = time.perf_counter() - start
        print(f"{took:.2f}s  {compressed / took / 1e6:.0f} MB/s compressed  "
              f"{len(inv.packages)} packages  {len(inv.layers)} layers  distro={inv.ecosystem}")


if __name__ == "__main__":
    main()
