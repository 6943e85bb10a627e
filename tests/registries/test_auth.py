"""Authentication against real registries: basic (htpasswd), token (our token server), docker config."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from tests.registries.conftest import BASIC_PASSWORD, TOKEN_PASSWORD
from vulnwatch.registries.auth import (Credentials, credential_helper, docker_config_credentials, ecr_credentials,
                                       parse_challenge)
from vulnwatch.registries.interface import CatalogUnavailableError, RegistryError
from vulnwatch.registries.oci import OCIRegistry


def basic(url: str, password: str = BASIC_PASSWORD, **kw) -> OCIRegistry:
    return OCIRegistry("private", url, insecure=True, credentials=Credentials("alice", password), **kw)


# ---------------------------------------------------------------------------- basic


def test_basic_auth_good_password(basic_registry, images):
    reg = basic(basic_registry.url)
    assert list(reg.repositories()) == ["app"]
    [img] = list(reg.images("app"))
    assert img.digest == images.v1.manifest_digest and img.tags == ("v1",)
    m = reg.manifest("app", "v1")
    with reg.blob("app", m.layers[0].digest) as f:
        assert f.read() == images.v1.layer_bytes[0]


def test_basic_auth_bad_password_is_named_and_secret_hidden(basic_registry):
    wrong = "wrong-Password-123"
    reg = basic(basic_registry.url, password=wrong)
    with pytest.raises(RegistryError) as e:
        list(reg.images("app"))
    msg = str(e.value)
    assert msg.startswith("private/app")
    assert "401" in msg and "unauthorized" in msg.lower()
    assert "alice" in msg
    assert wrong not in msg and wrong not in repr(e.value)
    assert wrong not in repr(reg) and wrong not in repr(reg.auth)


def test_no_credentials_on_basic_registry(basic_registry):
    reg = OCIRegistry("private", basic_registry.url, insecure=True)
    with pytest.raises(RegistryError, match="401 unauthorized.*no credentials configured"):
        reg.manifest("app", "v1")


def test_credentials_repr_hides_secrets():
    c = Credentials("bob", "hunter2-secret", identity_token="tok-secret")
    for text in (repr(c), str(c), f"{c}", repr([c])):
        assert "hunter2-secret" not in text and "tok-secret" not in text
        assert "bob" in text


# ---------------------------------------------------------------------------- token


def token_reg(registry, user="alice", password=TOKEN_PASSWORD):
    return OCIRegistry("tok", registry.url, insecure=True, credentials=Credentials(user, password))


def test_token_auth_reads_allowed_repository_with_one_token(token_registry, token_server, images):
    token_server.clear()
    reg = token_reg(token_registry)
    found = {i.digest: i.tags for i in reg.images("repo-a")}
    assert found == {images.v1.manifest_digest: ("also-v1", "v1"), images.v2.manifest_digest: ("v2",)}
    m = reg.manifest("repo-a", "v2")
    with reg.blob("repo-a", m.layers[0].digest) as f:
        assert f.read() == images.v2.layer_bytes[0]
    # tags list + 3 HEADs + manifest + blob: a single token for the single scope
    assert token_server.requests == [("alice", ("repository:repo-a:pull",))]
    assert reg.auth.token_requests == 1


def test_token_scope_denied_for_other_repository(token_registry, token_server):
    reg = token_reg(token_registry)
    with pytest.raises(RegistryError) as e:
        reg.manifest("repo-b", "v1")
    msg = str(e.value)
    assert msg.startswith("tok/repo-b:v1")
    assert "401" in msg and "repository:repo-b:pull" in msg
    assert TOKEN_PASSWORD not in msg


def test_token_catalog_needs_catalog_scope(token_registry, token_server):
    with pytest.raises(CatalogUnavailableError, match="registry:catalog:\\* to user 'alice'") as e:
        list(token_reg(token_registry).repositories())
    assert str(e.value).startswith("tok: the registry does not list its repositories (GET /v2/_catalog answered 401")
    admin = token_reg(token_registry, "admin", "admin-pw")
    assert list(admin.repositories()) == ["repo-a", "repo-b"]
    assert ("admin", ("registry:catalog:*",)) in token_server.requests


def test_token_endpoint_rejects_bad_password(token_registry):
    reg = token_reg(token_registry, password="not-the-password")
    with pytest.raises(RegistryError) as e:
        list(reg.tags("repo-a"))
    msg = str(e.value)
    assert "token endpoint" in msg and "401" in msg and "alice" in msg
    assert "not-the-password" not in msg


def test_token_realm_over_http_refused_unless_insecure(token_registry):
    # the registry itself is plain HTTP here, so reach it through a client that allows it
    # but tell the auth layer the realm must be https
    reg = token_reg(token_registry)
    reg.auth._allow_http_realm = False
    with pytest.raises(RegistryError, match="not https"):
        list(reg.tags("repo-a"))


def test_parse_challenge():
    c = parse_challenge('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.example/token", "service": "reg", "scope": "repository:a/b:pull"}
    assert parse_challenge('Basic realm="x"').scheme == "basic"
    assert parse_challenge("") is None


# ---------------------------------------------------------------------------- redirects


def test_credentials_not_sent_to_redirect_host(basic_registry, make_proxy, make_blob_store, images):
    store = make_blob_store(basic_registry.url, auth=("alice", BASIC_PASSWORD))
    proxy = make_proxy(basic_registry.url, blob_store=store)
    reg = basic(proxy.url)
    m = reg.manifest("app", "v1")
    with reg.blob("app", m.layers[0].digest) as f:
        assert f.read() == images.v1.layer_bytes[0]
    assert len(store.requests) == 1
    assert "authorization" not in store.requests[0]
    blob_gets = [h for meth, p, h in proxy.requests if "/blobs/" in p]
    assert blob_gets and all(h.get("authorization", "").startswith("Basic ") for h in blob_gets)


# ---------------------------------------------------------------------------- docker config


@pytest.fixture
def docker_config(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    (tmp_path / "docker").mkdir()

    def write(data: dict) -> None:
        (tmp_path / "docker" / "config.json").write_text(json.dumps(data))
    return write


@pytest.fixture
def helper_on_path(tmp_path, monkeypatch):
    """A real ``docker-credential-test`` program on PATH answering for one host."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "helper.log"

    def install(host: str, user: str, secret: str) -> Path:
        script = bindir / "docker-credential-test"
        script.write_text(f"""#!/bin/sh
[ "$1" = get ] || exit 2
read server
echo "$server" >> {log}
if [ "$server" = "{host}" ]; then
  printf '{{"ServerURL":"%s","Username":"{user}","Secret":"{secret}"}}' "$server"
else
  echo "credentials not found in native keychain"; exit 1
fi
""")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
        return log
    return install


