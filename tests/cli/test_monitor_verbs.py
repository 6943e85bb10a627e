"""The monitor's verbs as people and scripts use them: --config after the verb, --format json
everywhere (and an unknown format an error), secrets resolved only where used, every config
problem at once, whole tables off a terminal, delivery state and progress, exit codes."""

from __future__ import annotations

import json
import re

import pytest

from tests.cli.conftest import vw
from vulnwatch.examples import OSV_DIR


def test_config_is_accepted_after_the_verb(home):
    cfg = home.config()
    assert vw("-c", cfg, "run", "-q").exit_code == 0
    r = vw("status", "--format", "json", "--config", cfg)          # "No such option: --config" before
    assert r.exit_code == 0, r.output
    [row] = json.loads(r.stdout)
    assert row["repository"] == "example/webapp"
    r = vw("db", "status", "-f", "json", "-c", cfg)
    assert r.exit_code == 0 and json.loads(r.stdout)["path"] == str(home.path / "osv.db")
    other = home.config(state=home.path / "other.db", name="other.yaml")
    for args in (["-c", cfg, "status"], ["status", "-c", cfg]):       # the command line wins over the variable
        r = vw(*args, "-f", "json", env={"VULNWATCH_CONFIG": str(other)})
        assert [row["repository"] for row in json.loads(r.stdout)] == ["example/webapp"], args
    assert json.loads(vw("status", "-f", "json", env={"VULNWATCH_CONFIG": str(other)}).stdout) == []


