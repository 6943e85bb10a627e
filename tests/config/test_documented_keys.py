"""docs/configuration.md and the schema say the same: every key a table of the reference names
exists in the section it is documented for (``verify_tls`` and ``max_listed`` were documented and
refused), and every key of the schema is documented."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from vulnwatch.config import (ArchiveRegistryConfig, Config, DeliverySettings, EcrRegistryConfig, LayerCacheConfig,
                              OciRegistryConfig, StateConfig, VulnDBConfig)
from vulnwatch.config.notifications import (ConsoleSinkConfig, EmailSinkConfig, SlackSinkConfig, TeamsSinkConfig,
                                            WebhookSinkConfig)
from vulnwatch.config.problems import schema_models
from vulnwatch.config.ignore import IgnoreConfig, IgnoreRuleConfig
from vulnwatch.config.limits import LimitsConfig
from vulnwatch.config.service import ServiceSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
REGISTRIES = [EcrRegistryConfig, OciRegistryConfig, ArchiveRegistryConfig]
SINKS = [SlackSinkConfig, TeamsSinkConfig, WebhookSinkConfig, EmailSinkConfig, ConsoleSinkConfig]
SECTIONS = {"state": [StateConfig], "registries[]": REGISTRIES, "notifications[]": SINKS, "vulndb": [VulnDBConfig],
            "layer_cache": [LayerCacheConfig], "delivery": [DeliverySettings], "service": [ServiceSettings],
            "ignore": [IgnoreConfig], "ignore.rules[]": [IgnoreRuleConfig], "limits": [LimitsConfig]}
LEADS = {"`type: ecr`": [EcrRegistryConfig], "`type: oci`": [OciRegistryConfig], "`type: email`": [EmailSinkConfig],
         "post to a URL": [SlackSinkConfig, TeamsSinkConfig, WebhookSinkConfig]}


def documented_tables() -> list[tuple[str, list[type[BaseModel]], str]]:
    """(table context, the models it documents, key) for every key in a table's first column."""
    out = []
    section: list[type[BaseModel]] = []
    lead = ""
    keys_table = False          # a table whose first column is "key" (not, say, URL parameters)
    lines = DOC.read_text().splitlines()
    for i, line in enumerate(lines):
        heading = re.match(r"^#{2,3} `([^`]+)`", line)
        if heading:
            section = SECTIONS.get(heading.group(1), [])
            lead = heading.group(1)
            continue
        if not line.startswith("|"):
            keys_table = False
            if line.strip():
                lead = line
            continue
        if re.match(r"^\|\s*-", line):
            continue
        if not keys_table and i > 0 and not lines[i - 1].startswith("|"):
            keys_table = bool(re.match(r"^\|\s*key\s*\|", line))
            continue
        if not keys_table:
            continue
        models = next((m for k, m in LEADS.items() if k in lead), section)
        first = line.split("|")[1]
        for key in re.findall(r"`([a-z_][a-z0-9_.]*)`", first):
            out.append((f"{DOC.name}:{i + 1}", models, key))
    return out


def _field_model(annotation) -> type[BaseModel] | None:
    for t in [annotation, *typing.get_args(annotation)]:
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def has_key(model: type[BaseModel], dotted: str) -> bool:
    head, _, rest = dotted.partition(".")
    for name, field in model.model_fields.items():
        if head in (name, field.alias):
            if not rest:
                return True
            sub = _field_model(field.annotation)
            return sub is not None and has_key(sub, rest)
    return False


TABLE_KEYS = documented_tables()


def test_the_reference_was_read():
    keys = {k for _, _, k in TABLE_KEYS}
    assert {"path", "url", "scan.interval", "verify_tls", "max_listed", "max_payload_bytes", "backoff_max",
            "max_mb", "from", "registry_id"} <= keys
    assert len(TABLE_KEYS) > 40


@pytest.mark.parametrize("where,models,key", TABLE_KEYS, ids=[f"{w}:{k}" for w, _, k in TABLE_KEYS])
def test_every_documented_key_exists(where, models, key):
    assert models, f"{where}: {key!r} is in a table of no known section"
    assert any(has_key(m, key) for m in models), f"{where}: {key!r} is documented but no {models} has it"


def test_the_check_refuses_keys_that_do_not_exist():
    assert has_key(SlackSinkConfig, "verify_tls") and has_key(EcrRegistryConfig, "scan.mode")
    assert has_key(EmailSinkConfig, "from") and not has_key(EmailSinkConfig, "from_x")
    assert not has_key(OciRegistryConfig, "scan.mode") and not has_key(ConsoleSinkConfig, "verify_tls")


def test_every_key_of_the_schema_is_documented():
    text = DOC.read_text()
    missing = sorted({f"{m.__name__}.{field.alias or name}" for m in schema_models(Config)
                      for name, field in m.model_fields.items()
                      if not re.search(rf"`[^`]*\b{re.escape(field.alias or name)}\b[^`]*`", text)})
    assert missing == []
