"""What an OSV record may be: the OSV schema's types, plus bounds on size, as pydantic models.

Every record is checked here on import (:mod:`.sync`) and again when the matcher loads
it from the index (an index written by an older vulnwatch may hold anything). A record
that fails is skipped and named; nothing else about the import or the scan changes.

Checked:

- JSON text: at most :data:`MAX_RECORD_BYTES`, parsed by pydantic-core's parser
  (:func:`parse_json`), which refuses what :func:`json.loads` lets through and
  breaks later: lone UTF-16 surrogates (a title with one cannot be written to
  SQLite, a terminal or a webhook), integers beyond Python's 4,300-digit
  conversion limit, and nesting beyond its own recursion limit (where
  :func:`json.loads` raises :class:`RecursionError`);
- shape: :data:`MAX_DEPTH`, :data:`MAX_ITEMS` per array, :data:`MAX_KEYS` per object,
  :data:`MAX_TEXT_LENGTH` per string, everywhere, including the free-form
  ``database_specific`` / ``ecosystem_specific`` blocks and fields this version does
  not know (:func:`check_shape`);
- types of every field the OSV schema (1.7) defines, strictly (``"summary": 5`` is not
  turned into ``"5"``), with tighter length bounds on the fields that feed version
  comparators, ids and one-line texts (:class:`OsvRecord`).

Not checked, on purpose: the schema's closed lists (id prefixes, ecosystem names,
reference and credit types, CVSS patterns) and timestamp formats. OSV adds prefixes
and ecosystems often, and real exports break the timestamp pattern (273 of the 2,661
PyPI records here write ``2024-02-02 07:18:32+00:00``): an unattended monitor that
refused those would silently lose current data. Unknown fields are kept for the same
reason (a newer schema version adds fields), within the shape bounds.

Why pydantic and not ``jsonschema`` with the published OSV schema: the schema is a
draft 2020-12 document with the closed lists above, and ``jsonschema`` validates in
pure Python: 3.3 s for the 6,832 Debian records here (the whole import without
validation takes 0.65 s), and it rejects those 273 real PyPI records. pydantic is
already a dependency and validates in compiled code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import pydantic_core
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError

# ---------------------------------------------------------------------------- bounds
# The largest values seen in the shared real exports (Debian, PyPI, Alpine, Go; 16,226
# records) are given with each bound: every bound leaves a wide margin over real data
# while keeping one record's cost (memory, comparator time) small.

MAX_RECORD_BYTES = 4 * 1024 * 1024
"""JSON text of one record, in bytes (largest real: 20 KB). Checked before parsing, so a
huge or endless zip member is not read whole."""

MAX_DEPTH = 32
"""Nesting of arrays and objects (largest real: 8, in Go's ``ecosystem_specific.imports``;
the schema itself needs 4 for record/affected/ranges/events/event). Below the parser's own
recursion limit, so deep input is refused with this reason, never a ``RecursionError``."""

MAX_ITEMS = 100_000
"""Elements of any one array (largest real: 1,132 ``versions``; records whose ``versions``
list every git tag of a project reach a few thousand)."""

MAX_KEYS = 10_000
"""Members of any one object (largest real: 12)."""

MAX_TEXT_LENGTH = 256 * 1024
"""Characters of any string (``details`` and free-form blocks; largest real: 3,241)."""

MAX_LINE_LENGTH = 8 * 1024
"""Characters of a one-line text: ``summary``, package name and purl, URLs, a range's repo,
a CVSS vector, credit names (largest real: 270, a summary)."""

MAX_ID_LENGTH = 256
"""Characters of an id, alias, related or upstream id, timestamp, ecosystem or type name
(largest real: 34)."""

MAX_VERSION_LENGTH = 256
"""Characters of a version in ``versions`` or a range event (largest real: 69). Comparators
turn digit runs into integers, which Python refuses past 4,300 digits, and work in time
linear in the string or worse; no real version comes near this."""

EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")
"""The keys a range event may have (exactly one of them)."""


# ---------------------------------------------------------------------------- types

Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]
Short = Annotated[str, StringConstraints(max_length=MAX_ID_LENGTH)]
Line = Annotated[str, StringConstraints(max_length=MAX_LINE_LENGTH)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH)]
Version = Annotated[str, StringConstraints(min_length=1, max_length=MAX_VERSION_LENGTH)]
FreeForm = dict[str, Any]
"""A free-form object (``database_specific``, ``ecosystem_specific``): any JSON inside,
bounded by :func:`check_shape`."""


def _one_event(value: Any) -> Any:
    if isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in EVENT_KINDS:
        return value
    raise ValueError("each event must be an object with exactly one of introduced/fixed/last_affected/limit")


Event = Annotated[dict[str, Version], BeforeValidator(_one_event)]
"""``{"introduced": "1.0"}``: one kind, one version."""


class _Model(BaseModel):
    # strict: no coercion (5 is not a string); extra: unknown fields are kept as they are
    # (bounded by check_shape), so a newer schema version's fields do not make records fail
    model_config = ConfigDict(strict=True, extra="allow")


class OsvSeverity(_Model):
    """One ``severity[]`` entry."""

    type: Short
    """``CVSS_V2``, ``CVSS_V3``, ``CVSS_V4``, ``Ubuntu``, ..."""
    score: Line
    """The vector (or the rating for ``Ubuntu``)."""


class OsvPackage(_Model):
    """``affected[].package``."""

    ecosystem: Short
    """``PyPI``, ``Debian:11``, ..."""
    name: Line
    """Package name as the ecosystem spells it."""
    purl: Line | None = None
    """Package URL, when given."""


class OsvRange(_Model):
    """``affected[].ranges[]``."""

    type: Short
    """``ECOSYSTEM``, ``SEMVER`` or ``GIT`` (others are kept and never evaluated)."""
    repo: Line | None = None
    """Repository of a ``GIT`` range."""
    events: Annotated[list[Event], Field(min_length=1, max_length=MAX_ITEMS)]
    """The range's events, at least one."""
    database_specific: FreeForm | None = None
    """Free-form."""


