"""Properties of watch-list parsing: any file content gives a list of names or a TargetError
naming the file; never another exception."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vulnwatch.targets import TargetError, load_watch_list

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                    max_leaves=6)
NAMES = st.lists(st.one_of(st.sampled_from(["team/app", " base ", "", "  ", "a"]), st.text(max_size=8), JSON),
                 max_size=5)
CONTENT = st.one_of(
    NAMES.map(json.dumps).map(str.encode),
    JSON.map(json.dumps).map(str.encode),
    NAMES.map(json.dumps).map(lambda t: b"\xef\xbb\xbf" + t.encode()),              # BOM
    st.binary(max_size=30),
    NAMES.map(json.dumps).flatmap(lambda t: st.integers(0, len(t)).map(lambda n: t[:n].encode())),  # truncated
)

# json.loads failures that are not JSONDecodeError (once escaping as themselves): now TargetError.
FORMER_CRASHES = [
    pytest.param(b"[" * 100_000, id="deep-nesting-RecursionError"),
    pytest.param(b"[" + b"1" * 5000 + b"]", id="huge-integer-ValueError"),
]


def _load(raw: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "watch.json"
        path.write_bytes(raw)
        try:
            return load_watch_list(str(path))
        except TargetError as e:
            assert str(e).startswith(f"watch list {path}: ") and e.source == str(path)
            return None


@pytest.mark.parametrize("raw", FORMER_CRASHES)
def test_hostile_json_is_a_target_error(raw):
    assert _load(raw) is None      # TargetError naming the file (checked in _load)


@settings(max_examples=settings.default.max_examples * 3)
@given(CONTENT)
def test_watch_list_parsing_raises_only_target_error(raw):
    names = _load(raw)
    if names is not None:
        assert all(isinstance(n, str) and n and n == n.strip() for n in names)
        assert len(set(names)) == len(names)
        data = json.loads(raw.decode("utf-8-sig"))
        assert names == list(dict.fromkeys(item.strip() for item in data))
