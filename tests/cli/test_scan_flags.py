"""`vulnwatch scan` as Trivy and Grype users type it: severity lists and thresholds, exit codes,
-q, -o, --timeout, environment variables, and one line (never a traceback) when it cannot run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import vw

import vulnwatch

SRC = Path(vulnwatch.__file__).resolve().parents[1]
"""The source tree under test (a real process is started on it)."""


@pytest.fixture
def image(home) -> str:
    return f"docker-archive:{home.archive}"


@pytest.fixture
def cfg(home):
    return home.config()


def severities(result) -> list[str]:
    return sorted({f["severity"] for f in json.loads(result.stdout)["findings"]})


def test_severity_is_a_comma_list_and_the_threshold_has_its_own_name(cfg, image):
    # The example image has HIGH 1, MEDIUM 2, UNKNOWN 70 findings and no CRITICAL one.
    r = vw("-c", cfg, "scan", image, "-f", "json", "--severity", "HIGH,CRITICAL")
    assert r.exit_code == 0, r.output
    assert severities(r) == ["HIGH"]
    r = vw("-c", cfg, "scan", image, "-f", "json", "--severity", "medium")   # only MEDIUM: not a threshold
    assert severities(r) == ["MEDIUM"]
    r = vw("-c", cfg, "scan", image, "-f", "json", "--min-severity", "MEDIUM")
    assert severities(r) == ["HIGH", "MEDIUM"]
    r = vw("-c", cfg, "scan", image, "--severity", "HIGH,SEVERE")
    assert r.exit_code == 2 and "unknown severity 'SEVERE'" in r.stderr and "--severity" in r.stderr


def test_exit_code_alone_fails_when_findings_remain(cfg, image):
    assert vw("-c", cfg, "scan", image, "-q", "--exit-code", "5").exit_code == 5
    assert vw("-c", cfg, "scan", image, "-q", "--exit-code", "5", "--severity", "CRITICAL").exit_code == 0
    assert vw("-c", cfg, "scan", image, "-q").exit_code == 0                   # nothing asked: 0
    assert vw("-c", cfg, "scan", image, "-q", "--fail-on", "HIGH").exit_code == 1
    assert vw("-c", cfg, "scan", image, "-q", "--fail-on", "CRITICAL", "--exit-code", "9").exit_code == 0
    assert vw("-c", cfg, "scan", image, "-q", "--exit-code", "4", "--sbom").exit_code == 0


def test_output_file_quiet_and_grypes_dash_o(home, cfg, image):
    out = home.path / "report.json"
    r = vw("-c", cfg, "scan", image, "-f", "json", "-o", out)
    assert r.exit_code == 0 and r.stdout == ""
    assert json.loads(out.read_text())["findings"]
    assert f"report written to {out}" in r.stderr
    r = vw("-c", cfg, "scan", image, "-f", "json", "-o", out, "-q")
    assert r.exit_code == 0 and r.stderr == "" and r.stdout == ""
    r = vw("-c", cfg, "scan", image, "-o", "json")                     # Grype's "-o json"
    assert r.exit_code == 2 and not (home.path / "json").exists()
    assert "--format json" in r.stderr and "-o ./json" in r.stderr
    r = vw("-c", cfg, "scan", image, "-f", "sarif", "-o", "./json")    # a file called json, if one wants it
    assert r.exit_code == 0 and json.loads((home.path / "json").read_text())["version"] == "2.1.0"


def test_every_option_comes_from_a_vulnwatch_variable_too(cfg, image):
    r = vw("scan", image, env={"VULNWATCH_FORMAT": "json", "VULNWATCH_SEVERITY": "HIGH,CRITICAL",
                               "VULNWATCH_CONFIG": str(cfg)})
    assert r.exit_code == 0, r.output
    assert severities(r) == ["HIGH"]
    assert vw("scan", image, "-q", env={"VULNWATCH_EXIT_CODE": "6", "VULNWATCH_CONFIG": str(cfg)}).exit_code == 6
    r = vw("scan", image, "-f", "table", env={"VULNWATCH_FORMAT": "json", "VULNWATCH_CONFIG": str(cfg)})
    assert not r.stdout.lstrip().startswith("{")                           # the command line wins


def test_every_option_of_every_verb_has_its_environment_variable():
    from typer.main import get_command

    from vulnwatch.cli.main import app

    def walk(cmd, path=()):
        yield path, cmd
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            yield from walk(sub, path + (name,))

    seen = 0
    for path, cmd in walk(get_command(app)):
        for p in cmd.params:
            if p.param_type_name != "option" or p.name in ("help", "version"):
                continue
            seen += 1
            longest = max((o for o in p.opts if o.startswith("--")), key=len)
            assert p.envvar == "VULNWATCH_" + longest[2:].upper().replace("-", "_"), (path, p.opts, p.envvar)
    assert seen > 30


def test_timeout_bounds_the_whole_scan(cfg):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)                                     # accepts connections, never answers
    host = f"127.0.0.1:{silent.getsockname()[1]}"
    try:
        r = vw("-c", cfg, "scan", f"{host}/team/app:1.0", "--insecure", "--timeout", "1s")
        assert r.exit_code == 3
        assert r.stderr.strip() == f"scan of {host}/team/app:1.0 did not finish within 1s (--timeout)"
        r = vw("-c", cfg, "scan", f"{host}/team/app:1.0", "--timeout", "soon")
        assert r.exit_code == 2 and "bad duration 'soon'" in r.stderr
    finally:
        silent.close()


def test_could_not_run_has_its_own_exit_code_and_no_traceback(home, cfg, image):
    """In a real process: `-o` into a folder that does not exist printed a traceback and exited 1
    (the code of "findings found")."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "XDG_CACHE_HOME": str(home.path / "cache")}
    proc = subprocess.run([sys.executable, "-c", "from vulnwatch.cli.main import main; main()", "scan", image,
                           "-c", str(cfg), "-o", "/nonexistent/dir/out.json"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 3
    assert proc.stderr.strip() == "cannot write the report to /nonexistent/dir/out.json: no such folder /nonexistent/dir"
    assert "Traceback" not in proc.stderr + proc.stdout


def test_messages_name_the_input_once_and_hint_the_next_step(home, cfg):
    down = f"127.0.0.1:{_free_port()}"
    r = vw("-c", cfg, "scan", f"{down}/team/app:1.0", "--insecure")
    assert r.exit_code == 3
    assert r.stderr.startswith(f"cannot open {down}/team/app:1.0: cannot reach http://{down}")
    assert r.stderr.count(f"{down}/team/app") == 1                          # not "X: X: cannot reach"
    r = vw("-c", cfg, "scan", home.archive.name)                             # a bare archive name
    assert r.exit_code == 3
    assert f"write docker-archive:{home.archive.name}" in r.stderr and "Docker Hub" not in r.stderr
    r = vw("-c", cfg, "scan", "./nothing-here.tar")
    assert r.exit_code == 3 and "no such file: ./nothing-here.tar" in r.stderr


def test_a_plain_http_registry_gets_the_insecure_hint(home, cfg):
    from tests.support.registry import start_registry
    from vulnwatch.examples import IMAGE_ARCHIVE

    reg = start_registry(home.path / "registry")
    try:
        reg.push(f"docker-archive:{IMAGE_ARCHIVE}", "team/webapp", "1.0")
        r = vw("-c", cfg, "scan", f"{reg.host}/team/webapp:1.0", "-q")
        assert r.exit_code == 3
        assert f"{reg.host} answers plain HTTP: add --insecure" in r.stderr
        r = vw("-c", cfg, "scan", f"{reg.host}/team/webapp:1.0", "-q", "--insecure", "-f", "json")
        assert r.exit_code == 0 and json.loads(r.stdout)["findings"]
    finally:
        reg.stop()


def test_tables_are_whole_when_not_on_a_terminal(cfg, image):
    r = vw("-c", cfg, "scan", image, "--severity", "HIGH")
    title = ("urllib3 is a user-friendly HTTP client library for Python. urllib3 doesn't treat the `Cookie` HTTP "
             "header special")
    assert title in r.stdout                                  # cut at 80 columns ("urllib3 is a u…") before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

