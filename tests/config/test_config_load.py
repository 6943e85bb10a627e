"""Loading valid configuration: defaults, interpolation, secrets, durations, paths, summary."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from vulnwatch.config import (ArchiveRegistryConfig, Config, ConfigError, EcrRegistryConfig,
                              OciRegistryConfig, SlackSinkConfig, WebhookSinkConfig, config_summary,
                              format_duration, interpolate, load_config, parse_duration)
from vulnwatch.model import Severity

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vulnwatch.ecr.yaml"

FULL = """
state:
  url: postgresql+psycopg://vw:${PGPASSWORD}@db.internal/vulnwatch
registries:
  - name: prod
    type: ecr
    region: us-east-1
    registry_id: "123456789012"
    endpoint_url: http://127.0.0.1:5000
    scan: {mode: enhanced, interval: 12h, wait_timeout: 90s}
    repositories:
      - name: "team/*"
        tags: {include: ["*"], exclude: ["*-dev", "sha-*"]}
        newest: 10
    watch_list: lists/watch.json
  - name: ghcr
    type: oci
    url: https://ghcr.io
    username: bot
    password: ${REG_PASSWORD}
    platform: linux/arm64/v8
    repositories: [{name: org/app}]
  - name: local
    type: archive
    path: ./images/app.tar
notifications:
  - name: slack-security
    type: slack
    url: ${SLACK_WEBHOOK_URL}
    min_severity: high
    fixable_only: true
    repositories: ["prod/*"]
    mode: digest
  - name: siem
    type: webhook
    url: https://siem.example/hook
    secret: ${WEBHOOK_HMAC_SECRET}
    timeout: 5s
    headers: {X-Team: sec, Authorization: "Bearer ${SIEM_TOKEN}"}
delivery:
  max_attempts: ${MAX_ATTEMPTS:-5}
  backoff_base: 1m
  backoff_max: 2h
