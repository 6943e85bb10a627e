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
    for lineno, line in enumerate(text.splitlines(), 1):
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