class OsvAffected(_Model):
    """One ``affected[]`` entry."""

    package: OsvPackage | None = None
    """The package; entries without one match nothing."""
    severity: Annotated[list[OsvSeverity], Field(max_length=MAX_ITEMS)] | None = None
    """Severities for this package only."""
    ranges: Annotated[list[OsvRange], Field(max_length=MAX_ITEMS)] | None = None
    """Affected version ranges."""
    versions: Annotated[list[Version], Field(max_length=MAX_ITEMS)] | None = None
    """Affected versions, listed."""
    ecosystem_specific: FreeForm | None = None
    """Free-form (e.g. a severity, Go's imported symbols)."""
    database_specific: FreeForm | None = None
    """Free-form."""


class OsvReference(_Model):
    """One ``references[]`` entry."""

    type: Short
    """``ADVISORY``, ``WEB``, ``FIX``, ..."""
    url: Line
    """The link."""


class OsvCredit(_Model):
    """One ``credits[]`` entry."""

    name: Line
    """Who."""
    contact: Annotated[list[Line], Field(max_length=MAX_ITEMS)] | None = None
    """How to reach them."""
    type: Short | None = None
    """``FINDER``, ``REPORTER``, ..."""


class OsvRecord(_Model):
    """One OSV record, as far as vulnwatch relies on it (types per the OSV schema 1.7)."""

    schema_version: Short | None = None
    """OSV schema version the record follows."""
    id: Id
    """Record id (required), e.g. ``PYSEC-2019-217``, ``DSA-5365-1``."""
    modified: Short
    """When last changed (required)."""
    published: Short | None = None
    """When published."""
    withdrawn: Short | None = None
    """When withdrawn; withdrawn records are dropped from the index."""
    aliases: Annotated[list[Id], Field(max_length=MAX_ITEMS)] | None = None
    """Other ids of the same vulnerability."""
    related: Annotated[list[Id], Field(max_length=MAX_ITEMS)] | None = None
    """Ids of related, different vulnerabilities."""
    upstream: Annotated[list[Id], Field(max_length=MAX_ITEMS)] | None = None
    """Ids this record derives from (Debian names its CVEs here)."""
    summary: Line | None = None
    """One-line title."""
    details: Text | None = None
    """Longer description (Markdown)."""
    severity: Annotated[list[OsvSeverity], Field(max_length=MAX_ITEMS)] | None = None
    """Severities of the whole record."""
    affected: Annotated[list[OsvAffected], Field(max_length=MAX_ITEMS)] | None = None
    """Affected packages."""
    references: Annotated[list[OsvReference], Field(max_length=MAX_ITEMS)] | None = None
    """Links."""
    credits: Annotated[list[OsvCredit], Field(max_length=MAX_ITEMS)] | None = None
    """Who found, reported, fixed it."""
    database_specific: FreeForm | None = None
    """Free-form."""


