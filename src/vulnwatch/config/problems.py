"""Problems with a configuration file: ``file:line: key.path: message``, with "did you mean".

:class:`ConfigError` carries every problem found in one file at once. Validation errors from
pydantic are translated here into problems that name the document's own key path (not
pydantic's location with union tags) and the line of the key.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = ["ConfigError", "ConfigProblem", "key_path", "known_keys", "problems_from_validation", "schema_models"]



@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration file."""

    file: str
    """The configuration file as given (``<defaults>`` for :meth:`Config.default`)."""
    line: int
    """1-based line of the offending key (of the nearest enclosing key when the key is missing)."""
    key_path: str
    """Where in the document, e.g. ``registries[0].scan.interval`` (empty for the whole file)."""
    message: str
    """What is wrong and what to do; never contains a secret value."""

    @property
    def section(self) -> str:
        """The top-level section the problem is in (``registries`` for ``registries[0].url``);
        empty for the whole file."""
        return self.key_path.split(".", 1)[0].split("[", 1)[0]

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: {self.key_path}: {self.message}" if self.key_path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration file cannot be used.

    ``str(error)`` has one line per problem, ``file:line: key.path: message``;
    ``problems`` holds them as :class:`ConfigProblem` values.
    """

    def __init__(self, message: str, *, problems: Sequence[ConfigProblem] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)

    @classmethod
    def from_problems(cls, problems: Sequence[ConfigProblem]) -> "ConfigError":
        return cls("\n".join(str(p) for p in problems), problems=problems)


def loc_error(loc: tuple[Any, ...], message: str, value: Any = None) -> ValidationError:
    """A validation error attached to ``loc`` (relative to the model raising it).

    Raised from a model validator, pydantic prefixes the model's own location, so the
    problem is reported at the exact key (e.g. ``registries[1].name``)."""
    return ValidationError.from_exception_data("config", [InitErrorDetails(
        type=PydanticCustomError("config", "{message}", {"message": message}), loc=loc, input=value)])


def problems_error(problems: list[tuple[tuple[Any, ...], str]]) -> ValidationError:
    return ValidationError.from_exception_data("config", [InitErrorDetails(
        type=PydanticCustomError("config", "{message}", {"message": m}), loc=loc, input=None)
        for loc, m in problems])


def merged_error(exc: ValidationError, problems: list[tuple[tuple[Any, ...], str]]) -> ValidationError:
    """``exc``'s errors (types, messages and context kept) and ``problems`` in one error, so that
    a model validator's findings are reported with the fields' own."""
    details = [InitErrorDetails(type=PydanticCustomError(e["type"], "{message}", {**(e.get("ctx") or {}),
                                                                                  "message": e["msg"]}),
                                loc=tuple(e["loc"]), input=e.get("input"))
               for e in exc.errors(include_url=False)]
    details += [InitErrorDetails(type=PydanticCustomError("config", "{message}", {"message": m}), loc=loc, input=None)
                for loc, m in problems]
    return ValidationError.from_exception_data("config", details)


def key_path(path: Sequence[Any]) -> str:
    """``("registries", 0, "scan", "interval")`` -> ``registries[0].scan.interval``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def schema_models(root: type[BaseModel]) -> list[type[BaseModel]]:
    """``root`` and every model reachable from its fields (through lists, unions, Annotated)."""
    seen: list[type[BaseModel]] = []
    pending: list[Any] = [root]
    while pending:
        t = pending.pop()
        if isinstance(t, type) and issubclass(t, BaseModel):
            if t not in seen:
                seen.append(t)
                for f in t.model_fields.values():
                    pending.append(f.annotation)
            continue
        pending.extend(getattr(t, "__args__", ()) or ())
        origin = getattr(t, "__origin__", None)
        if origin is not None:
            pending.append(origin)
    return seen


def known_keys(root: type[BaseModel]) -> list[str]:
    """Every key name of the schema under ``root`` (for "did you mean"): sections added to the
    schema are found without a list to keep up to date."""
    return sorted({name for m in schema_models(root) for name in m.model_fields})


def _data_path(loc: Sequence[Any], data: Any) -> tuple[Any, ...]:
    """Pydantic's error location -> a path into the document: drops the union tags
    (``registries.0.ecr.scan`` -> ``registries[0].scan``) and ``[key]`` markers."""
    out: list[Any] = []
    node = data
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(node, dict):
            if part in node:
                out.append(part)
                node = node[part]
            elif node.get("type") == part:
                continue  # discriminator tag pydantic puts in the location
            else:
                out.append(part)
                node = None
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        else:
            out.append(part)
            node = None
    return tuple(out)


def _message(err: dict[str, Any], path: tuple[Any, ...], known: Sequence[str]) -> str:
    kind = err["type"]
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        close = difflib.get_close_matches(key, known, n=1)
        return f"unknown key {key!r}" + (f"; did you mean {close[0]!r}?" if close else "; remove it")
    if kind == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        return f"unknown type {ctx.get('tag')!r}: use one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return "required key 'type' is missing"
    if kind == "model_type" or kind == "dict_type":
        return "expected a mapping (key: value lines)"
    if kind == "list_type":
        return "expected a list (lines starting with '- ')"
    return msg


def problems_from_validation(exc: ValidationError, doc: Any, known: Sequence[str]) -> list[ConfigProblem]:
    """The problems of a pydantic ``ValidationError`` raised for ``doc`` (a :class:`~.loader.Document`)."""
    problems = []
    for err in exc.errors(include_url=False):
        path = _data_path(err["loc"], doc.data)
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path = path + ("type",)
        problems.append(ConfigProblem(doc.file, doc.line(path), key_path(path), _message(err, path, known)))
    return problems
