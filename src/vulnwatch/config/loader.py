"""YAML with the line of every key, and ``${VAR}`` interpolation of string values.

:class:`Document` parses one YAML text into plain data and remembers the 1-based line of
every key and list item (so a problem found later by validation can name its line), and
replaces ``${VAR}`` / ``${VAR:-default}`` in string scalars from the environment. Problems
found while reading (YAML syntax, duplicate keys, unset variables) are collected in
``Document.problems``, not raised.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from .problems import ConfigProblem, key_path

__all__ = ["Document", "InterpolationError", "interpolate", "key_path"]

_VAR_RE = re.compile(r"\$\$\{|\$\{([^}]*)(\})?")
_VAR_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.S)


MAX_VALUES = 100_000
"""Values (keys, items, scalars) a configuration may expand to, aliases and merge keys
included: far above any real file, far below what a "billion laughs" alias bomb expands to."""


class _TooLarge(Exception):
    """The document expands past :data:`MAX_VALUES`."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def _merged_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many key/value pairs a mapping has once its merge keys (``<<``) are flattened,
    without flattening it (memoised per node: an alias is counted, not expanded)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 0          # a cycle counts as nothing here; _build refuses recursive aliases
    total = 0
    for k, v in node.value if isinstance(node, yaml.MappingNode) else ():
        if k.tag == "tag:yaml.org,2002:merge":
            sources = v.value if isinstance(v, yaml.SequenceNode) else [v]
            total += sum(_merged_size(src, memo) for src in sources if isinstance(src, yaml.MappingNode))
        else:
            total += 1
        if total > MAX_VALUES:
            break
    memo[key] = total
    return total


class InterpolationError(ValueError):
    """A ``${...}`` reference that cannot be replaced; the message says why and what to write."""


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` (default when unset or empty); ``$${`` is a
    literal ``${``; any other ``$`` is kept. Raises :class:`InterpolationError` (a ``ValueError``) naming a missing variable."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        body, closed = m.group(1), m.group(2)
        if not closed:
            raise InterpolationError("unterminated '${' (write $${ for a literal '${')")
        vm = _VAR_BODY.fullmatch(body)
        if not vm:
            raise InterpolationError(f"bad variable reference '${{{body}}}': use ${{NAME}} or ${{NAME:-default}}")
        name, default = vm.group(1), vm.group(2)
        value = environ.get(name)
        if default is not None:
            return value if value else default
        if value is None:
            raise InterpolationError(f"environment variable {name} is not set "
                                 f"(set it, or write ${{{name}:-default}})")
        return value

    return _VAR_RE.sub(repl, text)


class Document:
    """The parsed YAML: plain data, plus the line of every key and list item."""

    def __init__(self, file: str, text: str, environ: Mapping[str, str]) -> None:
        self.file = file
        self.lines: dict[tuple[Any, ...], int] = {(): 1}
        self.problems: list[ConfigProblem] = []
        self.environ = environ
        loader = None
        try:
            loader = yaml.SafeLoader(text)     # refuses control characters at once (a ReaderError)
            node = loader.get_single_node()
            self._loader = loader
            self._active: set[int] = set()
            self._explicit: set[tuple[Any, ...]] = set()
            self._built = 0
            self._sizes: dict[int, int] = {}
            if node is None:
                self.data: Any = {}
            else:
                self.lines[()] = node.start_mark.line + 1
                self.data = self._build(node, ())
        except _TooLarge as e:
            self.problems.append(ConfigProblem(file, e.line, "", f"the document expands to more than {MAX_VALUES} "
                                               "values through its aliases (*name) and merge keys (<<): an alias "
                                               "bomb (\"billion laughs\")? Refused; write the values out"))
            self.data = None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
            line = mark.line + 1 if mark is not None else 1
            problem = getattr(e, "problem", None) or str(e)
            context = getattr(e, "context", None)
            msg = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
            self.problems.append(ConfigProblem(file, line, "", msg))
            self.data = None
        finally:
            if loader is not None:
                loader.dispose()

    def _build(self, node: yaml.Node, path: tuple[Any, ...]) -> Any:
        if id(node) in self._active:
            raise yaml.YAMLError(f"recursive alias at {key_path(path)}")
        self._built += 1
        if self._built > MAX_VALUES:
            raise _TooLarge(node.start_mark.line + 1)
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                explicit = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
                if self._built + _merged_size(node, self._sizes) > MAX_VALUES:
                    raise _TooLarge(node.start_mark.line + 1)
                self._loader.flatten_mapping(node)  # merge keys (<<): merged pairs come first
                n_merged = len(node.value) - explicit
                out: dict[Any, Any] = {}
                for index, (key_node, value_node) in enumerate(node.value):
                    line = key_node.start_mark.line + 1
                    if not isinstance(key_node, yaml.ScalarNode):   # never expanded: it may be an alias bomb
                        self.problems.append(ConfigProblem(self.file, line, key_path(path),
                                                           "a key must be a plain value"))
                        continue
                    key = self._loader.construct_object(key_node, deep=True)
                    try:
                        hash(key)
                    except TypeError:
                        self.problems.append(ConfigProblem(self.file, line, key_path(path),
                                                           "a key must be a plain value"))
                        continue
                    if key in out and index >= n_merged:
                        if (path + (key,)) not in self._explicit:
                            # an explicit key overrides one merged in with <<
                            self._explicit.add(path + (key,))
                            self.lines[path + (key,)] = line
                            out[key] = self._build(value_node, path + (key,))
                            continue
                        self.problems.append(ConfigProblem(
                            self.file, line, key_path(path + (key,)),
                            f"duplicate key (first at line {self.lines[path + (key,)]}); remove one"))
                        continue
                    if key in out:
                        continue  # merged from several sources: the first one wins
                    if index >= n_merged:
                        self._explicit.add(path + (key,))
                    self.lines[path + (key,)] = line
                    out[key] = self._build(value_node, path + (key,))
                return out
            if isinstance(node, yaml.SequenceNode):
                items = []
                for i, item in enumerate(node.value):
                    self.lines[path + (i,)] = item.start_mark.line + 1
                    items.append(self._build(item, path + (i,)))
                return items
            value = self._loader.construct_object(node, deep=True)
            if isinstance(value, str) and "${" in value:
                try:
                    value = interpolate(value, self.environ)
                except InterpolationError as e:
                    self.problems.append(ConfigProblem(self.file, self.line(path), key_path(path), str(e)))
            return value
        finally:
            self._active.discard(id(node))

    def line(self, path: tuple[Any, ...]) -> int:
        """Line of ``path``, or of its nearest enclosing key."""
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return 1
