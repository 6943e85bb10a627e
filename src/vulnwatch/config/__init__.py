"""The configuration file: one YAML document -> validated, frozen pydantic models. Nothing else.

``load_config(path)`` reads the file, interpolates ``${VAR}`` / ``${VAR:-default}`` from the
environment in string values, and validates the result. Every problem is reported in one
:class:`ConfigError` whose message has one line per problem, each naming the file, the line of
the offending key and its key path, all problems at once (an unset variable, an unknown key
and a bad value are reported together)::

    vulnwatch.yaml:14: registries[0].scan.interval: bad duration '10x': use a number followed by
    ms, s, m, h, d or w (e.g. 30s, 10m, 24h, 1d, 1h30m)

A command that uses only some sections loads with ``sections=`` (e.g. ``{"state"}`` for
``vulnwatch status``): problems in the other sections (typically a ``${SLACK_URL}`` that is not
set where only the state is needed) do not stop it; those sections are left at their defaults
and the problems are kept in :attr:`Config.deferred_problems`. ``vulnwatch run`` and
``check-config`` load every section and report everything. :func:`check_config` adds what
needs the file system (archive paths, watch-list files, imports that do not exist).

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
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .delivery import DeliverySettings
from .ignore import IgnoreConfig, IgnoreRuleConfig
from .loader import Document, InterpolationError, interpolate, key_path
from .notifications import (ConsoleSinkConfig, SinkConfig, SlackSinkConfig, WebhookSinkConfig)
from .problems import ConfigError, ConfigProblem, known_keys, problems_from_validation
from .registries import (ArchiveRegistryConfig, EcrRegistryConfig, EcrScanSettings, OciRegistryConfig,
                         RegistryConfig, RepositorySelector, ScanSettings, TagFilter)
from .checks import check_config
from .root import SECTIONS, Config
from .state import DEFAULT_STATE_PATH, StateConfig
from .summary import config_summary
from .types import Duration, format_duration, is_glob, parse_duration
from .vulndb import LayerCacheConfig, VulnDBConfig

__all__ = [
    "ArchiveRegistryConfig", "Config", "ConfigError", "ConfigProblem", "ConsoleSinkConfig", "DEFAULT_STATE_PATH",
    "DeliverySettings", "Duration", "EcrRegistryConfig", "EcrScanSettings", "IgnoreConfig", "IgnoreRuleConfig",
    "InterpolationError",
    "LayerCacheConfig", "OciRegistryConfig", "RegistryConfig", "RepositorySelector", "ScanSettings",
    "SECTIONS", "SinkConfig", "SlackSinkConfig", "StateConfig", "TagFilter", "VulnDBConfig", "WebhookSinkConfig",
    "check_config", "config_summary", "format_duration", "interpolate", "is_glob", "key_path", "load_config",
    "parse_config", "parse_duration",
]


@functools.cache
def _known_keys() -> list[str]:
    return known_keys(Config)


def _validate(data: dict[str, Any], doc: Document, base_dir: Path) -> tuple[Config | None, list[ConfigProblem]]:
    try:
        return Config.model_validate(data, context={"base_dir": base_dir}), []
    except ValidationError as e:
        return None, problems_from_validation(e, doc, _known_keys())


def _covered(problem: ConfigProblem, by: list[ConfigProblem]) -> bool:
    """True when a validation problem is about a value already reported as not interpolated
    (``url: ${SLACK_URL}`` unset is one problem, not also "not a URL")."""
    return any(problem.key_path == p.key_path or problem.key_path.startswith(p.key_path + ".")
               or problem.key_path.startswith(p.key_path + "[") for p in by if p.key_path)


def parse_config(text: str, *, file: str = "<string>", base_dir: Path | str | None = None,
                 environ: Mapping[str, str] | None = None, sections: Collection[str] | None = None) -> Config:
    """Validate configuration ``text`` (the body of a file named ``file``, used in messages).

    ``sections`` (None: all) are the top-level sections the caller uses: problems elsewhere are
    deferred (see the module docstring). Raises :class:`ConfigError` listing every problem."""
    doc = Document(file, text, os.environ if environ is None else environ)
    if doc.data is None:                        # YAML syntax: nothing else can be said
        raise ConfigError.from_problems(doc.problems)
    if not isinstance(doc.data, dict):
        raise ConfigError.from_problems([ConfigProblem(
            file, doc.line(()), "", "the file must be a mapping with keys such as state, registries, "
                                    "notifications, delivery")])
    base = Path(base_dir or Path.cwd())
    data = dict(doc.data)
    cfg, invalid = _validate(data, doc, base)
    problems = list(doc.problems) + [p for p in invalid if not _covered(p, doc.problems)]
    deferred: list[ConfigProblem] = []
    if sections is not None and problems:
        used = set(sections)
        deferred = [p for p in problems if p.section and p.section not in used and p.section in SECTIONS]
        if deferred:
            problems = [p for p in problems if p not in deferred]
            for section in {p.section for p in deferred}:
                data.pop(section, None)         # left at its default: this command does not use it
            cfg, invalid = _validate(data, doc, base)
            problems += [p for p in invalid if p not in problems and not _covered(p, doc.problems)]
    if problems:
        raise ConfigError.from_problems(sorted(problems, key=lambda p: p.line))
    assert cfg is not None
    cfg._lines = dict(doc.lines)
    cfg._file = file
    cfg._deferred = tuple(deferred)
    return cfg


def load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None,
                sections: Collection[str] | None = None) -> Config:
    """Read, interpolate and validate the configuration file at ``path``.

    ``environ`` defaults to ``os.environ``; ``sections`` as for :func:`parse_config`. Raises
    :class:`ConfigError` (one line per problem, each naming file, line and key path)."""
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
    cfg = parse_config(text, file=file, base_dir=p.resolve().parent, environ=environ, sections=sections)
    cfg._source = p.resolve()
    return cfg
