"""Field types of the configuration: durations, globs, names, URLs, paths, severities, and the
base model every section derives from (unknown keys refused, frozen, validators built on first
use; :func:`field_docs` gives the docstring of each field).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer, SecretStr,
                      ValidationInfo, model_validator)

from ..model import Severity

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_HINT = ("use a number followed by ms, s, m, h, d or w (e.g. 500ms, 30s, 10m, 24h, 1d, 2w, 1h30m), "
                  "or a number of seconds")


def parse_duration(value: Any) -> timedelta:
    """``30s``, ``10m``, ``24h``, ``1d``, ``2w``, ``500ms``, combinations (``1h30m``), a
    ``timedelta``, or a bare number of seconds. Raises ``ValueError`` naming the input."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"bad duration {value!r}: {_DURATION_HINT}")
    if isinstance(value, (int, float)):
        try:
            return timedelta(seconds=value)
        except (OverflowError, ValueError):
            raise ValueError(f"bad duration {value!r}: out of range; {_DURATION_HINT}") from None
    if not isinstance(value, str):
        raise ValueError(f"bad duration {value!r}: {_DURATION_HINT}")
    text = value.strip().lower()
    try:
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return timedelta(seconds=float(text))
        return _parse_parts(value, text)
    except OverflowError:
        raise ValueError(f"bad duration {value!r}: out of range; {_DURATION_HINT}") from None


def _parse_parts(value: Any, text: str) -> timedelta:
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"bad duration {value!r}: {_DURATION_HINT}")
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    """The shortest spelling ``parse_duration`` reads back: ``1d``, ``1h30m``, ``45s``, ``250ms``."""
    ms = round(value.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        n, ms = divmod(ms, size)
        if n:
            parts.append(f"{n}{unit}")
    return sign + "".join(parts)


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError(f"duration must be greater than zero, got {format_duration(value)}")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive),
                     PlainSerializer(format_duration, return_type=str)]
"""A positive duration written ``30s``, ``10m``, ``24h``, ``1d`` (or seconds as a number)."""


def _check_glob(pattern: str, allowed: str, what: str) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"empty {what} pattern")
    bad = sorted({c for c in pattern if not re.fullmatch(allowed, c)})
    if bad:
        raise ValueError(f"bad {what} pattern {pattern!r}: character(s) {''.join(bad)!r} cannot occur in "
                         f"{what}s; use an exact name or a glob with * ? [...]")
    depth = 0
    for c in pattern:
        if c == "[":
            if depth:
                raise ValueError(f"bad {what} pattern {pattern!r}: nested '[' in a character class")
            depth = 1
        elif c == "]" and depth:
            depth = 0
    if depth:
        raise ValueError(f"bad {what} pattern {pattern!r}: '[' without a closing ']'")
    if "]" in pattern.replace("[]", "") and "[" not in pattern:
        raise ValueError(f"bad {what} pattern {pattern!r}: ']' without an opening '['")
    return pattern


def is_glob(pattern: str) -> bool:
    """True when ``pattern`` has glob characters (``*``, ``?``, ``[``), False for an exact name."""
    return any(c in pattern for c in "*?[")


# Repository names are lower case (OCI distribution spec): a-z 0-9 . _ - and / between components.
RepositoryGlob = Annotated[str, AfterValidator(
    lambda v: _check_glob(v, r"[a-z0-9._/\-*?\[\]!]", "repository name"))]
"""An exact repository name or an ``fnmatch`` glob over it (``*`` also matches ``/``)."""

TagGlob = Annotated[str, AfterValidator(lambda v: _check_glob(v, r"[A-Za-z0-9._\-*?\[\]!]", "tag"))]
"""An exact tag or an ``fnmatch`` glob over tags."""

SinkRepositoryGlob = Annotated[str, AfterValidator(
    lambda v: _check_glob(v, r"[A-Za-z0-9._/\-*?\[\]!]", "registry/repository"))]
