"""Image -> findings, one module per scanner.  [add a scanner here]

:data:`SCANNERS` maps each scanner name to its class; a registry names the scanner for its images
(:attr:`vulnwatch.registries.interface.Registry.default_scanner`); every class builds itself with
``from_config``. Adding a scanner: a module here and its entry below.
"""

from __future__ import annotations

from ..lazy import LazyMap
from .interface import ScanError, Scanner, ScanResources

SCANNERS: dict[str, type[Scanner]] = LazyMap(__name__, {
    "ecr": ".ecr:ECRScanner",
    "builtin": ".builtin:BuiltinScanner",
})
"""Scanner name -> class, each module imported when first looked up (ECR's findings load no
walker or catalogers: :mod:`vulnwatch.lazy`)."""

__all__ = ["SCANNERS", "ScanError", "ScanResources", "Scanner"]
