"""Watch lists from a local file and from S3 (the real moto server), and their errors."""

from __future__ import annotations

import json

import boto3
import pytest

from vulnwatch.targets import TargetError, load_watch_list


@pytest.fixture
def s3(moto):
    client = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
    client.create_bucket(Bucket="security-config")
    return client


def test_local_file(tmp_path):
    path = tmp_path / "watch.json"
    path.write_text(json.dumps(["team/app", " base ", "team/app", "tools/ci"]))
    assert load_watch_list(str(path)) == ["team/app", "base", "tools/ci"]


def test_local_file_with_bom_and_empty_array(tmp_path):
    path = tmp_path / "watch.json"
    path.write_bytes(b"\xef\xbb\xbf[\"a\"]")
    assert load_watch_list(str(path)) == ["a"]
    path.write_text("[]")
    assert load_watch_list(str(path)) == []


def test_s3_object(s3):
    s3.put_object(Bucket="security-config", Key="vulnwatch/watch.json",
                  Body=json.dumps(["payments/api", "base"]).encode())
    assert load_watch_list("s3://security-config/vulnwatch/watch.json", s3_client=s3) == ["payments/api", "base"]


def test_s3_default_client_uses_the_environment(s3, moto, monkeypatch):
    s3.put_object(Bucket="security-config", Key="w.json", Body=b'["x"]')
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto.url)
    assert load_watch_list("s3://security-config/w.json") == ["x"]


def test_s3_missing_object_names_the_source(s3):
    with pytest.raises(TargetError) as info:
        load_watch_list("s3://security-config/nope.json", s3_client=s3)
    msg = str(info.value)
    assert msg.startswith("watch list s3://security-config/nope.json: ")
    assert "no object 'nope.json' in bucket 'security-config'" in msg
    assert info.value.source == "s3://security-config/nope.json"


def test_s3_missing_bucket(s3):
    with pytest.raises(TargetError, match=r"watch list s3://no-such-bucket/w.json: bucket 'no-such-bucket' "
                                          r"does not exist"):
        load_watch_list("s3://no-such-bucket/w.json", s3_client=s3)


def test_s3_bad_json(s3):
    s3.put_object(Bucket="security-config", Key="w.json", Body=b'["a",\n "b"')
    with pytest.raises(TargetError, match=r"watch list s3://security-config/w.json: invalid JSON at line 2"):
        load_watch_list("s3://security-config/w.json", s3_client=s3)


def test_bad_s3_url():
    with pytest.raises(TargetError, match=r"watch list s3://bucket-only: bad S3 URL"):
        load_watch_list("s3://bucket-only", s3_client=object())


def test_missing_local_file(tmp_path):
    src = str(tmp_path / "missing.json")
    with pytest.raises(TargetError) as info:
        load_watch_list(src)
    assert str(info.value) == (f"watch list {src}: file not found; create it (a JSON array of repository "
                               "names) or fix watch_list in the configuration")


def test_directory(tmp_path):
    with pytest.raises(TargetError, match="is a directory"):
        load_watch_list(str(tmp_path))


@pytest.mark.parametrize("body,needle", [
    ('{"repositories": ["a"]}', "expected a JSON array of repository names, got an object"),
    ('"team/app"', 'got a string ("team/app")'),
    ("42", "got a number (42)"),
    ("null", "got null"),
    ('["a", 7]', "item [1] is a number (7), expected a repository name"),
    ('["a", ["b"]]', "item [1] is an array"),
    ('["a", "  "]', "item [1] is an empty repository name"),
    ("[\"a\",]", "invalid JSON at line 1 column"),
    ("", "invalid JSON at line 1 column 1"),
    (b"\xff\xfe[]", "not UTF-8"),
])
def test_bad_shapes(tmp_path, body, needle):
    path = tmp_path / "watch.json"
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    with pytest.raises(TargetError) as info:
        load_watch_list(str(path))
    assert str(info.value).startswith(f"watch list {path}: ")
    assert needle in str(info.value)


def test_config_watch_list_relative_to_config_file_end_to_end(write_config, tmp_path):
    from vulnwatch.config import load_config
    from vulnwatch.build import selectors_of
    from vulnwatch.targets import plan_repositories

    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "watch.json").write_text('["team/app", "team/gone", "base"]')
    cfg = load_config(write_config("""
        registries:
          - name: prod
            type: ecr
            repositories: [{name: "team/*", newest: 2}]
            watch_list: lists/watch.json
        """), environ={})
    reg = cfg.registries[0]
    plan = plan_repositories(selectors_of(reg), load_watch_list(reg.watch_list))
    assert not plan.needs_listing
    assert [(n, s.newest) for n, s in plan.select(["base", "team/app", "team/web"])] == [("team/app", 2), ("team/gone", 2)]
