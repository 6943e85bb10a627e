"""What the formatters share: the id people search for, orderings, finding -> package lookup."""

from __future__ import annotations

from collections.abc import Iterable

from ..model import Finding, Image, Package

__all__ = ["PackageLookup", "image_label", "package_order", "preferred_id", "severity_order"]


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
    """Findings most severe first: severity, then CVSS score (unknown last), then package,
    version and id, so that equal inputs always give the same order."""
    return sorted(findings, key=lambda f: (-int(f.severity),
                                           -(f.cvss_score if f.cvss_score is not None else -1.0),
                                           f.package_name, f.package_version, f.vulnerability_id,
                                           f.ecosystem))


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
