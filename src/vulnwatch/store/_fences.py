"""The per-thread stack of leases a store's writes are fenced by, shared by the stores that keep
leases (:meth:`vulnwatch.store.interface.Store.fenced`): each store checks the stack inside its
own write transactions, in its own way (SQL: a row check; DynamoDB: ConditionChecks)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .interface import Lease

__all__ = ["FenceStack"]


class FenceStack:
    """Mixin for a :class:`~vulnwatch.store.interface.Store`: ``fenced(*leases)`` pushes leases for
    the calling thread; ``_fence_stack()`` is what its writes must check."""

    _fences: threading.local

    def _fence_stack(self) -> list[Lease]:
        fences = self.__dict__.get("_fences")
        if fences is None:
            fences = self._fences = threading.local()
        stack = getattr(fences, "stack", None)
        if stack is None:
            stack = fences.stack = []
        return stack

    @contextmanager
    def fenced(self, *leases: Lease) -> Iterator[None]:
        stack = self._fence_stack()
        stack.extend(leases)
        try:
            yield
        finally:
            del stack[len(stack) - len(leases):]