"""A glob over ``<registry name>/<repository>``, e.g. ``prod/*`` or ``*/team/app``."""

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _check_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError(f"bad name {value!r}: use letters, digits, '.', '_' or '-' "
                         "(starting with a letter or digit, at most 64 characters)")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
"""A configured name (registry or notification sink): ``[A-Za-z0-9][A-Za-z0-9_.-]*``."""


def _check_http_url(value: str, what: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+(/\S*)?", value):
        raise ValueError(f"{what} must be an http:// or https:// URL")
    return value


def _secret_http_url(value: SecretStr) -> SecretStr:
    # The message must not echo the URL: it is a secret.
    _check_http_url(value.get_secret_value(), "the URL")
    return value


SecretHttpUrl = Annotated[SecretStr, AfterValidator(_secret_http_url)]
HttpUrl = Annotated[str, AfterValidator(lambda v: _check_http_url(v, "the URL"))]


def _base_dir(info: ValidationInfo) -> Path:
    ctx = info.context or {}
    return Path(ctx.get("base_dir") or Path.cwd())


def resolve_path(value: Path | str, info: ValidationInfo) -> Path:
    p = Path(os.path.expanduser(str(value)))
    return p if p.is_absolute() else (_base_dir(info) / p).resolve()


class Model(BaseModel):
    """Base of every section: unknown keys are errors, values are frozen.

    What a command's start costs matters (``vulnwatch run`` from cron, a cold ``scan``), so:

    * validators are built on first use (``defer_build``): loading a file builds one, the
      :class:`~.root.Config`'s, which holds every section's;
    * a section (or nested model, such as ``scan``) that the file leaves out is validated as an
      empty mapping by the enclosing model, not made by calling its class, which would build a
      validator of its own for it;
    * the attribute docstrings, which document each field, are not read at import (pydantic's
      ``use_attribute_docstrings`` reads every class's source): :func:`field_docs` reads them
      when asked."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        # `repositories:` with nothing under it (all entries commented out) is YAML null:
        # treat it as "not given" for keys that have a non-null default.
        if isinstance(data, dict):
            fields = cls.model_fields
            drop = [k for k, v in data.items() if v is None and k in fields and not fields[k].is_required()
                    and (fields[k].default is not None or fields[k].default_factory is not None)]
            if drop:
                data = {k: v for k, v in data.items() if k not in drop}
            missing = [k for k in _model_fields_made_by_class(cls) if k not in data]
            if missing:
                data = {**data, **dict.fromkeys(missing, {})}
        return data


_MODEL_DEFAULTS: dict[type, tuple[str, ...]] = {}


def _model_fields_made_by_class(cls: type[Model]) -> tuple[str, ...]:
    """The fields of ``cls`` whose default is an instance of a model of ours made with no
    arguments (``Field(default_factory=StateConfig)``): left out, each is validated as ``{}``."""
    found = _MODEL_DEFAULTS.get(cls)
    if found is None:
        found = _MODEL_DEFAULTS[cls] = tuple(
            k for k, f in cls.model_fields.items()
            if isinstance(f.default_factory, type) and issubclass(f.default_factory, Model))
    return found


def field_docs(model: type[BaseModel]) -> dict[str, str]:
    """Each field of ``model`` (its own and its bases') with the docstring written under it in
    the class body, read from the source (what pydantic's ``use_attribute_docstrings`` would
    have made the fields' descriptions)."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed([k for k in model.__mro__ if isinstance(k, type) and issubclass(k, BaseModel)
                           and k is not BaseModel]):
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body      # type: ignore[attr-defined]
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = inspect.cleandoc(after.value.value)
    return {name: docs[name] for name in model.model_fields if name in docs}


SeverityName = Annotated[Severity, BeforeValidator(Severity.from_name), PlainSerializer(lambda s: s.name, return_type=str)]
"""A severity written by name (``HIGH``, case-insensitive)."""
