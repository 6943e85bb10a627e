"""The tar walk of an image in a forked child process, so that a cold scan uses two cores.

In one process the layer walk cannot use a second core: inflating releases the GIL, but every
inflated block takes it back, and the tar reader is Python that holds it (measured: a prefetch
thread gives no overlap, bench/README.md). Here the work is split between two processes:

- this process fetches and hashes the blobs (:class:`~.prefetch.LayerPrefetch` with
  ``decode=False``: its thread and the registry's read-ahead thread), and copies each piece of
  the blob, as read (compressed), into a slot of a shared memory ring (an anonymous
  ``MAP_SHARED`` mapping made before the fork);
- the child, forked before any thread is started (so it inherits the walk plan, the catalogers'
  readers and the limits, and no lock another thread held), reads the slots as a stream,
  inflates it (:func:`~.source.decoded_chunks`: gzip, zstd or plain, sniffed, as in one
  process) and runs the tar reader and the layer logic (:meth:`~.overlay.LayerStack.read_chunks`,
  the very code of the serial path) on its own core, and sends back what each layer contributes
  (:class:`~.contents.LayerContents`: only the wanted files, small).

Inflating in the child balances the two: with the inflate here, this process's three threads
(fetch, SHA-256, inflate, ring copies) took ~0.45 s of CPU for the app image and barely
overlapped under the GIL, while the child's parse took ~0.17 s; now this process takes ~0.2 s
and the child ~0.39 s, and the compressed bytes (~2.4x fewer) go through the ring.

This process applies those contents in layer order to its own :class:`~.overlay.LayerStack`
(the child applies them too, to read the layers above), stores read layers in the layer cache,
and returns the merged view: the same :class:`~.contents.WalkResult` as the serial walk. Layers
found in the cache are sent to the child to apply. Errors keep the serial path's meaning and
order: a decompression failure happens in the child, and a transfer failure is handed to it at
the point of the stream where it happened (the child's :class:`~.source.LayerSource` names the tar entry being read, as
in one process) and comes back as that layer's failure; a failure the serial path passes
through unchanged (a :class:`~vulnwatch.registries.interface.RegistryError`: digest mismatch,
truncated blob, timeout) is raised here as the very exception object. A child that dies is a
:class:`~.limits.LayerError` naming the layer being read.

Messages go over two pipes (small fixed headers; a layer's contents pickled: the child is a fork
of this process, the data never leaves the pair, and nothing pickled is stored). The child never
returns into this process's code: it leaves with ``os._exit``.

Used by :func:`~.cache.walk_cached` when the process has one thread (forking a process whose
other threads may hold locks is unsafe, so a daemon's worker threads keep the thread path) and
``os.fork`` exists; ``VULNWATCH_WALK_PROCESS=0`` turns it off.
"""

from __future__ import annotations

import mmap
import os
import pickle
import signal
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, BinaryIO

from .contents import LayerContents, WalkPlan, WalkResult
from .limits import LayerError, LayerLimits
from .overlay import LayerStack
from .prefetch import LayerPrefetch
from .source import CHUNK_SIZE, DECODE_ERRORS, ChunkStream, decoded_chunks, read_head

if TYPE_CHECKING:  # pragma: no cover
    from .prefetch import ClaimingCache

__all__ = ["ENV_SWITCH", "can_fork", "walk_forked"]

ENV_SWITCH = "VULNWATCH_WALK_PROCESS"
"""Set to ``0`` to keep the walk in one process (the thread path)."""
SLOTS = 8
"""Slots of the shared ring (each :data:`~.source.CHUNK_SIZE` bytes): inflated pieces in flight."""

# parent -> child
_OPEN, _DATA, _END, _ERROR, _EMPTY, _CACHED, _QUIT = range(7)
# child -> parent
_FREE, _RESULT, _FAIL = range(3)
_HEAD = struct.Struct("<BiIIq")   # kind, layer index, slot, length (payload or data), compressed bytes (-1: None)

# what the child raises inside its LayerSource for a failure of the blob here: the types the
# serial path wraps into a LayerError naming the tar entry (their message kept), and the rest
_WRAPPED, _PASSTHROUGH = 1, 2