def test_every_printing_verb_speaks_json_and_refuses_unknown_formats(home):
    cfg = home.config()
    r = vw("-c", cfg, "check-config", "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["ok"] is True and out["problems"] == [] and out["config"] == str(cfg)
    assert any(line.startswith("registry local (archive)") for line in out["summary"])
    r = vw("-c", cfg, "db", "status", "--format", "json")
    assert r.exit_code == 0 and isinstance(json.loads(r.stdout)["sources"], list)
    r = vw("-c", cfg, "db", "import", OSV_DIR / "PyPI", "--no-rematch", "--format", "json")
    assert r.exit_code == 0, r.output
    [imported] = json.loads(r.stdout)["results"]
    assert imported["path"] == str(OSV_DIR / "PyPI") and imported["imported"] > 0
    for verb in (["status"], ["events"], ["check-config"], ["db", "status"], ["run"]):
        r = vw("-c", cfg, *verb, "-f", "yaml")                    # a table and exit 0 before
        assert r.exit_code == 2, (verb, r.output)
        assert "'yaml' is not one of 'table', 'json'" in r.stderr and r.stdout == ""


def test_events_json_carries_the_summary_and_the_whole_event(home):
    cfg = home.config()
    assert vw("-c", cfg, "run", "-q").exit_code == 0
    r = vw("-c", cfg, "events", "-f", "json")
    [row] = json.loads(r.stdout)
    assert row["summary"].startswith("new image: +73 new")
    data = row["data"]
    assert data["id"] == row["event"] and data["kind"] == "new_image"
    assert len(data["added"]) == 73 and {"vulnerability_id", "severity", "package_name"} <= set(data["added"][0])


def test_read_only_verbs_need_no_secret_they_do_not_use(home):
    cfg = home.config(notifications="  - {name: chat, type: slack, url: '${SLACK_URL}'}")
    for verb in (["status"], ["events"], ["db", "status"], ["scan", f"docker-archive:{home.archive}", "--sbom"]):
        r = vw("-c", cfg, *verb, "-q")
        assert r.exit_code == 0, (verb, r.output)                 # "SLACK_URL is not set", exit 2 before
        assert "SLACK_URL" not in r.stderr
    for verb in (["check-config"], ["run"], ["events", "--retry-dead"]):
        r = vw("-c", cfg, *verb)
        assert r.exit_code == 2, verb
        assert re.search(r"vulnwatch\.yaml:\d+: notifications\[0\]\.url: environment variable SLACK_URL is not set",
                         r.stderr), r.stderr


def test_check_config_reports_every_problem_at_once_with_paths_that_must_exist(home):
    cfg = home.config(registries=f"""  - name: local
    type: archive
    path: {home.path / 'missing.tar'}
    scan: {{interval: 10x}}""", notifications="  - {name: chat, type: slack, url: '${SLACK_URL}', max_listd: 3}")
    r = vw("-c", cfg, "check-config")
    assert r.exit_code == 2
    problems = [line for line in r.stderr.splitlines() if line.startswith(str(cfg))]
    keys = [line.split(": ")[1] for line in problems]
    assert keys == ["registries[0].scan.interval", "notifications[0].url", "notifications[0].max_listd"]
    assert "ms, s, m, h, d or w" in problems[0]                     # every unit the docs allow
    assert "did you mean 'max_listed'" in problems[2]
    # once those are fixed, what needs the file system: the archive that is not there
    cfg = home.config(registries=f"  - {{name: local, type: archive, path: {home.path / 'missing.tar'}}}")
    r = vw("-c", cfg, "check-config", "--format", "json")
    assert r.exit_code == 2
    [p] = json.loads(r.stdout)["problems"]
    assert p["key"] == "registries[0].path" and p["line"] == 6 and str(home.path / "missing.tar") in p["message"]


def test_tables_show_whole_values_off_a_terminal(home):
    cfg = home.config(registries=f"""  - {{name: local, type: archive, path: {home.archive}}}
  - {{name: broken-archive-with-a-long-name, type: archive, path: {home.path / 'broken.tar'}}}""")
    (home.path / "broken.tar").write_bytes(home.archive.read_bytes()[:60000])
    assert vw("-c", cfg, "run", "-q").exit_code == 1
    r = vw("-c", cfg, "status")
    row = next(line for line in r.stdout.splitlines() if "example/webapp" in line and "local" in line)
    digest = json.loads(vw("-c", cfg, "status", "-f", "json").stdout)[0]["digest"]
    assert digest in row                                             # the whole digest, not 12 characters
    assert "…" not in r.stdout                                      # nothing cut at 80 columns
    assert max(len(line) for line in r.stdout.splitlines()) > 120


def test_a_delivery_made_after_retry_dead_shows_no_old_error(home, receiver):
    receiver.responses.append((404, {}, b"no such hook"))          # permanent: dead at once
    cfg = home.config(notifications=f"  - {{name: hook, type: webhook, url: '{receiver.url}/hook'}}")
    r = vw("-c", cfg, "run", "-q")
    assert r.exit_code == 1 and "1 dead-lettered" in r.stdout
    dead = vw("-c", cfg, "events", "--dead")
    assert "404" in dead.stdout
    r = vw("-c", cfg, "events", "--retry-dead")
    assert r.exit_code == 0 and "1 dead letters re-queued; 1 delivered" in r.stdout
    r = vw("-c", cfg, "events")
    row = next(line for line in r.stdout.splitlines() if "hook" in line)
    assert "delivered" in row and "404" not in row
    [j] = json.loads(vw("-c", cfg, "events", "-f", "json").stdout)
    assert j["status"] == "delivered" and j["last_error"] is None


def test_progress_is_shown_while_slack_is_paced(home, receiver):
    regs = "\n".join(f"  - {{name: copy{i}, type: archive, path: {home.archive}}}" for i in range(3))
    cfg = home.config(registries=regs, notifications=f"  - {{name: chat, type: slack, url: '{receiver.url}/slack'}}")
    r = vw("-c", cfg, "run", env={"TTY_COMPATIBLE": "1", "COLUMNS": "100"})
    assert r.exit_code == 0, r.output
    assert len(receiver.requests) == 3                              # one a second: Slack's pace
    assert "delivering notifications" in r.stderr


def test_exit_codes_are_documented_per_verb():
    help_ = vw("--help").stdout
    for code in ("0", "1", "2", "3", "130"):
        assert re.search(rf"^\s+{code}\s+\w", help_, re.M), code
    for verb in (["run"], ["status"], ["events"], ["check-config"], ["scan"], ["db", "update"], ["db", "import"],
                 ["db", "status"]):
        text = vw(*verb, "--help").stdout
        assert "Exit codes:" in text and re.search(r"^\s+0\s+\w", text, re.M), verb


def test_a_state_store_that_cannot_be_used_is_one_line_and_exit_3(home):
    cfg = home.config(state=f"{home.archive}/state.db")             # under a file: cannot be created
    r = vw("-c", cfg, "status")
    assert r.exit_code == 3
    assert r.stderr.startswith("error: state store") and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("value", ["verbose", "loud"])
def test_an_invalid_log_level_is_a_clear_error(value):
    r = vw("--log-level", value, "status")
    assert r.exit_code == 2
    assert f"unknown log level {value!r}: use one of DEBUG, INFO, WARNING, ERROR" in r.stderr
