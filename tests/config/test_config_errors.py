"""Every configuration error names the file, the key path and the line of the offending key."""

from __future__ import annotations

import pytest

from vulnwatch.config import ConfigError, ConfigProblem, load_config


def only(err: ConfigError) -> ConfigProblem:
    assert len(err.problems) == 1, str(err)
    return err.problems[0]


def assert_problem(err: ConfigError, line: int, key_path: str, *needles: str) -> None:
    p = only(err)
    assert (p.line, p.key_path) == (line, key_path), str(err)
    assert p.file.endswith("vulnwatch.yaml")
    text = str(err)
    assert text.startswith(f"{p.file}:{line}: {key_path}: "), text
    for n in needles:
        assert n in text, text


def test_bad_duration_names_key_path_and_line(config_error):
    err = config_error("""
        registries:
          - name: prod
            type: ecr
            region: us-east-1
            scan:
              mode: basic
              interval: 10x
        """)
    assert_problem(err, 7, "registries[0].scan.interval", "bad duration '10x'", "24h")


def test_zero_duration_is_rejected(config_error):
    err = config_error("""
        delivery:
          backoff_base: 0s
        """)
    assert_problem(err, 2, "delivery.backoff_base", "greater than zero")


def test_unknown_registry_type(config_error):
    err = config_error("""
        registries:
          - name: prod
            type: ecr
          - name: other
            type: quay
            url: https://quay.io
        """)
    assert_problem(err, 5, "registries[1].type", "unknown type 'quay'", "'ecr', 'oci', 'archive'")


def test_missing_type_points_at_the_list_item(config_error):
    err = config_error("""
        notifications:
          - name: s
            url: https://hooks.example/x
        """)
    assert_problem(err, 2, "notifications[0].type", "'type' is missing")


def test_duplicate_registry_names(config_error):
    err = config_error("""
        registries:
          - name: prod
            type: ecr
          - type: ecr
            region: eu-west-1
            name: prod
        """)
    assert_problem(err, 6, "registries[1].name", "duplicate name 'prod'", "registries[0]")


def test_duplicate_sink_names(config_error):
    err = config_error("""
        notifications:
          - {name: a, type: slack, url: "https://hooks.slack.com/x"}
          - {name: b, type: webhook, url: "https://siem.example/x"}
          - {name: a, type: webhook, url: "https://siem.example/y"}
        """)
    assert_problem(err, 4, "notifications[2].name", "duplicate name 'a'", "notifications[0]")


@pytest.mark.parametrize("glob,needle", [
    ("team/[abc", "'[' without a closing ']'"),
    ("Team/*", "character(s) 'T'"),
    ("team app", "character(s) ' '"),
    ("", "empty repository name pattern"),
])
def test_bad_repository_glob(config_error, glob, needle):
    err = config_error(f"""
        registries:
          - name: prod
            type: ecr
            repositories:
              - name: team/ok
              - name: "{glob}"
        """)
    assert_problem(err, 6, "registries[0].repositories[1].name", needle)


def test_bad_tag_glob_points_at_the_list_item(config_error):
    err = config_error("""
        registries:
          - name: prod
            type: ecr
            repositories:
              - name: "team/*"
                tags:
                  exclude:
                    - "*-dev"
                    - "sha-[0-9"
        """)
    assert_problem(err, 9, "registries[0].repositories[0].tags.exclude[1]", "sha-[0-9")


def test_yaml_syntax_error_has_line(config_error):
    err = config_error("""
        registries:
          - name: prod
            type: ecr
           region: us-east-1
        """)
    p = only(err)
    assert p.line == 4
    assert "YAML syntax error" in p.message
    assert str(err).startswith(f"{p.file}:4: ")


def test_unclosed_flow_sequence_syntax_error(config_error):
    err = config_error("""
        state:
          path: x.db
        notifications: [
        delivery:
          max_attempts: 3
        """)
    assert "YAML syntax error" in str(err)
    assert only(err).line >= 4


def test_missing_environment_variable(config_error):
    err = config_error("""
        registries:
          - name: ghcr
            type: oci
            url: https://ghcr.io
            username: bot
            password: ${REG_PASSWORD}
            repositories: [{name: org/app}]
        """)
    assert_problem(err, 6, "registries[0].password", "REG_PASSWORD is not set", "${REG_PASSWORD:-default}")


def test_malformed_variable_reference(config_error):
    err = config_error("""
        state:
          url: "postgresql://u:${PG PASS}@h/db"
        """)
    assert_problem(err, 2, "state.url", "bad variable reference")


def test_unterminated_variable_reference(config_error):
    err = config_error("""
        state:
          url: "postgresql://u:${PGPASS@h/db"
        """)
    assert_problem(err, 2, "state.url", "unterminated")


def test_unknown_key_suggests_the_right_one(config_error):
    err = config_error("""
        registries:
          - name: prod
            type: ecr
            scan:
              wait_timout: 5m
        """)
    assert_problem(err, 5, "registries[0].scan.wait_timout", "unknown key", "did you mean 'wait_timeout'")


@pytest.mark.parametrize("section,typo,meant", [
    ("vulndb", "max_ag: 3d", "max_age"), ("layer_cache", "max_bm: 10", "max_mb"),
    ("vulndb", "ecosytems: [Debian]", "ecosystems")])
