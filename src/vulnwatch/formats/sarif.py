"""``--format sarif``: SARIF 2.1.0, for code-scanning dashboards (GitHub, GitLab, Azure DevOps).

- One rule per vulnerability id (``rules[].id`` = the finding's id), with a short description
  (the title), help text and ``helpUri`` (the finding's best link), and
  ``properties.security-severity`` (highest CVSS score seen for that id, as GitHub expects).
- One result per finding: ``level`` from severity (CRITICAL/HIGH ``error``, MEDIUM ``warning``,
  LOW/NEGLIGIBLE/UNKNOWN ``note``), a message naming package, version and fix,
  ``properties.security-severity`` when the CVSS score is known, and a ``partialFingerprints``
  entry that stays the same across scans of the same (vulnerability, package, version).
- Suppressed findings (ignore rules, VEX) are results too, each with ``suppressions``: one
  ``{"kind": "external", "status": "accepted", "justification": ...}`` naming the reason, the rule's
  source and, for VEX, its status and justification; code-scanning dashboards show them as
  dismissed, not as alerts.
- Location: the file the package was read from (``Package.path``, relative to the image root,
  ``uriBaseId`` ``IMAGE_ROOT``) when the inventory says; else a logical location
  ``image:<repository>@<digest>``.

SARIF has no place for a package inventory: ``sbom_only`` is refused with :class:`FormatError`.
"""

from __future__ import annotations

import json
from typing import Any

from .. import __version__
from ..model import Finding, ScanResult, ScanState, Severity, stable_id
from ._shared import PackageLookup, preferred_id, severity_order
from .interface import FormatError, Formatter

SARIF_SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
"""``$schema`` of the document."""

INFORMATION_URI = "https://github.com/vulnwatch/vulnwatch"
"""``tool.driver.informationUri``."""

LEVELS = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning",
          Severity.LOW: "note", Severity.NEGLIGIBLE: "note", Severity.UNKNOWN: "note"}
"""SARIF ``level`` of each severity."""

IMAGE_ROOT = "IMAGE_ROOT"
"""``uriBaseId`` of paths inside the image."""


def _score(value: float) -> str:
    return f"{value:.1f}"


def _fixed_text(f: Finding) -> str:
    if f.fixed_versions:
        return f"Fixed in {', '.join(f.fixed_versions)}."
    if f.fix_available:
        return "A fix exists."
    return "No fix is known."