def can_fork() -> bool:
    """Whether the walk may fork its parser: ``os.fork`` exists, the process runs one thread
    (fork copies no other thread, and a lock one of them held would stay locked in the child),
    and ``VULNWATCH_WALK_PROCESS`` is not ``0``."""
    if os.environ.get(ENV_SWITCH, "").strip() == "0":
        return False
    return hasattr(os, "fork") and threading.active_count() == 1


# ------------------------------------------------------------------ pipes

def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytes:
    parts = []
    while n:
        got = os.read(fd, n)
        if not got:
            raise EOFError("the other end of the walk closed its pipe")
        parts.append(got)
        n -= len(got)
    return b"".join(parts) if len(parts) != 1 else parts[0]


class _Channel:
    """One direction of the pair: which kinds carry a payload."""

    def __init__(self, fd: int, payload_kinds: frozenset[int]) -> None:
        self.fd = fd
        self.payload_kinds = payload_kinds

    def send(self, kind: int, index: int = -1, slot: int = 0, length: int = 0, compressed: int = -1,
             payload: bytes = b"") -> None:
        head = _HEAD.pack(kind, index, slot, len(payload) if kind in self.payload_kinds else length, compressed)
        _write_all(self.fd, head + payload if payload else head)

    def receive(self) -> tuple[int, int, int, int, int, bytes]:
        kind, index, slot, length, compressed = _HEAD.unpack(_read_exact(self.fd, _HEAD.size))
        payload = _read_exact(self.fd, length) if kind in self.payload_kinds and length else b""
        return kind, index, slot, length, compressed, payload


_DOWN_PAYLOADS = frozenset({_ERROR, _CACHED})
_UP_PAYLOADS = frozenset({_RESULT, _FAIL})


# ------------------------------------------------------------------ errors across the pair

class _BlobFailed(Exception):
    """Raised in the child's LayerSource for a failure here that the serial path passes through
    unchanged; the parent raises its own exception object for it."""


def _dump_error(e: BaseException) -> bytes:
    """A failure of the child, for the parent to raise as if it had happened there: its class,
    ``args`` and attributes (rebuilt without calling ``__init__``, whose signature may differ
    from ``args``, as LayerError's and CatalogLimitError's do)."""
    if isinstance(e, _BlobFailed):
        return pickle.dumps(("passthrough",))
    try:
        payload = pickle.dumps(("exception", type(e), e.args, dict(getattr(e, "__dict__", {}))))
        _rebuild(*pickle.loads(payload)[1:])
        return payload
    except Exception:   # noqa: BLE001 - what cannot be sent: its type and message
        return pickle.dumps(("text", f"{type(e).__name__}: {e}"))


def _rebuild(cls: type[BaseException], args: tuple, attrs: dict) -> BaseException:
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(attrs)
    return err


def _load_error(payload: bytes, layer: str, original: BaseException | None) -> BaseException:
    what = pickle.loads(payload)
    if what[0] == "passthrough" and original is not None:
        return original
    if what[0] == "exception":
        return _rebuild(*what[1:])
    return LayerError(layer, f"the layer walk failed ({what[-1]})", code="LayerUnreadable")


# ------------------------------------------------------------------ the child

