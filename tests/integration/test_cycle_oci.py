"""End to end against real Registry v2 servers (docker-registry on 127.0.0.1): `vulnwatch run`
with `type: oci` registries (no auth, basic auth), `vulnwatch scan` of a registry reference
with token auth from ~/.docker/config.json, and failures that stay per registry/image."""

from __future__ import annotations

import base64
import json
import shutil

import pytest
from typer.testing import CliRunner

from tests.support.registry import start_registry
from tests.support.servers import free_port
from tests.support.token_server import TokenServer, User
from vulnwatch.cli.main import app
from vulnwatch.examples import IMAGE_ARCHIVE, OSV_DIR

PASSWORD = "Basic-pw-s3cret!"
TOKEN_PW = "Token-pw-s3cret!"


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("oci-plain"))
    reg.push(f"docker-archive:{IMAGE_ARCHIVE}", "webapp", "1.0")
    reg.push(f"docker-archive:{IMAGE_ARCHIVE}", "webapp", "latest")      # same digest, second tag
    reg.push(f"docker-archive:{IMAGE_ARCHIVE}", "team/api", "2.0")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def basic(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("oci-basic"), users={"ci": PASSWORD}, push_creds=f"ci:{PASSWORD}")
    reg.push(f"docker-archive:{IMAGE_ARCHIVE}", "webapp", "1.0")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def token(tmp_path_factory):
    server = TokenServer({"admin": User("admin-pw", {"*": "pull,push"}, catalog=True),
                          "dev": User(TOKEN_PW, {"allowed": "pull"}, catalog=False)})
    reg = start_registry(tmp_path_factory.mktemp("oci-token"), token_server=server, push_creds="admin:admin-pw")
    reg.push(f"docker-archive:{IMAGE_ARCHIVE}", "allowed", "1.0")
    reg.push(f"docker-archive:{IMAGE_ARCHIVE}", "denied", "1.0")
    yield reg
    reg.stop()
    server.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.setenv("REG_PASSWORD", PASSWORD)
    return tmp_path


def write_config(home, registries: str) -> str:
    cfg = home / "vulnwatch.yaml"
    cfg.write_text(f"""
state: {{path: {home / 'state.db'}}}
vulndb:
  path: {home / 'osv.db'}
  imports: [{OSV_DIR / 'Debian'}, {OSV_DIR / 'PyPI'}]
registries:
{registries}
notifications:
  - name: out
    type: console
""")
    return str(cfg)


def cli(cfg, *args):
    return CliRunner().invoke(app, ["--config", cfg, *args], catch_exceptions=False)


