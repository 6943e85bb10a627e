"""`vulnwatch run` against registries that do not list their repositories, as GHCR, Docker Hub,
GitLab and Harbor robot accounts do: a real docker-registry behind a real HTTP front that refuses
`/v2/_catalog` (404, or 401 with a bearer challenge as Docker Hub), and a token server that gives
anonymous pull tokens for public repositories as Docker Hub's does."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import vw
from tests.registries.conftest import start_proxy
from tests.support.registry import start_registry
from tests.support.token_server import TokenServer, User
from vulnwatch.examples import IMAGE_ARCHIVE

BOT_TOKEN = "ghp-Bot-token-s3cret"


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("nocat-plain"))
    reg.push(f"docker-archive:{IMAGE_ARCHIVE}", "team/webapp", "1.0")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """Token auth like Docker Hub / GHCR: `library/*` public (anonymous pulls), `acme/private`
    for the bot only, and no one is granted the catalog."""
    server = TokenServer({"admin": User("admin-pw", {"*": "pull,push"}, catalog=True),
                          "bot": User(BOT_TOKEN, {"acme/*": "pull"}, catalog=False)},
                         public=("library/*",))
    reg = start_registry(tmp_path_factory.mktemp("nocat-hub"), token_server=server, push_creds="admin:admin-pw")
    reg.push(f"docker-archive:{IMAGE_ARCHIVE}", "library/webapp", "1.0")
    reg.push(f"docker-archive:{IMAGE_ARCHIVE}", "acme/private", "2.0")
    yield reg, server
    reg.stop()
    server.close()


@pytest.fixture
def no_catalog(plain):
    proxy = start_proxy(plain.url, refuse_catalog=404)
    yield proxy
    proxy.httpd.shutdown()
    proxy.httpd.server_close()


def _oci(url: str, repositories: str, extra: str = "") -> str:
    return f"""  - name: lab
    type: oci
    url: {url}
    insecure: true
{extra}    repositories: {repositories}"""


def test_exact_names_go_straight_to_tags_list(home, no_catalog):
    # Before: "failed lab: listing repositories (/v2/_catalog) failed: HTTP 404", 0 images.
    cfg = home.config(registries=_oci(no_catalog.url, "[{name: team/webapp}]"))
    r = vw("-c", cfg, "run", "--format", "json")
    out = json.loads(r.stdout)
    assert r.exit_code == 0, r.output
    assert (out["images"], out["scanned"], out["failures"]) == (1, 1, [])
    assert out["events"][0]["repository"] == "team/webapp"
    paths = [p for _, p, _ in no_catalog.requests]
    assert not any(p.startswith("/v2/_catalog") for p in paths)
    assert any(p.startswith("/v2/team/webapp/tags/list") for p in paths)


def test_a_glob_without_a_catalog_is_a_clear_error_and_exact_names_still_run(home, no_catalog):
    cfg = home.config(registries=_oci(no_catalog.url, '[{name: "team/*"}, {name: team/webapp}]'))
    r = vw("-c", cfg, "run")
    assert r.exit_code == 1
    assert "1 images selected, 1 scanned" in r.stdout                       # the exact name was scanned
    [line] = [ln for ln in r.stderr.splitlines() if "failed lab" in ln]
    assert "does not list its repositories (GET /v2/_catalog answered 404)" in line
    assert "'team/*'" in line and "name the repositories exactly" in line and "watch_list" in line
    assert "lab: " not in line.split("failed lab", 1)[1]                    # the target is said once


def test_a_watch_list_needs_no_catalog(home, no_catalog):
    (home.path / "watch.json").write_text('["team/webapp"]')
    cfg = home.config(registries=_oci(no_catalog.url, '[{name: "team/*"}]', "    watch_list: watch.json\n"))
    r = vw("-c", cfg, "run", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["scanned"] == 1


def test_a_configured_repository_that_does_not_exist_is_a_warning(home, no_catalog):
    cfg = home.config(registries=_oci(no_catalog.url, "[{name: team/webapp}, {name: team/gone}]"))
    r = vw("-c", cfg, "run")
    assert r.exit_code == 0, r.output                                       # not a failed run
    assert "1 scanned, 1 change events, 0 failures, 1 warnings" in r.stdout
    [line] = [ln for ln in r.stderr.splitlines() if "team/gone" in ln]
    assert line.strip().startswith("warning lab/team/gone: repository not found")
    assert "named in the configuration" in line
    r = vw("-c", cfg, "run", "--format", "json")
    out = json.loads(r.stdout)
    assert out["failures"] == [] and [w["target"] for w in out["warnings"]] == ["lab/team/gone"]


def test_docker_hub_like_anonymous_pulls_without_catalog(home, hub):
    reg, server = hub
    proxy = start_proxy(reg.url, refuse_catalog=401)
    try:
        cfg = home.config(registries=_oci(proxy.url, "[{name: library/webapp}]"))
        server.clear()
        r = vw("-c", cfg, "run", "--format", "json")
        assert r.exit_code == 0, r.output
        out = json.loads(r.stdout)
        assert out["scanned"] == 1 and out["events"][0]["repository"] == "library/webapp"
        assert server.requests and all(user is None for user, _ in server.requests)     # anonymous tokens
        assert (None, ("repository:library/webapp:pull",)) in server.requests

        # the glob: Docker Hub's 401 to the catalog is "does not list", not "wrong password"
        cfg = home.config(registries=_oci(proxy.url, '[{name: "library/*"}]'))
        r = vw("-c", cfg, "run")
        assert r.exit_code == 1
        assert "does not list its repositories (GET /v2/_catalog answered 401" in r.stderr
    finally:
        proxy.httpd.shutdown()
        proxy.httpd.server_close()


def test_docker_hub_like_401_for_a_repository_not_granted_is_a_warning(home, hub):
    """Docker Hub answers a repository that does not exist with 401 to the anonymous token it
    issued without pull, never 404: a warning naming the repository, the others still run."""
    reg, server = hub
    proxy = start_proxy(reg.url, refuse_catalog=401)
    try:
        cfg = home.config(registries=_oci(proxy.url, "[{name: library/webapp}, {name: acme/gone}]"))
        r = vw("-c", cfg, "run", "--format", "json")
        assert r.exit_code == 0, r.output
        out = json.loads(r.stdout)
        assert out["scanned"] == 1 and out["failures"] == []
        [warning] = out["warnings"]
        assert warning["target"] == "lab/acme/gone"
        assert "repository not found, or not pullable with no credentials configured" in warning["error"]
        assert "tags/list answered 401" in warning["error"]
    finally:
        proxy.httpd.shutdown()
        proxy.httpd.server_close()


def test_ghcr_like_token_flow_with_a_bot_token(home, hub, monkeypatch):
    reg, server = hub
    proxy = start_proxy(reg.url, refuse_catalog=404)
    monkeypatch.setenv("GHCR_TOKEN", BOT_TOKEN)
    try:
        cfg = home.config(registries=_oci(proxy.url, "[{name: acme/private}, {name: library/webapp}]",
                                          "    username: bot\n    password: ${GHCR_TOKEN}\n"))
        server.clear()
        r = vw("-c", cfg, "run", "--format", "json")
        assert r.exit_code == 0, r.output
        out = json.loads(r.stdout)
        assert sorted(e["repository"] for e in out["events"]) == ["acme/private", "library/webapp"]
        assert {user for user, _ in server.requests} == {"bot"}
        assert BOT_TOKEN not in r.stdout + r.stderr
    finally:
        proxy.httpd.shutdown()
        proxy.httpd.server_close()


def test_known_catalog_less_hosts_need_exact_names_and_docker_hub_conventions(home):
    cfg = home.config(registries="""  - {name: gh, type: oci, url: https://ghcr.io, repositories: [{name: "acme/*"}]}
  - {name: hub, type: oci, url: https://docker.io, repositories: [{name: debian}, {name: bitnami/redis}]}""")
    r = vw("-c", cfg, "check-config")
    assert r.exit_code == 2
    assert f"{cfg}:6: registries[0].repositories[0].name: glob 'acme/*': GHCR does not list its repositories" \
        in r.stderr
    cfg = home.config(registries="""  - {name: hub, type: oci, url: https://docker.io, repositories: [{name: debian}, {name: bitnami/redis}]}""")
    r = vw("-c", cfg, "check-config", "--format", "json")
    assert r.exit_code == 0, r.output
    summary = "\n".join(json.loads(r.stdout)["summary"])
    assert "registry hub (oci): https://docker.io" in summary
    assert "repositories: library/debian (tags +*); bitnami/redis (tags +*)" in summary


def test_docker_hub_api_host_and_library_prefix():
    from types import SimpleNamespace

    from vulnwatch.registries.oci import OCIRegistry

    cfg = SimpleNamespace(name="hub", url="https://docker.io", username=None, password=None, insecure=False,
                          platform="linux/amd64")
    reg = OCIRegistry.from_config(cfg)
    try:
        assert reg.base_url == "https://registry-1.docker.io" and reg.docker_hub
        assert reg.canonical_repository("debian") == "library/debian"
        assert reg.canonical_repository("bitnami/redis") == "bitnami/redis"
    finally:
        reg.close()
    other = OCIRegistry("lab", "https://ghcr.io")
    assert not other.docker_hub and other.canonical_repository("app") == "app"
    other.close()
