"""The configuration file: one YAML document -> validated, frozen pydantic models. Nothing else.

``load_config(path)`` reads the file, interpolates ``${VAR}`` / ``${VAR:-default}`` from the
environment in string values, and validates the result. Every problem is reported in one
:class:`ConfigError` whose message has one line per problem, each naming the file, the line of
the offending key and its key path::

    vulnwatch.yaml:14: registries[0].scan.interval: bad duration '10x': use a number followed by
    s, m, h or d (e.g. 30s, 10m, 24h, 1d)

Secrets (registry passwords, database URLs, webhook URLs, HMAC secrets, header values) are
:class:`pydantic.SecretStr`: their ``repr``/``str`` show ``**********``; code that needs the
value calls ``.get_secret_value()``. They never appear in error messages either.

Relative paths (``state.path``, ``registries[].path``, a local ``watch_list``) are resolved
against the directory of the configuration file (the current directory for
:meth:`Config.default`).

Layout: ``loader`` (YAML with lines, interpolation), ``problems`` (errors, "did you mean"),
``types`` (field types: durations, globs, names, URLs), one module per section (``state``,
``registries``, ``notifications``, ``vulndb``, ``delivery``), ``root`` (the whole file),
``summary`` (what ``vulnwatch check-config`` prints). The models hold data only: what the
stages do with it (selecting repositories, backing off, routing) lives in the stages.

The layout of the file is documented in ``docs/configuration.md``; a commented example is
``examples/vulnwatch.ecr.yaml``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from .delivery import DeliverySettings
from .loader import Document, InterpolationError, interpolate, key_path
from .notifications import (ConsoleSinkConfig, SinkConfig, SlackSinkConfig, WebhookSinkConfig)
from .problems import ConfigError, ConfigProblem, known_keys, problems_from_validation
from .registries import (ArchiveRegistryConfig, EcrRegistryConfig, EcrScanSettings, OciRegistryConfig,
                         RegistryConfig, RepositorySelector, ScanSettings, TagFilter)
from .root import Config
from .state import DEFAULT_STATE_PATH, StateConfig
from .summary import config_summary
from .types import Duration, format_duration, is_glob, parse_duration
from .vulndb import LayerCacheConfig, VulnDBConfig

__all__ = [
    "ArchiveRegistryConfig", "Config", "ConfigError", "ConfigProblem", "ConsoleSinkConfig", "DEFAULT_STATE_PATH",
    "DeliverySettings", "Duration", "EcrRegistryConfig", "EcrScanSettings", "InterpolationError",
    "LayerCacheConfig", "OciRegistryConfig", "RegistryConfig", "RepositorySelector", "ScanSettings",
    "SinkConfig", "SlackSinkConfig", "StateConfig", "TagFilter", "VulnDBConfig", "WebhookSinkConfig",
    "config_summary", "format_duration", "interpolate", "is_glob", "key_path", "load_config",
    "parse_config", "parse_duration",
]


@functools.cache
def _known_keys() -> list[str]:
    return known_keys(Config)


def parse_config(text: str, *, file: str = "<string>", base_dir: Path | str | None = None,
                 environ: Mapping[str, str] | None = None) -> Config:
    """Validate configuration ``text`` (the body of a file named ``file``, used in messages).
    Raises :class:`ConfigError` listing every problem."""
    doc = Document(file, text, os.environ if environ is None else environ)
    if doc.problems:
        raise ConfigError.from_problems(doc.problems)
    if not isinstance(doc.data, dict):
        raise ConfigError.from_problems([ConfigProblem(
            file, doc.line(()), "", "the file must be a mapping with keys such as state, registries, "
                                    "notifications, delivery")])
    try:
        return Config.model_validate(doc.data, context={"base_dir": Path(base_dir or Path.cwd())})
    except ValidationError as e:
        raise ConfigError.from_problems(problems_from_validation(e, doc, _known_keys())) from None


def load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate the configuration file at ``path``.

    ``environ`` defaults to ``os.environ``. Raises :class:`ConfigError` (one line per problem,
    each naming file, line and key path)."""
    file = str(path)
    p = Path(os.path.expanduser(file))
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError.from_problems([ConfigProblem(file, 1, "", "file not found; pass the path of "
                                                       "your vulnwatch.yaml (see examples/)")]) from None
    except IsADirectoryError:
        raise ConfigError.from_problems([ConfigProblem(file, 1, "", "is a directory, not a YAML file")]) from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError.from_problems([ConfigProblem(file, 1, "", f"cannot read: {reason}")]) from None
    cfg = parse_config(text, file=file, base_dir=p.resolve().parent, environ=environ)
    cfg._source = p.resolve()
    return cfg
