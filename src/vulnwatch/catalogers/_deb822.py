"""A small, fast reader for deb822-style stanzas (dpkg status, apk installed db)."""

from __future__ import annotations

from collections.abc import Iterator


def stanzas(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(first line number, fields)`` for each blank-line separated stanza of
    ``Key: value`` lines; continuation lines (leading space/tab) are appended to the
    previous field with a newline. Keys keep their case."""
    fields: dict[str, str] = {}
    start = 0
    last: str | None = None
    for lineno, line in enumerate(_lines(text), 1):
        if not line.strip():
            if fields:
                yield start, fields
            fields, last = {}, None
            continue
        if line[0] in " \t":
            if last is not None:
                fields[last] += "\n" + line.strip()
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if not fields:
            start = lineno
        last = key.strip()
        fields[last] = value.strip()
    if fields:
        yield start, fields


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` one at a time (no list of them all: a status file can hold millions)."""
    start, n = 0, len(text)
    while start < n:
        end = text.find("\n", start)
        if end < 0:
            end = n
        line = text[start:end]
        yield line[:-1] if line.endswith("\r") else line
        start = end + 1
