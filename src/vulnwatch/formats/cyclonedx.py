"""``--format cyclonedx``: CycloneDX 1.6 JSON, written with ``cyclonedx-python-lib``.

- ``metadata.component``: the image (type ``container``, name = repository, version = digest,
  bom-ref ``image:<repository>@<digest>``), with tags and registry as properties; ``metadata.tools``
  names vulnwatch; ``metadata.timestamp`` is the scan time.
- ``components``: one ``library`` per inventory package, with purl and a bom-ref (the purl,
  made unique when the same purl is installed twice); its path and layer as properties. The
  distro, when known, is an ``operating-system`` component. Findings about packages missing
  from the inventory (scanners such as ECR list none) get a component made from the finding,
  so every ``affects`` points at a component of the BOM.
- ``vulnerabilities`` (not with ``sbom_only``): one per finding, with id, source (NVD for
  ``CVE-`` ids, else OSV), ratings (severity, and score, vector and method CVSSv2/v3/v31/v4
  when known), description (title), references (aliases), advisories (links),
  ``affects[{ref}]`` and recommendation ``Upgrade to <fixed>`` when fixed versions are known.
  A suppressed finding is a vulnerability too, with an ``analysis``: a VEX statement's state
  (OpenVEX ``not_affected`` -> ``not_affected``, ``fixed`` -> ``resolved``; CycloneDX's as given)
  and justification (OpenVEX labels mapped to CycloneDX's), an ignore rule's ``responses:
  [will_not_fix]`` (it is accepted, not judged unaffected); ``detail`` gives the reason, the
  rule's source and its expiry; property ``vulnwatch:suppressed`` is ``true``.
  As cyclonedx-python-lib writes them, vectors lose their ``CVSS:3.1/`` prefix (``method``
  says the version), purls are re-encoded canonically (``+`` -> ``%2B``, ``:`` -> ``%3A``), and
  components and vulnerabilities come sorted by the library, not by severity.

The serial number is derived from the image digest, scanner and scan time, so rendering the
same result twice gives the same document.
"""

from __future__ import annotations

import json
import uuid
import warnings
from collections import Counter
from decimal import Decimal
from typing import Any

from cyclonedx.model import Property, XsUri
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.impact_analysis import ImpactAnalysisJustification, ImpactAnalysisResponse, ImpactAnalysisState
from cyclonedx.model.vulnerability import (
    BomTarget, Vulnerability, VulnerabilityAdvisory, VulnerabilityAnalysis, VulnerabilityRating,
    VulnerabilityReference, VulnerabilityScoreSource, VulnerabilitySeverity, VulnerabilitySource,
)
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from .. import __version__
from ..model import Finding, Package, ScanResult, Severity, priority_order, stable_id
from ._shared import PackageLookup, package_order, severity_order
from .interface import FormatError, Formatter

CDX_SEVERITY = {Severity.CRITICAL: VulnerabilitySeverity.CRITICAL, Severity.HIGH: VulnerabilitySeverity.HIGH,
                Severity.MEDIUM: VulnerabilitySeverity.MEDIUM, Severity.LOW: VulnerabilitySeverity.LOW,
                Severity.NEGLIGIBLE: VulnerabilitySeverity.INFO, Severity.UNKNOWN: VulnerabilitySeverity.UNKNOWN}
"""CycloneDX severity of each of ours (NEGLIGIBLE is ``info``)."""

OPENVEX_STATE = {"not_affected": ImpactAnalysisState.NOT_AFFECTED, "fixed": ImpactAnalysisState.RESOLVED}
"""CycloneDX analysis state of an OpenVEX status that suppresses."""
OPENVEX_JUSTIFICATION = {
    "component_not_present": ImpactAnalysisJustification.CODE_NOT_PRESENT,
    "vulnerable_code_not_present": ImpactAnalysisJustification.CODE_NOT_PRESENT,
    "vulnerable_code_not_in_execute_path": ImpactAnalysisJustification.CODE_NOT_REACHABLE,
    "vulnerable_code_cannot_be_controlled_by_adversary": ImpactAnalysisJustification.REQUIRES_ENVIRONMENT,
    "inline_mitigations_already_exist": ImpactAnalysisJustification.PROTECTED_BY_MITIGATING_CONTROL,
}
"""CycloneDX justification of each OpenVEX justification label."""


