"""Malformed watch lists and hostile YAML: a clear error naming the file (and line), quickly,
in ``check-config`` and in ``run`` (where a bad watch list fails its registry only)."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from vulnwatch.cli.main import app
from vulnwatch.config.loader import MAX_VALUES
from vulnwatch.examples import IMAGE_ARCHIVE, OSV_DIR

LAUGHS = "\n".join(
    [f'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]) + "\n"
MERGES = "\n".join(
    ["m0: &m0 {" + ", ".join(f"k{j}: {j}" for j in range(9)) + "}"]
    + [f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 9)}]}}" for i in range(1, 9)]) + "\n"
KEY_BOMB = LAUGHS + "? *a9\n: 1\n"


def cli(*args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize("text", [LAUGHS, MERGES, KEY_BOMB], ids=["aliases", "merge-keys", "alias-as-key"])
@pytest.mark.parametrize("verb", ["check-config", "run"])
def test_an_alias_bomb_is_refused_fast_and_named(tmp_path, text, verb):
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(text)
    started = time.monotonic()
    result = cli("--config", str(cfg), verb)
    took = time.monotonic() - started
    assert took < 10, f"{verb} took {took:.1f}s on an alias bomb"
    assert result.exit_code == 2, result.output
    text_out = result.output
    assert "bomb.yaml:" in text_out and "alias" in text_out and str(MAX_VALUES) in text_out, text_out


def test_a_document_with_many_real_values_still_loads(tmp_path):
    # 40 registries each with 50 repositories: real files stay far below the bound
    regs = "\n".join(f"  - {{name: r{i}, type: archive, path: {IMAGE_ARCHIVE}, repositories: ["
                     + ", ".join(f"{{name: team/app{j}}}" for j in range(50)) + "]}" for i in range(40))
    cfg = tmp_path / "big.yaml"
    cfg.write_text(f"registries:\n{regs}\n")
    result = cli("--config", str(cfg), "check-config", "--format", "json")
    assert result.exit_code == 0, result.output


WATCH_LISTS = {
    "object": ('{"repositories": ["team/app"]}', "expected a JSON array of repository names, got an object"),
    "string": ('"team/app"', "expected a JSON array of repository names, got a string"),
    "bad-json": ('["team/app",\n  "base"', "invalid JSON at line 2"),
    "numbers": ("[1, 2]", "item [0] is a number"),
}


def _config(tmp_path, watch_list) -> str:
    cfg = tmp_path / "vulnwatch.yaml"
    cfg.write_text(f"""
state: {{path: {tmp_path / 'state.db'}}}
vulndb: {{path: {tmp_path / 'osv.db'}, imports: [{OSV_DIR / 'Debian'}, {OSV_DIR / 'PyPI'}]}}
layer_cache: {{enabled: false}}
registries:
  - name: listed
    type: archive
    path: {IMAGE_ARCHIVE}
    watch_list: {watch_list}
  - name: plain
    type: archive
    path: {IMAGE_ARCHIVE}
notifications: [{{name: out, type: console}}]
""")
    return str(cfg)


@pytest.mark.parametrize("kind", sorted(WATCH_LISTS))
def test_a_malformed_watch_list_is_a_problem_for_check_config(tmp_path, kind):
    content, words = WATCH_LISTS[kind]
    wl = tmp_path / "watch.json"
    wl.write_text(content)
    cfg = _config(tmp_path, wl)
    result = cli("--config", cfg, "check-config", "--format", "json")
    assert result.exit_code == 2, result.output
    doc = json.loads(result.stdout)
    assert not doc["ok"]
    [problem] = doc["problems"]
    assert problem["file"].endswith("vulnwatch.yaml") and problem["line"] == 9
    assert problem["key"] == "registries[0].watch_list"
    assert str(wl) in problem["message"] and words in problem["message"], problem


def test_a_missing_watch_list_is_a_problem_for_check_config(tmp_path):
    cfg = _config(tmp_path, tmp_path / "nowhere.json")
    result = cli("--config", cfg, "check-config", "--format", "json")
    assert result.exit_code == 2
    [problem] = json.loads(result.stdout)["problems"]
    assert "nowhere.json" in problem["message"] and problem["key"] == "registries[0].watch_list"


@pytest.mark.parametrize("kind", ["object", "bad-json"])
def test_a_malformed_watch_list_fails_its_registry_only(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    content, words = WATCH_LISTS[kind]
    wl = tmp_path / "watch.json"
    wl.write_text(content)
    result = cli("--config", _config(tmp_path, wl), "run", "--format", "json")
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout[result.stdout.index("{"):])
    [failure] = out["failures"]
    assert failure["target"] == "listed" and str(wl) in failure["error"] and words in failure["error"]
    assert failure["code"] == "WatchListError"
    assert out["scanned"] == 1 and [e["registry"] for e in out["events"]] == ["plain"]


def test_limits_read_sizes_and_durations(load):
    cfg = load("""
        limits: {max_manifest_bytes: 2MiB, max_metadata_bytes: 300MB, zip_max_inflated_bytes: 1073741824,
                 cycle_timeout: 30m, delivery_timeout: 2m, read_timeout: 500ms}
        """)
    lim = cfg.limits
    assert lim.max_manifest_bytes == 2 * 1024 * 1024 and lim.max_metadata_bytes == 300 * 10**6
    assert lim.zip_max_inflated_bytes == 1024**3 and lim.read_timeout.total_seconds() == 0.5


@pytest.mark.parametrize("text,words", [
    ("limits: {max_manifest_bytes: lots}", "bad size 'lots'"),
    ("limits: {max_manifest_bytes: 10}", "greater than or equal to 1024"),
    ("limits: {cycle_timeout: 5m, delivery_timeout: 10m}", "must be less than cycle_timeout"),
    ("limits: {image_timeout: 0s}", "greater than zero"),
    ("limits: {max_packges: 5}", "max_packages"),          # did you mean
])
def test_bad_limits_are_named_with_their_line(config_error, text, words):
    err = config_error(text)
    assert "vulnwatch.yaml:1: limits." in str(err) and words in str(err), str(err)