def _child(layers: Sequence[str], plan: WalkPlan, limits: LayerLimits | None, ring: mmap.mmap,
           down: _Channel, up: _Channel) -> None:
    """Parse what the parent sends, layer after layer; send back each layer's contents."""
    stack = LayerStack(plan, limits=limits)
    size = CHUNK_SIZE
    index = -1
    try:
        while True:
            kind, index, slot, length, compressed, payload = down.receive()
            if kind == _QUIT:
                return
            if kind == _CACHED:
                stack.apply(pickle.loads(payload))
                continue
            if kind == _EMPTY:
                stack.apply(LayerContents(layers[index]))
                continue
            # _OPEN: the layer's pieces follow until its _END or _ERROR
            state = {"open": True}

            def pieces(i: int = index) -> Iterator[bytes]:
                while True:
                    k, _, s, n, comp, body = down.receive()
                    if k == _DATA:
                        data = ring[s * size:s * size + n]
                        up.send(_FREE, i, s)
                        yield data
                    elif k == _END:
                        state["open"] = False
                        return
                    elif k == _ERROR:
                        state["open"] = False
                        how, text = pickle.loads(body)
                        if how == _WRAPPED:
                            raise OSError(text)   # LayerSource wraps it, naming the tar entry
                        raise _BlobFailed(text)
                    else:  # pragma: no cover - the parent sends nothing else inside a layer
                        raise RuntimeError(f"unexpected message {k} inside layer {i}")

            def chunks(i: int = index) -> Iterator[tuple[bytes, int | None]]:
                # the blob's bytes as the parent read them, inflated here (gzip, zstd or plain,
                # sniffed as in one process)
                stream = ChunkStream(pieces(i))
                head = read_head(stream)
                if head:
                    yield from decoded_chunks(layers[i], stream, head, size)

            contents = stack.read_chunks(layers[index], chunks())
            up.send(_RESULT, index, payload=pickle.dumps(contents, protocol=pickle.HIGHEST_PROTOCOL))
            while state["open"]:        # the tar ended before the blob did: free the rest
                k, _, s, _, _, _ = down.receive()
                if k == _DATA:
                    up.send(_FREE, index, s)
                elif k in (_END, _ERROR):
                    state["open"] = False
            stack.apply(contents)
    except EOFError:
        return                          # the parent is gone or gave up
    except BaseException as e:  # noqa: BLE001 - every failure goes back to the parent
        try:
            up.send(_FAIL, index, payload=_dump_error(e))
        except OSError:
            pass


def _fork_child(layers: Sequence[str], plan: WalkPlan, limits: LayerLimits | None,
                ring: mmap.mmap) -> tuple[int, _Channel, _Channel]:
    down_r, down_w = os.pipe()
    up_r, up_w = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: never returns into the caller's code
        code = 0
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent handles ^C and ends the child
            os.close(down_w)
            os.close(up_r)
            _child(layers, plan, limits, ring, _Channel(down_r, _DOWN_PAYLOADS), _Channel(up_w, _UP_PAYLOADS))
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(down_r)
    os.close(up_w)
    return pid, _Channel(down_w, _DOWN_PAYLOADS), _Channel(up_r, _UP_PAYLOADS)


# ------------------------------------------------------------------ this process

class _Parent:
    """This process's side: relays pieces into the ring, collects results in order."""

    def __init__(self, layers: Sequence[str], stack: LayerStack, ahead: LayerPrefetch, cache, key: str,
                 chains: Sequence[str], down: _Channel, up: _Channel, ring: mmap.mmap) -> None:
        self.layers = layers
        self.stack = stack
        self.ahead = ahead
        self.cache = cache
        self.key = key
        self.chains = chains
        self.down = down
        self.up = up
        self.ring = ring
        self.free = list(range(SLOTS))
        self.applied = 0                 # layers applied to this process's stack so far
        self.results: dict[int, LayerContents] = {}
        self.failures: dict[int, BaseException] = {}   # original exceptions of layers sent as _ERROR

    def send(self, *a, **kw) -> None:
        """Send to the child; if it is gone, raise what it said before leaving (or that it died)."""
        try:
            self.down.send(*a, **kw)
        except BrokenPipeError:
            while True:
                self._handle()

    def _handle(self) -> None:
        """Take one message from the child."""
        try:
            kind, index, slot, _, _, payload = self.up.receive()
        except EOFError:
            layer = self.layers[min(self.applied, len(self.layers) - 1)]
            raise LayerError(layer, "the process reading the layers ended unexpectedly (out of memory, or "
                             "killed); scan again, or set VULNWATCH_WALK_PROCESS=0 to read them in one process",
                             code="LayerUnreadable") from None
        if kind == _FREE:
            self.free.append(slot)
        elif kind == _RESULT:
            self.results[index] = pickle.loads(payload)
            self.ahead.done(index)
        else:  # _FAIL
            raise _load_error(payload, self.layers[index] if index >= 0 else "?", self.failures.get(index))

    def apply_ready(self) -> None:
        """Apply, in order, the layers whose contents have come back; store those read under a
        claim on their cache entry."""
        while self.applied in self.results:
            i = self.applied
            contents = self.results.pop(i)
            if i in self.failures:
                raise self.failures[i]
            if self.ahead.claimed(i) and self.cache is not None:
                self.cache.put(contents, self.chains[i], self.key)
                self.ahead.release(i)
            self.stack.apply(contents)
            self.applied += 1

    def wait_applied(self, upto: int) -> None:
        """Wait until every layer below ``upto`` is applied."""
        self.apply_ready()
        while self.applied < upto:
            self._handle()
            self.apply_ready()

    def relay(self, index: int, chunks) -> None:
        """Send layer ``index``'s pieces, then its end (or its failure)."""
        ring, size = self.ring, CHUNK_SIZE
        self.send(_OPEN, index)
        while True:
            try:
                data, compressed = next(chunks)
            except StopIteration:
                break
            except Exception as e:  # noqa: BLE001 - handed to the child at this point of the stream
                how = _WRAPPED if isinstance(e, DECODE_ERRORS) else _PASSTHROUGH
                if how == _PASSTHROUGH:
                    self.failures[index] = e
                self.send(_ERROR, index, payload=pickle.dumps((how, str(e))))
                if how == _PASSTHROUGH:
                    # the prefetch thread stopped: this layer's failure is the walk's, where the
                    # child read the stream or (its tar ended first) once the layers below are in
                    self.wait_applied(index + 1)
                # damage: the child fails where it read it, or its tar ended first and the
                # damage does not matter (the thread still reads the blob to its end: checked)
                return
            if index in self.results or self.applied > index:
                break                    # the child found the tar's end: the rest is not needed
            comp = -1 if compressed is None else compressed
            for start in range(0, len(data), size):
                while not self.free:
                    self._handle()
                slot = self.free.pop()
                piece = data[start:start + size] if len(data) > size else data
                ring[slot * size:slot * size + len(piece)] = piece
                self.send(_DATA, index, slot, len(piece), comp)
        self.send(_END, index)

    def apply_cached(self, index: int, contents: LayerContents) -> None:
        # the child applies it too; wait for the layers below first, so that neither side blocks
        # writing a large message while the other does
        self.wait_applied(index)
        self.send(_CACHED, index, payload=pickle.dumps(contents, protocol=pickle.HIGHEST_PROTOCOL))
        self.stack.apply(contents)
        self.applied += 1

    def apply_empty(self, index: int) -> None:
        self.wait_applied(index)
        self.send(_EMPTY, index)
        self.stack.apply(LayerContents(self.layers[index]))
        self.applied += 1


