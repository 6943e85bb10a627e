"""What loading the configuration costs a command's start (``vulnwatch run`` from cron, a cold
``scan``): one validator is built, the whole file's, and no class's source is read for its
docstrings; the sections left out come out as their classes' defaults all the same."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import vulnwatch
from vulnwatch.config import Config, parse_config
from vulnwatch.config.problems import schema_models
from vulnwatch.config.types import Model

SRC = Path(vulnwatch.__file__).resolve().parents[1]

PROBE = """
import linecache, sys
from vulnwatch.config import Config, load_config
from vulnwatch.config.problems import schema_models
cfg = load_config(sys.argv[1])
assert cfg.registries[0].scan.interval.total_seconds() == 3600      # the file was read
print("built", *sorted(m.__name__ for m in schema_models(Config) if m.__pydantic_complete__))
print("read", *sorted(f for f in linecache.cache if "vulnwatch" in f))
"""


def test_loading_builds_one_validator_and_reads_no_source(tmp_path):
    path = tmp_path / "vulnwatch.yaml"
    path.write_text("state: {path: state.db}\nregistries:\n  - name: prod\n    type: ecr\n    region: us-east-1\n"
                    "    scan: {interval: 1h}\n")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, env=env,
                         check=True, timeout=120).stdout.splitlines()
    assert out == ["built Config", "read"]


def _defaults_of(model: type[Model]) -> list[tuple[type[Model], str]]:
    """(model, field) for every field whose default is an instance of a model of ours."""
    return [(m, name) for m in schema_models(model) for name, f in m.model_fields.items()
            if isinstance(f.default_factory, type) and issubclass(f.default_factory, Model)]


def test_left_out_sections_are_their_class_defaults(tmp_path):
    fields = _defaults_of(Config)
    assert {name for m, name in fields if m is Config} >= {"state", "delivery", "vulndb", "limits", "service"}
    assert any(name == "scan" for _, name in fields)             # nested ones too (registries[].scan)
    cfg = parse_config("registries:\n  - {name: a, type: ecr, region: us-east-1}\n"
                       "  - {name: b, type: oci, url: 'https://r.example'}\n", base_dir=tmp_path)
    empty = Config()
    for m, name in fields:
        if m is Config:
            assert getattr(cfg, name) == getattr(empty, name) == m.model_fields[name].default_factory(), name
    for reg in cfg.registries:
        assert reg.scan == type(reg).model_fields["scan"].default_factory()
    selector = parse_config("registries:\n  - {name: a, type: ecr, region: us-east-1, repositories: [{name: x}]}\n",
                            base_dir=tmp_path).registries[0].repositories[0]
    assert selector.tags == type(selector).model_fields["tags"].default_factory()
    assert selector.tags.include == ["*"]
    assert [s.type for s in cfg.vulndb.enrichment] == ["kev", "epss"]
