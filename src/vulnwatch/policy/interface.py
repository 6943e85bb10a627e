"""Ignore rules and VEX statements: the values every input format is read into, and the one error.

A :class:`Loader` (one module per input format: ``rules`` for vulnwatch's own YAML and Trivy's
``.trivyignore.yaml``, ``trivyignore`` for the plain id list, ``openvex``, ``cyclonedx_vex``)
turns a document into :class:`IgnoreRule` values; :class:`vulnwatch.policy.Policy` applies them to
a scan result. Every problem with a document is a :class:`PolicyError` naming the file and, where
the format has lines, the line.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import date, datetime, timezone

from ..model import Suppression

__all__ = ["IgnoreRule", "Loader", "PolicyError", "SUPPRESSING_STATUSES"]


class PolicyError(Exception):
    """An ignore file or VEX document that cannot be used: ``FILE:LINE: what is wrong``."""

    def __init__(self, file: str, message: str, line: int | None = None) -> None:
        where = f"{file}:{line}" if line else str(file)
        super().__init__(f"{where}: {message}")
        self.file = str(file)
        self.line = line
        self.message = message


SUPPRESSING_STATUSES = frozenset({"not_affected", "fixed", "false_positive", "resolved", "resolved_with_pedigree"})
"""VEX statuses that suppress a finding (OpenVEX ``not_affected``/``fixed``; CycloneDX
``not_affected``, ``false_positive``, ``resolved``, ``resolved_with_pedigree``). ``affected``,
``under_investigation``, ``exploitable`` and ``in_triage`` leave it counted."""


@dataclass(frozen=True)
class IgnoreRule:
    """One rule: the findings it matches are suppressed (kept, shown, not counted) until it expires.

    Every given criterion must match (an empty one matches anything); inside one, any entry."""

    source: str
    """Where the rule is written: ``FILE:LINE`` (or ``FILE#statement`` for a VEX document)."""
    reason: str
    """Why, as its author wrote it."""
    ids: tuple[str, ...] = ()
    """Vulnerability ids or aliases (globs allowed, case-insensitive): the finding's id or any of its
    aliases must match one. Empty: any vulnerability."""
    packages: tuple[str, ...] = ()
    """Package patterns: a purl (``pkg:deb/debian/openssl``; a version or qualifiers given must match),
    a purl glob (``pkg:deb/debian/openssl*``) or a package-name glob (``openssl``). Empty: any package."""
    repositories: tuple[str, ...] = ()
    """Globs over ``registry/repository`` or ``repository`` of the image. Empty: any image."""
    digests: tuple[str, ...] = ()
    """Image digests (a VEX product naming an image, ``pkg:oci/app@sha256:...``). Empty: any image."""
    expires: date | None = None
    """The rule applies until the start of this day, UTC; None: no end."""
    kind: str = "ignore"
    """``ignore`` or ``vex``."""
    status: str | None = None
    """VEX status (one of :data:`SUPPRESSING_STATUSES`); None for ignore rules."""
    justification: str | None = None
    """VEX justification label, when given."""

    def active(self, now: datetime) -> bool:
        """Whether the rule still applies at ``now``."""
        return self.expires is None or now.astimezone(timezone.utc).date() < self.expires

    @property
    def description(self) -> str:
        """What the rule matches, as written: ``CVE-2023-1 pkg:deb/debian/openssl* repo:team/*``."""
        parts = [",".join(self.ids) or "any vulnerability"]
        if self.packages:
            parts.append(",".join(self.packages))
        if self.repositories:
            parts.append("repository " + ",".join(self.repositories))
        if self.digests:
            parts.append("image " + ",".join(self.digests))
        return " ".join(parts)

    def suppression(self) -> Suppression:
        """The :class:`~vulnwatch.model.Suppression` a finding it matches carries."""
        return Suppression(kind=self.kind, reason=self.reason, source=self.source, rule=self.description,
                           status=self.status, justification=self.justification, expires=self.expires)


class Loader(abc.ABC):
    """Reads one input format into rules."""

    name: str = ""
    """Format name (``rules``, ``trivyignore``, ``openvex``, ``cyclonedx``)."""

    @abc.abstractmethod
    def load(self, text: str, source: str) -> tuple[IgnoreRule, ...]:
        """The rules of document ``text`` read from ``source`` (a file name, for messages and
        :attr:`IgnoreRule.source`). Raises :class:`PolicyError` and nothing else."""
