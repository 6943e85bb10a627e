"""State that outlives a run.  [add a store here]

:data:`STORES` maps the scheme of ``state.url`` (``sqlite``, ``postgresql``) to the store class;
:func:`open_store` picks one. Adding a store: a module here implementing
:class:`~vulnwatch.store.interface.Store` with ``from_url``, and its scheme below.
"""

from __future__ import annotations

from ..lazy import LazyMap
from .interface import Store, StoreError

STORES: dict[str, type[Store]] = LazyMap(__name__, {
    "sqlite": ".sql:SQLStore",
    "postgresql": ".sql:SQLStore",
    "dynamodb": ".dynamodb:DynamoDBStore",   # dynamodb://TABLE?region=...&bucket=... (see store/dynamodb.py)
})
"""URL scheme (the part before ``://``, without a ``+driver``) -> store class, each module
imported when its scheme is first opened (SQLAlchemy only for an SQL store: :mod:`vulnwatch.lazy`)."""


def scheme_of(url: str) -> str:
    """``postgresql+psycopg://...`` -> ``postgresql``; ``sqlite:///x.db`` -> ``sqlite``."""
    return url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""


def open_store(url: str) -> Store:
    """The store for ``url`` (a secret: it may carry a password; never echoed in errors)."""
    cls = STORES.get(scheme_of(url))
    if cls is None:
        raise StoreError(f"state store URL scheme {scheme_of(url) or '(none)'!r} is not supported; use one of "
                         f"{', '.join(f'{s}://' for s in STORES)}")
    return cls.from_url(url)


__all__ = ["STORES", "Store", "StoreError", "open_store", "scheme_of"]