"""

SECRETS = {
    "PGPASSWORD": "pg-S3CRET-pw",
    "REG_PASSWORD": "reg-S3CRET-pw",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/slackS3CRETtoken",
    "WEBHOOK_HMAC_SECRET": "hmac-S3CRET",
    "SIEM_TOKEN": "siem-S3CRET-token",
}


@pytest.fixture
def full(load):
    return load(FULL, SECRETS)


def test_full_file_loads_every_section(full, tmp_path):
    prod, ghcr, local = full.registries
    assert isinstance(prod, EcrRegistryConfig) and isinstance(ghcr, OciRegistryConfig)
    assert isinstance(local, ArchiveRegistryConfig)
    assert prod.scan.mode == "enhanced"
    assert prod.scan.interval == timedelta(hours=12) and prod.scan.wait_timeout == timedelta(seconds=90)
    assert prod.repositories[0].tags.exclude == ["*-dev", "sha-*"]
    assert prod.repositories[0].newest == 10
    assert ghcr.platform == "linux/arm64/v8" and ghcr.username == "bot"
    assert ghcr.password.get_secret_value() == "reg-S3CRET-pw"
    slack, siem = full.notifications
    assert isinstance(slack, SlackSinkConfig) and isinstance(siem, WebhookSinkConfig)
    assert slack.min_severity is Severity.HIGH and slack.fixable_only and slack.mode == "digest"
    assert slack.url.get_secret_value() == SECRETS["SLACK_WEBHOOK_URL"]
    assert siem.header_values() == {"X-Team": "sec", "Authorization": "Bearer siem-S3CRET-token"}
    assert siem.timeout == timedelta(seconds=5)
    assert full.delivery.max_attempts == 5  # ${MAX_ATTEMPTS:-5}, a string, coerced to int
    assert full.state.sqlalchemy_url() == "postgresql+psycopg://vw:pg-S3CRET-pw@db.internal/vulnwatch"
    assert full.registry("ghcr") is ghcr and full.notification("siem") is siem
    with pytest.raises(KeyError, match="no registry named 'nope'.*prod, ghcr, local"):
        full.registry("nope")


def test_relative_paths_are_relative_to_the_config_file(full, tmp_path):
    assert full.registries[0].watch_list == str(tmp_path / "lists" / "watch.json")
    assert full.registries[2].path == tmp_path / "images" / "app.tar"
    assert full.source == tmp_path / "vulnwatch.yaml"


def test_s3_watch_list_is_kept_as_is(load):
    cfg = load("""
        registries:
          - {name: prod, type: ecr, watch_list: "s3://bucket/dir/watch.json"}
        """)
    assert cfg.registries[0].watch_list == "s3://bucket/dir/watch.json"


def test_secrets_never_in_repr_str_or_summary(full):
    texts = [repr(full), str(full), "\n".join(config_summary(full)), full.model_dump_json(),
             full.state.display_url()]
    texts += [repr(r) for r in full.registries] + [repr(n) for n in full.notifications]
    for text in texts:
        for secret in SECRETS.values():
            assert secret not in text
        assert "S3CRET" not in text
    assert full.state.display_url() == "postgresql+psycopg://vw:***@db.internal/vulnwatch"


def test_summary_describes_the_config(full):
    lines = config_summary(full)
    text = "\n".join(lines)
    assert "registry prod (ecr): region us-east-1, account 123456789012, endpoint http://127.0.0.1:5000" in text
    assert "scan enhanced every 12h, wait up to 1m30s" in text
    assert "team/* (tags +* -*-dev,sha-*, newest 10)" in text
    assert "notification slack-security (slack, digest): min severity HIGH, fixable only, repositories prod/*" in text
    assert "signed, headers Authorization, X-Team" in text
    assert lines[-1] == "delivery: up to 5 attempts, backoff 1m doubling to 2h"


def test_interpolation_forms():
    env = {"A": "x", "EMPTY": ""}
    assert interpolate("${A}", env) == "x"
    assert interpolate("pre-${A}-${A}-post", env) == "pre-x-x-post"
    assert interpolate("${MISSING:-dflt}", env) == "dflt"
    assert interpolate("${EMPTY:-dflt}", env) == "dflt"
    assert interpolate("${EMPTY}", env) == ""
    assert interpolate("${MISSING:-}", env) == ""
    assert interpolate("$${A}", env) == "${A}"
    assert interpolate("pa$word$", env) == "pa$word$"


def test_interpolation_only_in_values_and_uses_os_environ(write_config, monkeypatch):
    monkeypatch.setenv("VW_TEST_REGION", "eu-west-1")
    path = write_config("""
        registries:
          - name: prod
            type: ecr
            region: ${VW_TEST_REGION}
        """)
    assert load_config(path).registries[0].region == "eu-west-1"
    monkeypatch.delenv("VW_TEST_REGION")
    with pytest.raises(ConfigError, match=r"vulnwatch.yaml:4: registries\[0\].region: environment variable "
                                          r"VW_TEST_REGION is not set"):
        load_config(path)


def test_empty_file_and_default_are_the_same(write_config):
    cfg = load_config(write_config("# nothing configured yet\n"))
    default = Config.default()
    assert cfg.registries == []
    # no file at all: the bundled offline example (an image archive and its OSV records)
    assert [(r.name, r.type) for r in default.registries] == [("example", "archive")]
    assert default.registries[0].path.is_file()
    assert [s.type for s in default.notifications] == ["console"]
    assert cfg.state.path == default.state.path == Path("~/.local/state/vulnwatch/vulnwatch.db").expanduser()
    assert default.state.sqlalchemy_url().startswith("sqlite:////")
    assert default.delivery.max_attempts == 8
    assert default.delivery.backoff_base == timedelta(seconds=30)
    assert default.delivery.backoff_max == timedelta(hours=1)
    assert default.source is None


def test_defaults_of_a_minimal_registry(load):
    cfg = load("""
        registries:
          - name: prod
            type: ecr
        """)
    r = cfg.registries[0]
    assert r.region is None and r.registry_id is None and r.watch_list is None
    assert r.scan.mode == "auto" and r.scan.interval == timedelta(days=1)
    assert r.scan.wait_timeout == timedelta(minutes=10) and r.max_concurrency == 4
    assert r.repositories == []
    [sel] = r.selectors()
    assert sel.name == "*" and sel.tags.include == ["*"] and sel.newest is None and not sel.untagged


def test_yaml_anchors_and_merge_keys(load, config_error):
    cfg = load("""
        registries:
          - &base
            name: a
            type: ecr
            scan: {interval: 6h}
          - <<: *base
            name: b
        """)
    assert [r.name for r in cfg.registries] == ["a", "b"]
    assert cfg.registries[1].scan.interval == timedelta(hours=6)
    err = config_error("""
        registries:
          - &base {name: a, type: ecr}
          - <<: *base
            name: b
            name: c
        """)
    assert [(p.line, p.key_path) for p in err.problems] == [(5, "registries[1].name")]


def test_unquoted_twelve_digit_account_id_is_accepted(load):
    cfg = load("""
        registries:
          - {name: prod, type: ecr, registry_id: 123456789012}
        """)
    assert cfg.registries[0].registry_id == "123456789012"


def test_empty_webhook_secret_means_unsigned(load):
    cfg = load("""
        notifications:
          - {name: h, type: webhook, url: "https://x.example/h", secret: "${HMAC:-}"}
        """)
    assert cfg.notifications[0].secret is None


def test_sink_repository_filter():
    from vulnwatch.build import route_of
    cfg = Config.model_validate({"notifications": [
        {"name": "s", "type": "slack", "url": "https://h.example/x", "repositories": ["prod/team/*"]},
        {"name": "all", "type": "slack", "url": "https://h.example/y"}]})
    s, everything = (route_of(n) for n in cfg.notifications)
    assert s.matches_repository("prod", "team/app")
    assert not s.matches_repository("staging", "team/app")
    assert not s.matches_repository("prod", "other")
    assert everything.matches_repository("any", "thing")


def test_delivery_backoff_doubles_up_to_max():
    from vulnwatch.build import build_pipeline
    cfg = Config.default()
    ceiling = build_pipeline(cfg, store=object(), with_watches=False).dispatcher
    ceiling.rng = lambda: 1.0            # no jitter: the ceiling itself
    assert [ceiling.backoff(n) for n in (1, 2, 3)] == [30, 60, 120]
    assert ceiling.backoff(9) == 3600
    assert ceiling.backoff(1000) == 3600


@pytest.mark.parametrize("text,seconds", [
    ("30s", 30), ("10m", 600), ("24h", 86400), ("1d", 86400), ("2w", 1209600), ("1h30m", 5400),
    ("500ms", 0.5), ("1.5h", 5400), ("45", 45), (45, 45), (" 10M ", 600),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10x", "h", "10 m", "-5s", "1h 30m", "m10", "1.2.3s", True, None, [1]])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


@pytest.mark.parametrize("td,text", [
    (timedelta(days=1), "1d"), (timedelta(minutes=90), "1h30m"), (timedelta(seconds=45), "45s"),
    (timedelta(milliseconds=250), "250ms"), (timedelta(0), "0s"),
])
def test_format_duration_round_trips(td, text):
    assert format_duration(td) == text
    assert parse_duration(text) == td


def test_shipped_example_is_valid(monkeypatch):
    env = {"GHCR_TOKEN": "t", "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x"}
    cfg = load_config(EXAMPLE, environ=env)
    assert [r.name for r in cfg.registries] == ["prod", "ghcr"]
    assert [n.name for n in cfg.notifications] == ["slack-security", "siem"]
    assert cfg.registries[0].registry_id == "123456789012"
    with pytest.raises(ConfigError, match="GHCR_TOKEN is not set"):
        load_config(EXAMPLE, environ={})


def test_empty_sections_mean_defaults(load):
    cfg = load("""
        state:
        registries:
          - name: a
            type: ecr
            repositories:
            scan:
        notifications:
        """)
    assert cfg.registries[0].repositories == [] and cfg.registries[0].scan.mode == "auto"
    assert cfg.notifications == [] and cfg.state.path is not None


def test_every_field_is_documented():
    from vulnwatch import config as c
    from vulnwatch.config.problems import schema_models
    from vulnwatch.config.types import field_docs
    models = schema_models(c.Config)
    for m in (c.StateConfig, c.TagFilter, c.RepositorySelector, c.EcrScanSettings, c.EcrRegistryConfig,
              c.OciRegistryConfig, c.ArchiveRegistryConfig, c.SlackSinkConfig, c.WebhookSinkConfig,
              c.ConsoleSinkConfig, c.DeliverySettings, c.VulnDBConfig, c.LayerCacheConfig):
        assert m in models, m
    undocumented = [f"{m.__name__}.{name}" for m in models for name in m.model_fields
                    if not field_docs(m).get(name) and name != "type"]
    assert undocumented == []