def analysis_of(f: Finding) -> VulnerabilityAnalysis | None:
    """The CycloneDX ``analysis`` of a suppressed finding (None for one that counts)."""
    s = f.suppression
    if s is None:
        return None
    until = f"; until {s.expires}" if s.expires else ""
    state = justification = None
    responses = []
    if s.kind == "vex":
        try:
            state = OPENVEX_STATE.get(s.status or "") or ImpactAnalysisState(s.status)
        except ValueError:
            state = None
        try:
            justification = OPENVEX_JUSTIFICATION.get(s.justification or "") or (
                ImpactAnalysisJustification(s.justification) if s.justification else None)
        except ValueError:
            justification = None
        detail = f"VEX {s.status}: {s.reason} ({s.source}{until})"
    else:
        responses = [ImpactAnalysisResponse.WILL_NOT_FIX]
        detail = f"ignored: {s.reason} ({s.source}{until})"
    return VulnerabilityAnalysis(state=state, justification=justification, responses=responses, detail=detail)

def source_of(vulnerability_id: str) -> VulnerabilitySource:
    """Where an id is defined: NVD for ``CVE-`` ids, OSV for every other (GHSA, PYSEC, DSA, ...)."""
    if vulnerability_id.startswith("CVE-"):
        return VulnerabilitySource(name="NVD", url=XsUri(f"https://nvd.nist.gov/vuln/detail/{vulnerability_id}"))
    return VulnerabilitySource(name="OSV", url=XsUri(f"https://osv.dev/vulnerability/{vulnerability_id}"))


def _purl(value: str | None) -> tuple[PackageURL | None, str | None]:
    """(parsed purl, the raw string when it does not parse)."""
    if not value:
        return None, None
    try:
        return PackageURL.from_string(value), None
    except ValueError:
        return None, value


