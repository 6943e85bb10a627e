"""What the formatters share: the id people search for, orderings, finding -> package lookup."""

from __future__ import annotations

from collections.abc import Iterable

from ..model import Finding, Image, Package, priority_order

__all__ = ["PackageLookup", "coverage_lines", "image_label", "package_order", "preferred_id", "severity_order"]


def preferred_id(finding: Finding) -> str:
    """The id people search for: the CVE when the finding or one of its aliases is a CVE,
    else the finding's own id."""
    if finding.vulnerability_id.startswith("CVE-"):
        return finding.vulnerability_id
    for alias in finding.aliases:
        if alias.startswith("CVE-"):
            return alias
    return finding.vulnerability_id


def severity_order(findings: Iterable[Finding]) -> list[Finding]:
    """Findings by priority (:func:`vulnwatch.model.priority_order`): listed in KEV first, then
    severity, then EPSS, then CVSS score (unknowns last), then id, package and version, so that
    equal inputs always give the same order."""
    return sorted(findings, key=priority_order)


def coverage_lines(coverage) -> list[str]:
    """Human lines about a result's coverage: one per ecosystem, then the packages not judged."""
    if coverage is None:
        return []
    from ..model import utcnow

    now = utcnow()
    out = []
    for e in coverage.ecosystems:
        if e.present:
            age = f", {(now - e.updated_at).days}d old" if e.updated_at is not None else ""
            out.append(f"coverage: {e.ecosystem}: {e.records} advisories{age} ({e.packages} packages)")
        else:
            out.append(f"coverage: {e.ecosystem}: NO ADVISORY DATA ({e.packages} packages not judged): "
                       f"`vulnwatch db update`, or `vulnwatch db import PATH` offline")
    if coverage.unjudged:
        shown = ", ".join(f"{u.name}@{u.version}" if u.version else u.name for u in coverage.unjudged[:10])
        more = f" and {len(coverage.unjudged) - 10} more" if len(coverage.unjudged) > 10 else ""
        out.append(f"coverage: {len(coverage.unjudged)} not judged: {shown}{more}")
        for u in coverage.unjudged:
            if "not read" in u.reason or "comparator" in u.reason:
                out.append(f"  {u.name}{'@' + u.version if u.version else ''}: {u.reason}")
    return out


def package_order(packages: Iterable[Package]) -> list[Package]:
    """Packages in a stable order: ecosystem, name, version, path."""
    return sorted(packages, key=lambda p: (p.ecosystem, p.name, p.version, p.path or "", p.purl or ""))


class PackageLookup:
    """Finds the inventory entry a finding is about: same purl when the finding has one, else
    same name, version and ecosystem (ecosystem ignored when the finding does not say)."""

    def __init__(self, packages: Iterable[Package]) -> None:
        self._by_purl: dict[str, Package] = {}
        self._by_name: dict[tuple[str, str], list[Package]] = {}
        for p in packages:
            if p.purl:
                self._by_purl.setdefault(p.purl, p)
            self._by_name.setdefault((p.name, p.version), []).append(p)

    def find(self, finding: Finding) -> Package | None:
        """The package of ``finding``, None when the inventory does not list it."""
        if finding.purl and finding.purl in self._by_purl:
            return self._by_purl[finding.purl]
        for p in self._by_name.get((finding.package_name, finding.package_version), ()):
            if not finding.ecosystem or p.ecosystem == finding.ecosystem:
                return p
        return None


def image_label(image: Image) -> str:
    """``registry/repository@digest`` with the tags after it, for headers."""
    tags = f" (tags: {', '.join(image.tags)})" if image.tags else ""
    return f"{image.registry}/{image.repository}@{image.digest}{tags}"
