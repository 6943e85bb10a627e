"""Fixtures for the OSV database tests: the shared real exports, a built index."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

OSV_DATA = Path("/work/shared/data/osv")


def osv_zip(ecosystem: str) -> Path:
    path = OSV_DATA / ecosystem / "all.zip"
    if not path.exists():
        pytest.skip(f"shared OSV export {path} not present")
    return path


def zip_records(ecosystem: str):
    """Every record of a shared export, parsed."""
    with zipfile.ZipFile(osv_zip(ecosystem)) as z:
        for name in z.namelist():
            yield json.loads(z.read(name))


@pytest.fixture(scope="session")
def real_index(tmp_path_factory):
    """An index with the three shared exports imported (built once per session)."""
    from vulnwatch.vulndb.index import VulnIndex
    from vulnwatch.vulndb.sync import import_path

    db = VulnIndex(tmp_path_factory.mktemp("osv") / "osv.db")
    for eco in ("PyPI", "Debian", "Alpine"):
        import_path(db, osv_zip(eco))
    yield db
    db.close()