class RecordError(ValueError):
    """Why a record is refused: :attr:`reason` names the field (``affected[0].ranges[0]...``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------- checks

def parse_json(data: bytes | str) -> Any:
    """Parse one record's JSON text; raises :class:`RecordError` (too big, not JSON, too deep).

    Uses pydantic-core's parser (see the module doc for what it refuses that
    :func:`json.loads` accepts). Infinity and NaN are accepted as :func:`json.dumps`
    writes them (the index stores records that way).
    """
    if len(data) > MAX_RECORD_BYTES:
        raise RecordError(f"larger than {MAX_RECORD_BYTES} bytes")
    try:
        return pydantic_core.from_json(data, cache_strings="keys")
    except ValueError as e:
        msg = str(e)
        if "recursion limit" in msg:
            raise RecordError(f"nested deeper than {MAX_DEPTH} levels") from None
        raise RecordError(f"not valid JSON ({msg})") from None


def check_shape(value: Any) -> str | None:
    """Why ``value`` exceeds the shape bounds (depth, items, keys, string length), or None.

    Walks every node without recursion. Hand-written because no JSON parser here takes
    these limits as options (pydantic-core's recursion limit is fixed at about 200). A
    quick pass decides; only a failing value is walked again to name the place.
    """
    if _shape_ok(value):
        return None
    return _shape_error(value) or "exceeds the shape bounds"


def _shape_ok(value: Any) -> bool:
    stack = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if type(node) is dict:
            if depth > MAX_DEPTH or len(node) > MAX_KEYS:
                return False
            for k, child in node.items():
                if len(k) > MAX_LINE_LENGTH:
                    return False
                t = type(child)
                if t is str:
                    if len(child) > MAX_TEXT_LENGTH:
                        return False
                elif t is dict or t is list:
                    push((child, depth + 1))
        elif type(node) is list:
            if depth > MAX_DEPTH or len(node) > MAX_ITEMS:
                return False
            for child in node:
                t = type(child)
                if t is str:
                    if len(child) > MAX_TEXT_LENGTH:
                        return False
                elif t is dict or t is list:
                    push((child, depth + 1))
        elif isinstance(node, (str, dict, list)):  # subclasses: the slow pass handles them
            return _shape_error(value) is None
    return True


def _shape_error(value: Any) -> str | None:
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, str):
            if len(node) > MAX_TEXT_LENGTH:
                return f"{_short(path)}: a string of {len(node)} characters (at most {MAX_TEXT_LENGTH})"
            continue
        if isinstance(node, dict):
            children: Any = node.items()
            count, limit, what = len(node), MAX_KEYS, "members"
        elif isinstance(node, list):
            children = enumerate(node)
            count, limit, what = len(node), MAX_ITEMS, "items"
        else:
            continue
        if depth > MAX_DEPTH:
            return f"{_short(path)}: nested deeper than {MAX_DEPTH} levels"
        if count > limit:
            return f"{_short(path)}: {count} {what} (at most {limit})"
        for k, child in children:
            if isinstance(k, str) and len(k) > MAX_LINE_LENGTH:
                return f"{_short(path)}: a member name of {len(k)} characters (at most {MAX_LINE_LENGTH})"
            if isinstance(child, (dict, list, str)):
                sub = f"{path}[{k}]" if isinstance(k, int) else f"{path}.{_key(str(k))}" if path else _key(str(k))
                stack.append((child, depth + 1, sub))
    return None


def _short(path: str) -> str:
    return path[:80] + "..." if len(path) > 80 else path or "record"


def _key(k: str) -> str:
    return k if len(k) <= 40 else k[:37] + "..."


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"a string of {len(value)} characters" if len(value) > 60 else f"{value!r}"
    if isinstance(value, (dict, list)):
        return f"{'an object' if isinstance(value, dict) else 'an array'} of {len(value)}"
    text = repr(value)
    return f"{type(value).__name__} {text[:40] + '...' if len(text) > 40 else text}"


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{_key(str(part))}" if out else _key(str(part))
    return out or "record"


def explain(error: ValidationError) -> str:
    """One line naming the first failing field, what it holds and what was expected."""
    errors = error.errors(include_url=False)
    first = errors[0]
    msg = first["msg"].removeprefix("Value error, ")
    text = f"{_location(first['loc'])}: {msg}"
    if first["type"] != "missing":
        text += f" (got {_describe(first.get('input'))})"
    if len(errors) > 1:
        text += f"; and {len(errors) - 1} more"
    return text


def check_record(record: Any) -> str | None:
    """Why ``record`` (parsed JSON) is not a usable OSV record, or None when it is."""
    if not isinstance(record, dict):
        return f"not a JSON object (got {_describe(record)})"
    why = check_shape(record)
    if why:
        return why
    try:
        OsvRecord.model_validate(record)
    except ValidationError as e:
        return explain(e)
    except RecursionError:  # cannot happen within MAX_DEPTH; never let one escape
        return f"nested deeper than {MAX_DEPTH} levels"
    return None
