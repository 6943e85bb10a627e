"""Applying rules: which findings of a scan result a set of :class:`IgnoreRule` suppresses."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from fnmatch import fnmatchcase

from packageurl import PackageURL

from ..model import Finding, Image, ScanResult, utcnow
from .interface import IgnoreRule

_GLOB = frozenset("*?[")


@functools.lru_cache(maxsize=4096)
def _parse(purl: str) -> PackageURL | None:
    try:
        return PackageURL.from_string(purl)
    except ValueError:
        return None


def purl_matches(pattern: str, purl: str | None, name: str = "") -> bool:
    """Whether a package pattern matches a finding's package: a purl glob against the purl (with
    and without its qualifiers), a purl by its parts (type, namespace and name equal, case-
    insensitive; its version, qualifiers and subpath only when it gives them; a ``*`` makes it a glob),
    any other text
    as a glob over the package name."""
    if not pattern.startswith("pkg:"):
        return fnmatchcase(name.lower(), pattern.lower())
    if not purl:
        return False
    if "*" in pattern:      # "?" separates a purl's qualifiers: only "*" makes a purl pattern a glob
        low, pat = purl.lower(), pattern.lower()
        return fnmatchcase(low, pat) or fnmatchcase(low.split("?", 1)[0].split("#", 1)[0], pat)
    want, have = _parse(pattern), _parse(purl)
    if want is None or have is None:
        return pattern == purl
    if (want.type.lower(), (want.namespace or "").lower(), want.name.lower()) != (
            have.type.lower(), (have.namespace or "").lower(), have.name.lower()):
        return False
    if want.version and want.version != have.version:
        return False
    if want.subpath and want.subpath != have.subpath:
        return False
    wq, hq = want.qualifiers or {}, have.qualifiers or {}
    return all(hq.get(k) == v for k, v in (wq.items() if isinstance(wq, dict) else ()))


def _ids_match(patterns: Sequence[str], finding: Finding) -> bool:
    names = [finding.vulnerability_id.upper(), *(a.upper() for a in finding.aliases)]
    for p in patterns:
        if _GLOB & set(p):
            if any(fnmatchcase(n, p) for n in names):
                return True
        elif p in names:
            return True
    return False


def matches(rule: IgnoreRule, finding: Finding, image: Image) -> bool:
    """Whether ``rule`` matches ``finding`` of ``image`` (expiry not considered)."""
    if rule.ids and not _ids_match(rule.ids, finding):
        return False
    if rule.packages and not any(purl_matches(p, finding.purl, finding.package_name) for p in rule.packages):
        return False
    if rule.repositories:
        full = f"{image.registry}/{image.repository}"
        if not any(fnmatchcase(full, g) or fnmatchcase(image.repository, g) for g in rule.repositories):
            return False
    if rule.digests and image.digest not in rule.digests:
        return False
    return True


class Policy:
    """The ignore rules and VEX statements in force: applied to each scan result between matching
    and diff (:meth:`apply`), in one place of the pipeline and of ``vulnwatch scan``."""

    def __init__(self, rules: Iterable[IgnoreRule] = ()) -> None:
        self.rules: tuple[IgnoreRule, ...] = tuple(rules)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __add__(self, other: "Policy") -> "Policy":
        return Policy(self.rules + other.rules)

    def rule_for(self, finding: Finding, image: Image, now: datetime) -> IgnoreRule | None:
        """The first rule in force at ``now`` that matches (VEX statements are listed first)."""
        for rule in self.rules:
            if rule.active(now) and matches(rule, finding, image):
                return rule
        return None

    def state(self, now: datetime | None = None) -> str:
        """What applying the policy at ``now`` depends on, as text: its rules and which of them
        are in force. The same state suppresses the same findings of any result alike."""
        now = now or utcnow()
        return repr(tuple((rule, rule.active(now)) for rule in self.rules))

    def apply(self, result: ScanResult, now: datetime | None = None) -> ScanResult:
        """``result`` with the findings a rule in force suppresses moved to
        :attr:`~vulnwatch.model.ScanResult.suppressed` (each with its suppression); the rules are
        applied to every finding the scanner made, so one that a rule no longer matches (expired,
        removed) is back among the findings."""
        raw = result.unsuppressed()
        if not self.rules or not raw.findings:
            return raw
        now = now or utcnow()
        kept: list[Finding] = []
        suppressed: list[Finding] = []
        for f in raw.findings:
            rule = self.rule_for(f, raw.image, now)
            if rule is None:
                kept.append(f)
            else:
                suppressed.append(replace(f, suppression=rule.suppression()))
        if not suppressed:
            return raw
        return replace(raw, findings=tuple(kept), suppressed=tuple(suppressed))