class CycloneDxFormatter(Formatter):
    """CycloneDX 1.6 JSON: an SBOM of the image, with its vulnerabilities."""

    name = "cyclonedx"
    media_type = "application/vnd.cyclonedx+json; version=1.6"

    def render(self, result: ScanResult, *, sbom_only: bool = False) -> str:
        bom = self.bom(result, sbom_only=sbom_only)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the library warns about things we set on purpose
            try:
                text = JsonV1Dot6(bom).output_as_string(indent=2)
            except Exception as e:  # the library's own errors carry no image name
                raise FormatError(self.name, f"cannot write CycloneDX 1.6: {e}", image=result.image) from e
        return _by_priority(text, result) + "\n"

    def bom(self, result: ScanResult, *, sbom_only: bool = False) -> Bom:
        """The :class:`cyclonedx.model.bom.Bom` that :meth:`render` serialises."""
        img = result.image
        image_component = Component(
            type=ComponentType.CONTAINER, name=img.repository, version=img.digest,
            bom_ref=f"image:{img.repository}@{img.digest}",
            properties=[Property(name="vulnwatch:image:registry", value=img.registry)]
            + [Property(name="vulnwatch:image:tag", value=t) for t in img.tags],
        )
        tool = Component(type=ComponentType.APPLICATION, name="vulnwatch", version=__version__)
        metadata = BomMetaData(component=image_component, timestamp=result.scanned_at,
                               properties=[Property(name="vulnwatch:scanner", value=result.scanner),
                                           Property(name="vulnwatch:state", value=result.state.value)]
                               + _coverage_properties(result.coverage))
        metadata.tools.components.add(tool)
        bom = Bom(metadata=metadata,
                  serial_number=uuid.UUID(stable_id("cyclonedx", img.registry, img.repository, img.digest,
                                                    result.scanner, result.scanned_at.isoformat())))

        packages = package_order(result.packages)
        refs = self._bom_refs(packages)
        components: dict[int, Component] = {}
        for i, p in enumerate(packages):
            components[i] = self._component(p, refs[i])
        if result.distro:
            name, _, version = result.distro.partition(":")
            components[-1] = Component(type=ComponentType.OPERATING_SYSTEM, name=name.lower(),
                                       version=version or None, bom_ref=f"os:{result.distro}")
        for c in components.values():
            bom.components.add(c)

        if not sbom_only:
            lookup = PackageLookup(packages)
            index_of = {id(p): i for i, p in enumerate(packages)}
            extra: dict[tuple[str, str, str, str], Component] = {}
            used_refs = set(refs)
            for f in [*severity_order(result.findings), *severity_order(result.suppressed)]:
                pkg = lookup.find(f)
                if pkg is not None:
                    component = components[index_of[id(pkg)]]
                else:
                    component = self._component_for_finding(f, extra, used_refs)
                    bom.components.add(component)
                bom.vulnerabilities.add(self._vulnerability(f, component))
        bom.register_dependency(image_component, list(bom.components))
        return bom

    @staticmethod
    def _bom_refs(packages: list[Package]) -> list[str]:
        """One unique bom-ref per package: the purl (or ecosystem/name@version), with ``#2``,
        ``#3``... appended when the same one occurs again."""
        bases = [p.purl or f"{p.ecosystem or 'unknown'}/{p.name}@{p.version}" for p in packages]
        seen: Counter[str] = Counter()
        refs = []
        for b in bases:
            seen[b] += 1
            refs.append(b if seen[b] == 1 else f"{b}#{seen[b]}")
        return refs

    @staticmethod
    def _component(p: Package, ref: str) -> Component:
        purl, bad_purl = _purl(p.purl)
        props = []
        if p.ecosystem:
            props.append(Property(name="vulnwatch:package:ecosystem", value=p.ecosystem))
        if p.source_name:
            props.append(Property(name="vulnwatch:package:source-name", value=p.source_name))
        if p.source_version:
            props.append(Property(name="vulnwatch:package:source-version", value=p.source_version))
        if p.path:
            props.append(Property(name="vulnwatch:package:path", value=p.path))
        if p.layer:
            props.append(Property(name="vulnwatch:package:layer", value=p.layer))
        if bad_purl:
            props.append(Property(name="vulnwatch:package:invalid-purl", value=bad_purl))
        return Component(type=ComponentType.LIBRARY, name=p.name, version=p.version, purl=purl,
                         bom_ref=ref, properties=props)

    @staticmethod
    def _component_for_finding(f: Finding, extra: dict[tuple[str, str, str, str], Component],
                               used_refs: set[str]) -> Component:
        key = (f.purl or "", f.ecosystem, f.package_name, f.package_version)
        if key in extra:
            return extra[key]
        purl, bad_purl = _purl(f.purl)
        base = f.purl or f"{f.ecosystem or 'unknown'}/{f.package_name}@{f.package_version}"
        ref, n = base, 1
        while ref in used_refs:
            n += 1
            ref = f"{base}#{n}"
        used_refs.add(ref)
        props = [Property(name="vulnwatch:package:ecosystem", value=f.ecosystem)] if f.ecosystem else []
        if bad_purl:
            props.append(Property(name="vulnwatch:package:invalid-purl", value=bad_purl))
        component = Component(type=ComponentType.LIBRARY, name=f.package_name, version=f.package_version,
                              purl=purl, bom_ref=ref, properties=props)
        extra[key] = component
        return component

    @staticmethod
    def _vulnerability(f: Finding, component: Component) -> Vulnerability:
        rating: dict[str, Any] = {"severity": CDX_SEVERITY[f.severity]}
        if f.cvss_score is not None:
            rating["score"] = Decimal(str(f.cvss_score))
        if f.cvss_vector:
            method = VulnerabilityScoreSource.get_from_vector(f.cvss_vector)
            rating["method"] = method
            rating["vector"] = f.cvss_vector
        if f.severity_source and f.severity_source != "none":
            rating["source"] = VulnerabilitySource(name=f.severity_source)
        references = [VulnerabilityReference(id=a, source=source_of(a)) for a in f.aliases]
        advisories = []
        for link in f.links:
            try:
                advisories.append(VulnerabilityAdvisory(url=XsUri(link)))
            except Exception:  # a link that is not a URI: keep it out rather than fail the BOM
                continue
        recommendation = (f"Upgrade to {' or '.join(f.fixed_versions)}" if f.fixed_versions else None)
        props = [Property(name="vulnwatch:fixable", value="true" if f.fixable else "false"),
                 Property(name="vulnwatch:severity-source", value=f.severity_source or "none"),
                 Property(name="vulnwatch:kev", value="true" if f.in_kev else "false")]
        if f.kev is not None:
            props.append(Property(name="vulnwatch:kev:date-added", value=f.kev.date_added))
        if f.epss is not None:
            props.append(Property(name="vulnwatch:epss", value=f"{f.epss:g}"))
            if f.epss_percentile is not None:
                props.append(Property(name="vulnwatch:epss:percentile", value=f"{f.epss_percentile:g}"))
        if f.scanner:
            props.append(Property(name="vulnwatch:scanner", value=f.scanner))
        if f.exploit_available is not None:
            props.append(Property(name="vulnwatch:exploit-available",
                                  value="true" if f.exploit_available else "false"))
        if f.suppression is not None:
            props.append(Property(name="vulnwatch:suppressed", value="true"))
            props.append(Property(name="vulnwatch:suppression-source", value=f.suppression.source))
        return Vulnerability(
            bom_ref=f"vuln:{f.vulnerability_id}:{component.bom_ref.value}",
            id=f.vulnerability_id,
            source=source_of(f.vulnerability_id),
            references=references,
            ratings=[VulnerabilityRating(**rating)],
            description=f.title or None,
            recommendation=recommendation,
            advisories=advisories,
            affects=[BomTarget(ref=component.bom_ref.value)],
            properties=props,
            analysis=analysis_of(f),
        )