class SarifFormatter(Formatter):
    """SARIF 2.1.0 log with one run."""

    name = "sarif"
    media_type = "application/sarif+json"
    supports_sbom_only = False

    def render(self, result: ScanResult, *, sbom_only: bool = False) -> str:
        if sbom_only:
            raise FormatError(self.name, "SARIF holds findings, not a package inventory; "
                              "use --format cyclonedx, json or table with --sbom", image=result.image)
        return json.dumps(self.log(result), indent=2, ensure_ascii=False) + "\n"

    def log(self, result: ScanResult) -> dict[str, Any]:
        """The SARIF log as a dict."""
        img = result.image
        image_name = f"image:{img.repository}@{img.digest}"
        lookup = PackageLookup(result.packages)
        findings = severity_order(result.findings)
        suppressed = severity_order(result.suppressed)

        by_id: dict[str, list[Finding]] = {}
        for f in (*findings, *suppressed):  # most severe first, so rules come in that order too
            by_id.setdefault(f.vulnerability_id, []).append(f)
        rule_index = {vid: i for i, vid in enumerate(by_id)}
        rules = [self._rule(same[0], same) for same in by_id.values()]

        results = [self._result(f, rule_index[f.vulnerability_id], lookup.find(f), image_name)
                   for f in (*findings, *suppressed)]

        invocation: dict[str, Any] = {
            "executionSuccessful": result.state is ScanState.COMPLETE,
            "endTimeUtc": result.scanned_at.isoformat(),
        }
        notes = list(result.notes)
        cov = result.coverage
        if cov is not None and not cov.complete:
            invocation["toolExecutionNotifications"] = [
                {"message": {"text": f"coverage: {cov.summary()}"}, "level": "warning"}]
        if result.state is ScanState.UNSUPPORTED:
            notes.insert(0, f"Scanner {result.scanner} cannot scan this image (unsupported).")
        if notes:
            invocation["toolExecutionNotifications"] = invocation.get("toolExecutionNotifications", []) + [
                {"message": {"text": n}, "level": "note"} for n in notes]

        run: dict[str, Any] = {
            "tool": {"driver": {
                "name": "vulnwatch",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }},
            "invocations": [invocation],
            "automationDetails": {"id": f"vulnwatch/{img.registry}/{img.repository}/{img.digest}"},
            "originalUriBaseIds": {IMAGE_ROOT: {"description": {
                "text": f"Root of the file system of {img.registry}/{img.repository}@{img.digest}"}}},
            "results": results,
            "properties": {
                "image": {"registry": img.registry, "repository": img.repository, "digest": img.digest,
                          "tags": list(img.tags)},
                "scanner": result.scanner,
                "state": result.state.value,
                "distro": result.distro,
                "vulnerabilitySourceUpdatedAt": (result.vulnerability_source_updated_at.isoformat()
                                                 if result.vulnerability_source_updated_at else None),
                "coverage": cov.to_dict() if cov is not None else None,
            },
        }
        return {"$schema": SARIF_SCHEMA_URI, "version": "2.1.0", "runs": [run]}

    @staticmethod
    def _rule(first: Finding, same_id: list[Finding]) -> dict[str, Any]:
        vid = first.vulnerability_id
        worst = max(same_id, key=lambda g: g.severity)
        scores = [g.cvss_score for g in same_id if g.cvss_score is not None]
        title = next((g.title for g in same_id if g.title), "")
        aliases = sorted({a for g in same_id for a in g.aliases})
        packages = sorted({f"{g.package_name} {g.package_version}" for g in same_id})
        short = title or f"{vid} in {first.package_name}"
        lines = [f"{vid}: {title}" if title else vid]
        if aliases:
            lines.append(f"Also known as: {', '.join(aliases)}.")
        lines.append(f"Severity: {worst.severity.name}"
                     + (f" (CVSS {_score(max(scores))})" if scores else "") + ".")
        lines.append(f"Affected packages in this image: {', '.join(packages)}.")
        lines.append(f"More: {first.link}")
        md = [f"**{vid}**" + (f": {title}" if title else ""), ""]
        if aliases:
            md.append(f"Also known as: {', '.join(aliases)}.")
        md.append(f"Severity: **{worst.severity.name}**"
                  + (f" (CVSS {_score(max(scores))})" if scores else "") + ".")
        md.append(f"Affected packages in this image: {', '.join(packages)}.")
        md.append(f"[{first.link}]({first.link})")
        props: dict[str, Any] = {"tags": ["security", "vulnerability", worst.severity.name.lower()],
                                 "severity": worst.severity.name}
        if scores:
            props["security-severity"] = _score(max(scores))
        return {
            "id": vid,
            "name": vid,
            "shortDescription": {"text": short},
            "fullDescription": {"text": title or f"{vid} affects {first.package_name}."},
            "help": {"text": "\n".join(lines), "markdown": "\n".join(md)},
            "helpUri": first.link,
            "defaultConfiguration": {"level": LEVELS[worst.severity]},
            "properties": props,
        }

    @staticmethod
    def _result(f: Finding, index: int, package: Any, image_name: str) -> dict[str, Any]:
        path = package.path if package is not None else None
        if path:
            location: dict[str, Any] = {"physicalLocation": {"artifactLocation": {
                "uri": path.lstrip("/"), "uriBaseId": IMAGE_ROOT}},
                "logicalLocations": [{"fullyQualifiedName": f"{f.package_name}@{f.package_version}",
                                      "kind": "module"}]}
        else:
            location = {"logicalLocations": [{"name": image_name, "fullyQualifiedName": image_name,
                                              "kind": "module"}]}
        text = (f"{f.package_name} {f.package_version} is affected by {f.vulnerability_id}"
                f" ({f.severity.name}"
                + (f", CVSS {_score(f.cvss_score)}" if f.cvss_score is not None else "") + "). "
                + _fixed_text(f))
        props: dict[str, Any] = {
            "severity": f.severity.name,
            "package": f.package_name,
            "installedVersion": f.package_version,
            "ecosystem": f.ecosystem,
            "fixedVersions": list(f.fixed_versions),
            "fixable": f.fixable,
        }
        if f.purl or (package is not None and package.purl):
            props["purl"] = f.purl or package.purl
        if f.cvss_score is not None:
            props["security-severity"] = _score(f.cvss_score)
        if f.cvss_vector:
            props["cvssVector"] = f.cvss_vector
        props["severitySource"] = f.severity_source or "none"
        props["kev"] = f.in_kev
        if f.kev is not None:
            props["kevDateAdded"] = f.kev.date_added
            if f.kev.ransomware:
                props["kevKnownRansomware"] = True
        if f.epss is not None:
            props["epss"] = f.epss
            if f.epss_percentile is not None:
                props["epssPercentile"] = f.epss_percentile
        if preferred_id(f) != f.vulnerability_id:
            props["cve"] = preferred_id(f)
        out = {
            "ruleId": f.vulnerability_id,
            "ruleIndex": index,
            "level": LEVELS[f.severity],
            "kind": "fail",
            "message": {"text": text},
            "locations": [location],
            "partialFingerprints": {"vulnwatchFinding/v1": stable_id(*f.key)},
            "properties": props,
        }
        s = f.suppression
        if s is not None:
            what = f"VEX {s.status}" + (f" ({s.justification})" if s.justification else "") if s.kind == "vex" \
                else "ignore rule"
            until = f"; until {s.expires}" if s.expires else ""
            out["suppressions"] = [{"kind": "external", "status": "accepted",
                                    "justification": f"{what}: {s.reason} ({s.source}{until})",
                                    "properties": {"source": s.source, "rule": s.rule, "kind": s.kind,
                                                   "status": s.status, "vexJustification": s.justification,
                                                   "expires": s.expires.isoformat() if s.expires else None}}]
            props["suppressed"] = True
        return out