def walk_forked(layers: Sequence[str], open_blob: Callable[[str], BinaryIO], plan: WalkPlan,
                jobs: Sequence[tuple[int, str, str | None]], chains: Sequence[str], *, key: str = "",
                limits: LayerLimits | None = None, cache: "ClaimingCache | None" = None,
                progress: Callable[[int, int], None] | None = None) -> WalkResult:
    """:func:`~.cache.walk_cached`'s walk with the tar reader in a forked child (module docstring).
    ``jobs`` and ``chains`` are walk_cached's (which layers may come from ``cache``)."""
    stack = LayerStack(plan, limits=limits)
    total = len(layers)
    ring = mmap.mmap(-1, SLOTS * CHUNK_SIZE)      # MAP_SHARED | MAP_ANONYMOUS: shared with the child
    pid, down, up = _fork_child(layers, plan, limits, ring)   # before any thread of ours starts
    finished = False
    try:
        with LayerPrefetch(jobs, open_blob, cache=cache, key=key, decode=False) as ahead:
            parent = _Parent(layers, stack, ahead, cache, key, chains, down, up, ring)
            for i in range(total):
                if progress:
                    progress(i, total)
                try:
                    contents, chunks = ahead.layer(i)
                except BaseException as e:
                    # opening the blob failed: the serial path fails here, after the layers below
                    parent.failures[i] = e
                    parent.wait_applied(i)
                    raise
                if contents is not None:
                    parent.apply_cached(i, contents)
                elif chunks is None:
                    parent.apply_empty(i)
                else:
                    parent.relay(i, chunks)
                    parent.apply_ready()
            parent.wait_applied(total)
            ahead.finish()
            parent.send(_QUIT)
            finished = True
    finally:
        _end_child(pid, down, up, kill=not finished)
        ring.close()
    if progress:
        progress(total, total)
    return stack.result()


def _end_child(pid: int, down: _Channel, up: _Channel, *, kill: bool) -> None:
    for fd in (down.fd, up.fd):
        try:
            os.close(fd)
        except OSError:
            pass
    if kill:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