def _coverage_properties(coverage) -> list[Property]:
    """``vulnwatch:coverage:*`` properties: the state, each ecosystem, each package not judged."""
    if coverage is None:
        return []
    props = [Property(name="vulnwatch:coverage", value=coverage.state)]
    for e in coverage.ecosystems:
        when = e.updated_at.isoformat() if e.updated_at else "none"
        props.append(Property(name="vulnwatch:coverage:ecosystem",
                              value=f"{e.ecosystem} present={'true' if e.present else 'false'} "
                                    f"records={e.records} packages={e.packages} updated={when}"))
    for u in coverage.unjudged:
        props.append(Property(name="vulnwatch:coverage:unjudged",
                              value=f"{u.ecosystem}/{u.name}{'@' + u.version if u.version else ''}: {u.reason}"))
    return props


def _by_priority(text: str, result: ScanResult) -> str:
    """The library writes ``vulnerabilities`` sorted by id; every output lists them by priority
    (in KEV, then severity, then EPSS: :func:`vulnwatch.model.priority_order`), so reorder them."""
    rank: dict[str, int] = {}
    for i, f in enumerate(sorted((*result.findings, *result.suppressed), key=priority_order)):
        rank.setdefault(f.vulnerability_id, i)
    doc = json.loads(text)
    vulns = doc.get("vulnerabilities")
    if not vulns:
        return text
    doc["vulnerabilities"] = sorted(vulns, key=lambda v: rank.get(v.get("id"), len(rank)))   # stable: ties keep order
    return json.dumps(doc, indent=2)