def test_run_on_a_plain_registry_then_digests_already_seen_are_not_pulled(plain, home):
    cfg = write_config(home, f"""  - name: lab
    type: oci
    url: {plain.url}
    insecure: true
    repositories:
      - name: "*"
        tags: {{exclude: ["latest"]}}
""")
    r = cli(cfg, "run", "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["images"] == 2 and out["scanned"] == 2 and out["failures"] == []
    by_repo = {e["repository"]: e for e in out["events"]}
    assert set(by_repo) == {"webapp", "team/api"}
    assert by_repo["webapp"]["tags"] == ["1.0", "latest"] and by_repo["webapp"]["kind"] == "new_image"
    assert any(f["vulnerability_id"] == "CVE-2019-10906" for f in by_repo["webapp"]["added"])

    # Remove every layer blob from the registry's storage: a digest already seen is not pulled again.
    blobs = plain.rootdir / "docker" / "registry" / "v2" / "blobs"
    moved = home / "moved-blobs"
    shutil.copytree(blobs, moved)
    try:
        for data in blobs.rglob("data"):
            if data.stat().st_size > 4096:                  # layers (manifests and configs are small)
                data.unlink()
        r = cli(cfg, "run", "--format", "json")
        assert r.exit_code == 0, r.output
        out = json.loads(r.stdout)
        assert out["scanned"] == 2 and out["events"] == [] and out["failures"] == []
    finally:
        shutil.rmtree(blobs)
        shutil.copytree(moved, blobs)


def test_basic_auth_from_config_and_a_wrong_password_is_named_not_echoed(basic, home):
    cfg = write_config(home, f"""  - name: private
    type: oci
    url: {basic.url}
    insecure: true
    username: ci
    password: ${{REG_PASSWORD}}
""")
    r = cli(cfg, "run")
    assert r.exit_code == 0, r.output
    assert "1 images selected, 1 scanned, 1 change events" in r.stdout

    wrong = "Wrong-pw-value-123"
    cfg2 = write_config(home, f"""  - name: private
    type: oci
    url: {basic.url}
    insecure: true
    username: ci
    password: {wrong}
""")
    r = cli(cfg2, "--log-level", "DEBUG", "run")
    assert r.exit_code == 1
    assert "private" in r.stderr and ("401" in r.stderr or "unauthorized" in r.stderr.lower())
    assert wrong not in r.output + r.stderr and PASSWORD not in r.output + r.stderr


def test_scan_reference_with_token_auth_from_docker_config(token, home):
    (home / "docker").mkdir()
    auth = base64.b64encode(f"dev:{TOKEN_PW}".encode()).decode()
    (home / "docker" / "config.json").write_text(json.dumps({"auths": {token.host: {"auth": auth}}}))
    cfg = write_config(home, "  []").replace("registries:\n  []", "registries: []")
    r = cli(cfg, "scan", f"{token.host}/allowed:1.0", "--insecure", "--format", "json")
    assert r.exit_code == 0, r.output + r.stderr
    out = json.loads(r.stdout)
    assert out["distro"] == "Debian:11" and out["findings"]
    r = cli(cfg, "scan", f"{token.host}/denied:1.0", "--insecure")
    assert r.exit_code == 3
    assert "denied" in r.stderr and TOKEN_PW not in r.stderr


def test_a_registry_that_is_down_fails_alone(plain, home):
    down = f"http://127.0.0.1:{free_port()}"
    cfg = write_config(home, f"""  - name: gone
    type: oci
    url: {down}
    insecure: true
  - name: lab
    type: oci
    url: {plain.url}
    insecure: true
    repositories: [{{name: webapp}}]
""")
    r = cli(cfg, "run", "--format", "json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert out["scanned"] == 1
    assert [f["target"] for f in out["failures"]] == ["gone"]


@pytest.fixture(scope="module")
def multiarch(tmp_path_factory):
    from tests.registries.synthetic import write_index

    layout = tmp_path_factory.mktemp("multiarch") / "layout"
    status = (b"Package: zlib1g\nStatus: install ok installed\nArchitecture: %s\nSource: zlib\n"
              b"Version: 1:1.2.11.dfsg-2\n\n")
    os_release = b'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nID=debian\nVERSION_ID="11"\n'
    index_digest, per = write_index(layout, "multi", {
        "linux/amd64": {"etc/os-release": os_release, "var/lib/dpkg/status": status % b"amd64"},
        "linux/arm64": {"etc/os-release": os_release, "var/lib/dpkg/status": status % b"arm64"}})
    reg = start_registry(tmp_path_factory.mktemp("oci-multiarch"))
    reg.push(f"oci:{layout}:multi", "base", "1.0", all_platforms=True)
    yield reg, index_digest, per
    reg.stop()


def test_platform_all_scans_each_platform_of_an_index(multiarch, home):
    reg, index_digest, per = multiarch
    cfg = write_config(home, f"""  - name: lab
    type: oci
    url: {reg.url}
    insecure: true
    platform: all
""")
    r = cli(cfg, "run", "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["scanned"] == 2 and out["failures"] == []
    status = json.loads(cli(cfg, "status", "--format", "json").stdout)
    assert sorted((s["digest"], tuple(s["tags"])) for s in status) == sorted(
        (w.manifest_digest, (f"1.0 [{p}]",)) for p, w in per.items())
    assert {e["digest"] for e in out["events"]} == {w.manifest_digest for w in per.values()}   # zlib is vulnerable
    r = cli(cfg, "run", "--format", "json")
    assert json.loads(r.stdout)["events"] == []


def test_default_platform_scans_one_image_per_index(multiarch, home):
    reg, index_digest, per = multiarch
    cfg = write_config(home, f"""  - name: lab
    type: oci
    url: {reg.url}
    insecure: true
""")
    r = cli(cfg, "run", "--format", "json")
    assert r.exit_code == 0, r.output
    [status] = json.loads(cli(cfg, "status", "--format", "json").stdout)
    assert status["digest"] == index_digest and status["tags"] == ["1.0"]
