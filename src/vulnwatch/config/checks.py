"""Checks that need the file system, made by ``vulnwatch check-config`` (and available to any
caller): every path the configuration names must exist, so that a typo shows up before the
first run rather than as a failed registry in it."""

from __future__ import annotations

from .problems import ConfigProblem
from .registries import ArchiveRegistryConfig
from .root import Config

__all__ = ["check_config"]


def check_config(cfg: Config) -> list[ConfigProblem]:
    """Problems with the paths ``cfg`` names: archives (``registries[].path``), local watch lists,
    ``vulndb.imports``, email ``ca_file``, ``ignore.files`` and ``ignore.vex``. Each names the file, the line of its key and the
    path; none are raised."""
    problems: list[ConfigProblem] = []
    for i, reg in enumerate(cfg.registries):
        if isinstance(reg, ArchiveRegistryConfig) and not reg.path.exists():
            problems.append(cfg.problem(("registries", i, "path"), f"no such file or folder: {reg.path} (a "
                                        "`docker save` tarball or an OCI layout directory)"))
        wl = reg.watch_list
        if wl and not wl.startswith("s3://"):
            from pathlib import Path

            if not Path(wl).is_file():
                problems.append(cfg.problem(("registries", i, "watch_list"), f"no such file: {wl} (a JSON array "
                                            "of repository names)"))
    for j, path in enumerate(cfg.vulndb.imports):
        if not path.exists():
            problems.append(cfg.problem(("vulndb", "imports", j), f"no such file or folder: {path} (an OSV "
                                        "all.zip or a folder of OSV *.json)"))
    for k, sink in enumerate(cfg.notifications):
        ca = getattr(sink, "ca_file", None)
        if ca is not None and not ca.is_file():
            problems.append(cfg.problem(("notifications", k, "ca_file"), f"no such file: {ca} (a PEM bundle)"))
    for key, what in (("files", "an ignore file: rules YAML or .trivyignore"), ("vex", "an OpenVEX or CycloneDX VEX "
                                                                                     "document")):
        for n, path in enumerate(getattr(cfg.ignore, key)):
            if not path.is_file():
                problems.append(cfg.problem(("ignore", key, n), f"no such file: {path} ({what})"))
    return problems