def test_every_section_gets_did_you_mean(config_error, section, typo, meant):
    err = config_error(f"""
        {section}:
          {typo}
        """)
    assert_problem(err, 2, f"{section}.{typo.split(':')[0]}", "unknown key", f"did you mean {meant!r}")


def test_console_sink_keys_get_did_you_mean(config_error):
    err = config_error("""
        notifications:
          - {name: c, type: console, fixable_olny: true}
        """)
    assert_problem(err, 2, "notifications[0].fixable_olny", "did you mean 'fixable_only'")


def test_interpolate_raises_value_error_as_documented():
    from vulnwatch.config import InterpolationError, interpolate
    with pytest.raises(ValueError, match="environment variable NOPE is not set") as info:
        interpolate("${NOPE}", {})
    assert isinstance(info.value, InterpolationError)
    with pytest.raises(ValueError, match="unterminated"):
        interpolate("${OPEN", {})


def test_scan_mode_is_ecr_only(config_error):
    err = config_error("""
        registries:
          - name: hub
            type: oci
            url: https://registry.example
            scan:
              mode: basic
        """)
    assert_problem(err, 6, "registries[0].scan.mode", "unknown key")


def test_missing_required_key_points_at_the_enclosing_item(config_error):
    err = config_error("""
        state:
          path: state.db
        registries:
          - name: hub
            type: oci
            insecure: true
        """)
    assert_problem(err, 4, "registries[0].url", "required key is missing")


def test_several_problems_one_line_each(config_error):
    err = config_error("""
        registries:
          - name: prod
            type: ecr
            scan: {interval: soon}
        notifications:
          - name: s
            type: slack
            url: https://hooks.slack.com/x
            min_severity: SEVERE
        delivery:
          max_attempts: 0
        """)
    got = sorted((p.line, p.key_path) for p in err.problems)
    assert got == [(4, "registries[0].scan.interval"), (9, "notifications[0].min_severity"),
                   (11, "delivery.max_attempts")]
    assert len(str(err).splitlines()) == 3
    assert "unknown severity 'SEVERE'" in str(err)


def test_state_path_and_url_are_exclusive(config_error):
    err = config_error("""
        state:
          path: a.db
          url: sqlite:///b.db
        """)
    assert_problem(err, 3, "state.url", "not both")


def test_duplicate_yaml_key(config_error):
    err = config_error("""
        delivery:
          max_attempts: 3
          max_attempts: 4
        """)
    assert_problem(err, 3, "delivery.max_attempts", "duplicate key (first at line 2)")


def test_unquoted_account_id_with_leading_zero(config_error):
    # YAML 1.1 reads 012345678901 as an octal number: the account id must be quoted.
    err = config_error("""
        registries:
          - name: prod
            type: ecr
            registry_id: 012345670123
        """)
    assert_problem(err, 4, "registries[0].registry_id", 'quote the account id')


def test_bad_region(config_error):
    err = config_error("""
        registries:
          - {name: prod, type: ecr, region: "US East"}
        """)
    assert_problem(err, 2, "registries[0].region", "bad AWS region")


def test_backoff_max_below_base(config_error):
    err = config_error("""
        delivery:
          backoff_base: 10m
          backoff_max: 1m
        """)
    assert_problem(err, 3, "delivery.backoff_max", "shorter than backoff_base")


def test_plain_http_registry_needs_insecure(config_error):
    err = config_error("""
        registries:
          - name: local
            type: oci
            url: http://127.0.0.1:5000
        """)
    assert_problem(err, 4, "registries[0].url", "insecure: true")


def test_password_without_username(config_error):
    err = config_error("""
        registries:
          - name: local
            type: oci
            url: https://r.example
            password: hunter2-secret
        """)
    assert_problem(err, 5, "registries[0].password", "without username")
    assert "hunter2-secret" not in str(err)


def test_bad_secret_url_is_not_echoed(config_error):
    err = config_error("""
        notifications:
          - name: s
            type: slack
            url: hooks.slack.com/services/T000/B000/TOPSECRETTOKEN
        """)
    assert_problem(err, 4, "notifications[0].url", "http:// or https://")
    assert "TOPSECRETTOKEN" not in str(err)
    assert "TOPSECRETTOKEN" not in repr(err.problems)


def test_bad_watch_list_scheme(config_error):
    err = config_error("""
        registries:
          - name: prod
            type: ecr
            watch_list: gs://bucket/watch.json
        """)
    assert_problem(err, 4, "registries[0].watch_list", "use s3://bucket/key or a file path")


def test_top_level_must_be_a_mapping(config_error):
    err = config_error("""
        - registries
        """)
    p = only(err)
    assert (p.line, p.key_path) == (1, "")
    assert str(err) == f"{p.file}:1: {p.message}"
    assert "must be a mapping" in p.message


def test_section_with_wrong_shape(config_error):
    err = config_error("""
        state: {}
        registries:
          name: prod
        """)
    assert_problem(err, 2, "registries", "expected a list")


def test_file_not_found(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert str(info.value).startswith(f"{missing}:1: file not found")