def test_docker_config_auths(basic_registry, docker_config, images):
    auth = base64.b64encode(f"alice:{BASIC_PASSWORD}".encode()).decode()
    docker_config({"auths": {"other.example": {"auth": "eDp5"}, f"http://{basic_registry.host}/v1/": {"auth": auth}}})
    creds = docker_config_credentials(basic_registry.host)
    assert creds.username == "alice" and creds.source == "docker-config"
    reg = OCIRegistry("private", basic_registry.url, insecure=True, credentials=creds)
    assert [i.digest for i in reg.images("app")] == [images.v1.manifest_digest]
    assert docker_config_credentials("nowhere.example") is None


def test_docker_config_cred_helper(basic_registry, docker_config, helper_on_path, images):
    log = helper_on_path(basic_registry.host, "alice", BASIC_PASSWORD)
    docker_config({"credHelpers": {basic_registry.host: "test"},
                   "auths": {basic_registry.host: {"auth": base64.b64encode(b"alice:wrong").decode()}}})
    creds = docker_config_credentials(basic_registry.host)
    assert creds.source == "docker-credential-test" and BASIC_PASSWORD not in repr(creds)
    assert log.read_text().split() == [basic_registry.host]
    reg = OCIRegistry("private", basic_registry.url, insecure=True, credentials=creds)
    assert [i.tags for i in reg.images("app")] == [("v1",)]


def test_docker_config_creds_store_and_not_found(docker_config, helper_on_path):
    helper_on_path("known.example:5000", "carol", "pw-carol")
    docker_config({"credsStore": "test"})
    assert docker_config_credentials("known.example:5000").password == "pw-carol"
    assert docker_config_credentials("unknown.example") is None


def test_missing_helper_is_a_clear_error(docker_config):
    docker_config({"credHelpers": {"reg.example": "does-not-exist"}})
    with pytest.raises(RegistryError, match="docker-credential-does-not-exist.*not on PATH"):
        docker_config_credentials("reg.example")


def test_helper_token_answer(helper_on_path):
    helper_on_path("tok.example", "<token>", "identity-tok")
    creds = credential_helper("test", "tok.example")
    assert creds.identity_token == "identity-tok" and creds.password is None


def test_ecr_credentials_from_get_authorization_token(moto):
    creds = ecr_credentials("123456789012.dkr.ecr.us-east-1.amazonaws.com", endpoint_url=moto.url)
    assert creds.username == "AWS" and creds.password and creds.source == "ecr"
    assert creds.password not in repr(creds)


def test_token_refetched_after_expiry(token_registry, token_server, monkeypatch):
    import vulnwatch.registries.auth as auth_mod

    token_server.clear()
    reg = token_reg(token_registry)
    list(reg.tags("repo-a"))
    list(reg.tags("repo-a"))
    assert len(token_server.requests) == 1
    now = auth_mod.time.monotonic()
    monkeypatch.setattr(auth_mod.time, "monotonic", lambda: now + token_server.expires_in)
    list(reg.tags("repo-a"))
    assert len(token_server.requests) == 2


def test_identity_token_from_docker_config(token_registry, token_server, docker_config, images):
    from tests.registries.conftest import REFRESH_TOKEN

    docker_config({"auths": {token_registry.host: {"auth": "", "identitytoken": REFRESH_TOKEN}}})
    creds = docker_config_credentials(token_registry.host)
    assert REFRESH_TOKEN not in repr(creds)
    token_server.clear()
    reg = OCIRegistry("tok", token_registry.url, insecure=True, credentials=creds)
    assert images.v2.manifest_digest in {i.digest for i in reg.images("repo-a")}
    assert token_server.requests == [("alice", ("repository:repo-a:pull",))]
    bad = OCIRegistry("tok", token_registry.url, insecure=True, credentials=Credentials(identity_token="nope"))
    with pytest.raises(RegistryError, match="token endpoint .* 401"):
        list(bad.tags("repo-a"))
