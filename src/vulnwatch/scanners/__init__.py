"""Image -> findings, one module per scanner.  [add a scanner here]

:data:`SCANNERS` maps each scanner name to its class; a registry names the scanner for its images
(:attr:`vulnwatch.registries.interface.Registry.default_scanner`); every class builds itself with
``from_config``. Adding a scanner: a module here and its entry below.
"""

from __future__ import annotations

from .builtin import BuiltinScanner
from .ecr import ECRScanner
from .interface import ScanError, Scanner, ScanResources

SCANNERS: dict[str, type[Scanner]] = {
    "ecr": ECRScanner,
    "builtin": BuiltinScanner,
}
"""Scanner name -> class."""

__all__ = ["SCANNERS", "ScanError", "ScanResources", "Scanner"]
