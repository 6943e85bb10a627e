"""Session fixtures: real images built once (see tests/support/images.py) and syft's view of them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.images import ImageLayout, build_app_image, build_debian_image, default_cache_dir


@pytest.fixture(scope="session")
def image_cache(tmp_path_factory) -> Path:
    return default_cache_dir(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def app_image(image_cache) -> ImageLayout:
    """bookworm + Python layer + npm layer + whiteout layer."""
    return build_app_image(image_cache, "bookworm", cache_dir=image_cache)


@pytest.fixture(scope="session")
def bullseye_image(image_cache) -> ImageLayout:
    return build_debian_image(image_cache, "bullseye", cache_dir=image_cache)


def run_syft(layout: ImageLayout) -> dict:
    """syft's JSON inventory of an OCI layout (cached next to the layout)."""
    out = layout.path.parent / "syft.json"
    if not out.exists():
        tmp = out.with_suffix(".tmp")
        subprocess.run(["syft", f"oci-dir:{layout.path}", "-q", "-o", f"json={tmp}"], check=True,
                       capture_output=True, timeout=600,
                       env={**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"})
        tmp.rename(out)
    return json.loads(out.read_text())


@pytest.fixture(scope="session")
def syft_of():
    return run_syft
