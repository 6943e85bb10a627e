"""Maps of an extension point whose implementations are imported when first looked up.

A ``vulnwatch run`` of one ECR registry needs the ECR registry and scanner and nothing of the
OCI client (httpx, httpcore), the notifiers, the built-in scanner (walker, catalogers) or the
other stores; importing them all cost a short cycle as much as the cycle itself. Each package's
map (``REGISTRIES``, ``SCANNERS``, ``NOTIFIERS``, ``STORES``, ``LOADERS``, ``CATALOGERS``) is a
:class:`LazyMap`: a plain ``dict`` to every reader, whose values are imported on first lookup.

A package whose ``__init__`` gathers the names of its modules (``vulnwatch.walker``,
``vulnwatch.catalogers``) gives them with :func:`exports`: ``from vulnwatch.walker import
LayerLimits`` imports ``walker.limits`` alone, not the whole walker (an ECR run needs only the
limits' defaults).

Imports nothing of ours.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = ["LazyMap", "exports"]


class _Where:
    """Where a value lives: ``module:attribute``, the module relative to a package."""

    __slots__ = ("package", "module", "attribute")

    def __init__(self, package: str, spec: str) -> None:
        self.package = package
        self.module, _, self.attribute = spec.partition(":")
        if not self.module or not self.attribute:
            raise ValueError(f"{spec!r}: expected 'module:attribute'")

    def load(self) -> Any:
        # __import__, not importlib.import_module: the import statement's path, which
        # `python -X importtime` reports (import_module bypasses it)
        name = importlib.util.resolve_name(self.module, self.package)
        __import__(name)
        return getattr(sys.modules[name], self.attribute)

    def __repr__(self) -> str:
        return f"<{self.module}:{self.attribute}, not imported yet>"


class LazyMap(dict):
    """``name -> object``, each value named as ``"module:attribute"`` (``".oci:OCIRegistry"``,
    relative to ``package``) and imported on its first lookup, then kept.

    Every way of reading it (``m[k]``, ``get``, ``values``, ``items``, ``dict(m)``, ``{**m}``)
    gives the imported objects; iterating, ``in`` and ``len`` import nothing."""

    def __init__(self, package: str, where: Mapping[str, str]) -> None:
        super().__init__((name, _Where(package, spec)) for name, spec in where.items())

    def __getitem__(self, key: str) -> Any:
        value = dict.__getitem__(self, key)
        if type(value) is _Where:      # two threads may both import it: the same object either way
            value = value.load()
            dict.__setitem__(self, key, value)
        return value

    def __iter__(self) -> Iterator[str]:
        # Defined so that dict(m) and {**m} read through __getitem__ (CPython copies a dict
        # subclass's raw values when it keeps dict's own __iter__).
        return iter(self.keys())

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    def values(self) -> list[Any]:  # type: ignore[override]
        return [self[k] for k in self.keys()]

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return [(k, self[k]) for k in self.keys()]

    def copy(self) -> dict[str, Any]:
        return dict(self.items())

    def __repr__(self) -> str:
        return f"LazyMap({dict.__repr__(self)})"


def exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) for ``package``: each name of ``where`` (``"LayerCache":
    ".cache:LayerCache"``) is imported on first access, then kept in the package's namespace.
    Assign it to ``__getattr__`` in the package's ``__init__``."""
    spots = {name: _Where(package, spec) for name, spec in where.items()}

    def __getattr__(name: str) -> Any:
        spot = spots.get(name)
        if spot is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = spot.load()
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
