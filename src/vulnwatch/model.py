"""Frozen data shared by every stage of the pipeline.

This module is imported by all others and imports nothing of ours. Every
type here is an immutable value: stages pass them along, never mutate them.

Flow: ``Image`` (what a registry holds) -> ``ScanResult`` (what a scanner found,
``Finding``s about ``Package``s) -> ``Event`` (what changed, made by ``diff``).
"""

from __future__ import annotations

import contextvars
import enum
import functools
import hashlib
import json
from collections import namedtuple
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import date, datetime, timezone
from typing import Any


def utcnow() -> datetime:
    """Timezone-aware current time in UTC (the only clock the pipeline uses)."""
    return datetime.now(timezone.utc)


def as_utc(t: datetime) -> datetime:
    """``t`` in UTC; a naive time (as some stores give them back) is taken to be UTC."""
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


class Severity(enum.IntEnum):
    """Severity rating, ordered so that ``max()`` and ``>=`` do the right thing."""

    UNKNOWN = 0
    NEGLIGIBLE = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5

    @classmethod
    def parse(cls, value: str | None) -> "Severity":
        """Map the many spellings scanners use (ECR, Inspector, OSV, CVSS) to a rating.

        ``INFORMATIONAL`` and ``NEGLIGIBLE`` are ``NEGLIGIBLE``; ``UNDEFINED``,
        ``UNTRIAGED``, empty and unrecognised strings are ``UNKNOWN``.
        """
        if not value:
            return cls.UNKNOWN
        v = str(value).strip().upper()
        aliases = {"INFORMATIONAL": "NEGLIGIBLE", "INFO": "NEGLIGIBLE", "NONE": "NEGLIGIBLE",
                   "MODERATE": "MEDIUM", "IMPORTANT": "HIGH", "UNDEFINED": "UNKNOWN",
                   "UNTRIAGED": "UNKNOWN"}
        v = aliases.get(v, v)
        return cls.__members__.get(v, cls.UNKNOWN)

    @classmethod
    def from_name(cls, value: "str | Severity") -> "Severity":
        """The rating called ``value`` (a name, case-insensitive); ``ValueError`` listing the
        names otherwise. Strict, for what users type (config, command line); :meth:`parse` is
        the lenient reading of what scanners report."""
        if isinstance(value, Severity):
            return value
        name = str(value).strip().upper()
        if name not in cls.__members__:
            names = ", ".join(s.name for s in sorted(cls))
            raise ValueError(f"unknown severity {value!r}: use one of {names}")
        return cls[name]


@dataclass(frozen=True)
class ImageRef:
    """A reference a user types: ``host[:port]/repository[:tag][@digest]``.

    Parsing lives in :mod:`vulnwatch.registries.reference`; this is only the value.
    """

    registry: str
    """Registry host (``host[:port]``), e.g. ``123.dkr.ecr.us-east-1.amazonaws.com``."""
    repository: str
    """Repository path inside the registry, e.g. ``team/app``."""
    tag: str | None = None
    """Tag, if the reference named one."""
    digest: str | None = None
    """Manifest digest (``sha256:...``), if the reference named one."""

    def __str__(self) -> str:
        s = f"{self.registry}/{self.repository}"
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


@dataclass(frozen=True)
class Image:
    """One image in one repository: identified by its manifest digest.

    Several tags on one digest are one image; an untagged image has ``tags == ()``.
    """

    registry: str
    """Name of the registry as configured (``registries[].name``), not its URL."""
    repository: str
    """Repository name inside the registry."""
    digest: str
    """Manifest digest, ``sha256:<hex>``: the identity of the image."""
    tags: tuple[str, ...] = ()
    """Tags currently pointing at this digest, sorted."""
    pushed_at: datetime | None = None
    """When the registry says the image was pushed (for "newest N")."""
    media_type: str | None = None
    """Manifest media type, when known."""
    size_bytes: int | None = None
    """Compressed size as the registry reports it, when known."""

    @property
    def short_digest(self) -> str:
        """``sha256:`` stripped, first 12 hex characters (as ``docker images`` shows)."""
        return self.digest.split(":", 1)[-1][:12]

    @property
    def key(self) -> tuple[str, str, str]:
        """(registry, repository, digest): the identity under which state is stored."""
        return (self.registry, self.repository, self.digest)

    def __str__(self) -> str:
        tag = f":{self.tags[0]}" if self.tags else ""
        return f"{self.registry}/{self.repository}{tag}@{self.short_digest}"


@dataclass(frozen=True)
class Package:
    """A package installed in an image (from a cataloger or a scanner's report)."""

    name: str
    """Name as the package manager spells it (binary package name for dpkg)."""
    version: str
    """Installed version, exactly as recorded by the package manager."""
    ecosystem: str
    """OSV ecosystem, e.g. ``Debian:12``, ``Alpine:v3.19``, ``PyPI``, ``npm``, ``Go``, ``Maven``."""
    purl: str | None = None
    """Package URL (https://github.com/package-url/purl-spec)."""
    source_name: str | None = None
    """Source (dpkg) or origin (apk) package name, which distro advisories use."""
    source_version: str | None = None
    """Version of the source package when it differs from ``version``."""
    path: str | None = None
    """File inside the image that the package was read from."""
    layer: str | None = None
    """Digest (diff id) of the layer that introduced the package."""


PackageRow = namedtuple(  # type: ignore[misc]
    "PackageRow", [f.name for f in fields(Package)],
    defaults=[f.default for f in fields(Package) if f.default is not MISSING])
PackageRow.__doc__ = """A stored package, light enough to re-match millions of them: the fields of
:class:`Package`, in its order, so the matcher takes either."""


@dataclass(frozen=True)
class StoredInventory:
    """What re-matching needs of one snapshot: its packages and the fingerprint of its findings."""

    key: tuple[str, str, str]
    """(registry, repository, digest)."""
    scanner: str
    """The scanner that made the inventory (``builtin``)."""
    distro: str | None
    """OS ecosystem of the image (``Debian:12``), None when unknown."""
    rows: Sequence[Sequence]
    """The packages as plain rows in :class:`PackageRow` field order (cheap to decode in bulk)."""
    findings_signature: str | None
    """:func:`vulnwatch.model.findings_signature` of the stored findings (None if unknown)."""
    coverage_missing: tuple[str, ...] | None = None
    """Ecosystems (with release) the stored coverage says have no advisory data (None: coverage
    not known): re-matching looks again at an inventory when data for one of them arrived, even if
    no finding moved."""

    @property
    def packages(self) -> list[PackageRow]:
        """The rows as :class:`PackageRow` values."""
        return [PackageRow._make(r) for r in self.rows]


@dataclass(frozen=True)
class Suppression:
    """Why a finding is suppressed: the ignore rule or VEX statement that matched it. A
    suppressed finding is kept and shown (JSON, SARIF, CycloneDX, table) but never counted,
    gated on or notified (:attr:`ScanResult.suppressed`)."""

    kind: str
    """``ignore`` (a rule of the config, an ignore file, ``.trivyignore``) or ``vex`` (an OpenVEX
    or CycloneDX VEX statement)."""
    reason: str
    """Why, as its author wrote it (a rule's ``reason``, a VEX impact statement or detail)."""
    source: str
    """Where the rule is: ``FILE:LINE`` (or ``FILE`` and the statement for VEX documents)."""
    rule: str = ""
    """What matched, as written: the id, package and repository patterns of the rule."""
    status: str | None = None
    """VEX status (``not_affected``, ``fixed``; CycloneDX ``not_affected``, ``false_positive``,
    ``resolved``); None for ignore rules."""
    justification: str | None = None
    """VEX justification (OpenVEX ``vulnerable_code_not_present``..., CycloneDX
    ``code_not_reachable``...), when given."""
    expires: date | None = None
    """The rule applies until the start of this day (UTC); None: no end."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "reason": self.reason, "source": self.source, "rule": self.rule,
                "status": self.status, "justification": self.justification,
                "expires": self.expires.isoformat() if self.expires else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Suppression":
        return cls(kind=d.get("kind") or "ignore", reason=d.get("reason") or "", source=d.get("source") or "",
                   rule=d.get("rule") or "", status=d.get("status"), justification=d.get("justification"),
                   expires=date.fromisoformat(d["expires"]) if d.get("expires") else None)

    def expired(self, now: datetime) -> bool:
        """Whether the rule no longer applies at ``now``."""
        return self.expires is not None and now.astimezone(timezone.utc).date() >= self.expires


@dataclass(frozen=True)
class Finding:
    """One vulnerability in one installed package, normalised across scanners."""

    vulnerability_id: str
    """Primary id, the CVE when there is one (``CVE-2023-1234``), else the advisory id."""
    package_name: str
    """Affected package name as installed."""
    package_version: str
    """Installed version of the affected package."""
    severity: Severity = Severity.UNKNOWN
    """Rating, from a CVSS vector when available, else the source's own rating."""
    ecosystem: str = ""
    """Ecosystem of the package (see :class:`Package`), empty when the scanner does not say."""
    aliases: tuple[str, ...] = ()
    """Other ids of the same vulnerability (GHSA, DSA, PYSEC, ...), sorted."""
    fixed_versions: tuple[str, ...] = ()
    """Versions that fix it, empty when no fix is known."""
    fix_available: bool | None = None
    """True when a fix exists; None when the scanner cannot say. Derived from
    ``fixed_versions`` when the scanner gives no explicit flag."""
    cvss_score: float | None = None
    """CVSS base score (0.0-10.0) when known."""
    cvss_vector: str | None = None
    """CVSS vector string when known, e.g. ``CVSS:3.1/AV:N/...``."""
    title: str = ""
    """One-line description."""
    links: tuple[str, ...] = ()
    """Reference URLs, the most useful first."""
    scanner: str = ""
    """Which scanner reported it (``ecr-basic``, ``ecr-enhanced``, ``builtin``)."""
    exploit_available: bool | None = None
    """Whether a public exploit is known, when the scanner says."""
    purl: str | None = None
    """Package URL of the affected package, when known."""
    severity_source: str = ""
    """Where ``severity`` came from: ``record:<id>`` (the record's own CVSS), ``alias:<id>``
    (the CVSS of another record sharing an alias), ``cve5:cna:<org>`` / ``cve5:adp:<org>`` /
    ``nvd:<source>`` (an enrichment source), ``text:<id>`` (the record's textual rating),
    ``none`` (UNKNOWN: no source has one); the scanner's name for ECR; empty when not said."""
    kev: "KevListing | None" = None
    """The CISA Known Exploited Vulnerabilities entry of this vulnerability, when listed."""
    epss: float | None = None
    """FIRST EPSS probability of exploitation in the next 30 days (0-1), when known."""
    epss_percentile: float | None = None
    """Percentile of ``epss`` among all scored CVEs (0-1), when known."""

    @property
    def in_kev(self) -> bool:
        """True when the vulnerability is in CISA's KEV catalog."""
        return self.kev is not None
    suppression: Suppression | None = None
    """The ignore rule or VEX statement that suppresses it (only in
    :attr:`ScanResult.suppressed`); None for a finding that counts."""

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity used by ``diff``: vulnerability, ecosystem, package and installed version."""
        return (self.vulnerability_id, self.ecosystem, self.package_name, self.package_version)

    @property
    def fixable(self) -> bool:
        """True when a fix is known (explicit flag, else any fixed version)."""
        if self.fix_available is not None:
            return self.fix_available
        return bool(self.fixed_versions)

    @property
    def link(self) -> str:
        """Best single link: the first given, else a link built from the id."""
        if self.links:
            return self.links[0]
        vid = self.vulnerability_id
        if vid.startswith("CVE-"):
            return f"https://nvd.nist.gov/vuln/detail/{vid}"
        return f"https://osv.dev/vulnerability/{vid}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (used by the store and the webhook payloads)."""
        return {
            "vulnerability_id": self.vulnerability_id,
            "aliases": list(self.aliases),
            "package_name": self.package_name,
            "package_version": self.package_version,
            "ecosystem": self.ecosystem,
            "purl": self.purl,
            "fixed_versions": list(self.fixed_versions),
            "fix_available": self.fix_available,
            "fixable": self.fixable,
            "severity": self.severity.name,
            "cvss_score": self.cvss_score,
            "cvss_vector": self.cvss_vector,
            "title": self.title,
            "links": list(self.links),
            "scanner": self.scanner,
            "exploit_available": self.exploit_available,
            "severity_source": self.severity_source,
            "kev": self.kev.to_dict() if self.kev is not None else None,
            "epss": self.epss,
            "epss_percentile": self.epss_percentile,
            **({"suppression": self.suppression.to_dict()} if self.suppression is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Finding":
        """Inverse of :meth:`to_dict`."""
        return cls(
            vulnerability_id=d["vulnerability_id"],
            aliases=tuple(d.get("aliases") or ()),
            package_name=d["package_name"],
            package_version=d["package_version"],
            ecosystem=d.get("ecosystem") or "",
            purl=d.get("purl"),
            fixed_versions=tuple(d.get("fixed_versions") or ()),
            fix_available=d.get("fix_available"),
            severity=Severity.parse(d.get("severity")),
            cvss_score=d.get("cvss_score"),
            cvss_vector=d.get("cvss_vector"),
            title=d.get("title") or "",
            links=tuple(d.get("links") or ()),
            scanner=d.get("scanner") or "",
            exploit_available=d.get("exploit_available"),
            severity_source=d.get("severity_source") or "",
            kev=KevListing.from_dict(d["kev"]) if isinstance(d.get("kev"), dict) else None,
            epss=d.get("epss"),
            epss_percentile=d.get("epss_percentile"),
            suppression=Suppression.from_dict(d["suppression"]) if d.get("suppression") else None,
        )


@dataclass(frozen=True)
class KevListing:
    """A vulnerability's entry in CISA's Known Exploited Vulnerabilities catalog."""

    date_added: str
    """When CISA added it (``YYYY-MM-DD``)."""
    due_date: str | None = None
    """Remediation due date for US federal agencies (``YYYY-MM-DD``)."""
    ransomware: bool | None = None
    """``knownRansomwareCampaignUse``: True for ``Known``, None for ``Unknown``."""

    def to_dict(self) -> dict[str, Any]:
        return {"date_added": self.date_added, "due_date": self.due_date, "known_ransomware": self.ransomware}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "KevListing":
        return cls(date_added=str(d.get("date_added") or ""), due_date=d.get("due_date"),
                   ransomware=d.get("known_ransomware"))


def priority_order(finding: "Finding") -> tuple:
    """The one order of findings in every output: listed in KEV first, then most severe, then
    highest EPSS, then highest CVSS score (unknowns last), then by id, package and version."""
    return (not finding.in_kev, -int(finding.severity),
            -(finding.epss if finding.epss is not None else -1.0),
            -(finding.cvss_score if finding.cvss_score is not None else -1.0),
            finding.vulnerability_id, finding.ecosystem, finding.package_name, finding.package_version)


@dataclass(frozen=True)
class FindingFilter:
    """Which findings to show or send: the one filter every output and every sink applies
    (``scan --severity/--min-severity/--ignore-unfixed``, a sink's ``min_severity`` and
    ``fixable_only``). The defaults let everything through."""

    severities: frozenset[Severity] | None = None
    """Only these ratings (``--severity HIGH,CRITICAL``); None for any."""
    min_severity: Severity = Severity.UNKNOWN
    """Only findings rated at least this."""
    fixable_only: bool = False
    """Only findings with a known fix."""
    kev_only: bool = False
    """Only findings listed in CISA's KEV catalog."""
    min_epss: float | None = None
    """Only findings whose EPSS score is at least this (unknown EPSS fails)."""

    @property
    def narrows(self) -> bool:
        """True when the filter can leave findings out."""
        return (self.severities is not None or self.min_severity > Severity.UNKNOWN or self.fixable_only
                or self.kev_only or self.min_epss is not None)

    def wants(self, finding: "Finding") -> bool:
        """Whether ``finding`` passes."""
        if self.severities is not None and finding.severity not in self.severities:
            return False
        if finding.severity < self.min_severity:
            return False
        if self.kev_only and finding.kev is None:
            return False
        if self.min_epss is not None and (finding.epss is None or finding.epss < self.min_epss):
            return False
        return finding.fixable or not self.fixable_only

    def apply(self, findings: "Sequence[Finding]") -> tuple["Finding", ...]:
        """The findings that pass, in their order."""
        return tuple(f for f in findings if self.wants(f)) if self.narrows else tuple(findings)


def by_finding_key(findings: "Iterable[Finding]") -> dict[tuple[str, str, str, str], Finding]:
    """Findings indexed by :attr:`Finding.key`; when a scanner repeats a key the most severe one
    is kept (the one de-duplication every stage uses)."""
    out: dict[tuple[str, str, str, str], Finding] = {}
    for f in findings:
        kept = out.get(f.key)
        if kept is None or f.severity > kept.severity:
            out[f.key] = f
    return out


def severity_counts(findings: tuple[Finding, ...] | list[Finding]) -> dict[str, int]:
    """Counts per severity name, every rating present (zeros included), most severe first."""
    counts = {s.name: 0 for s in sorted(Severity, reverse=True)}
    for f in findings:
        counts[f.severity.name] += 1
    return counts


@dataclass(frozen=True)
class EcosystemCoverage:
    """Whether the advisory data covers one ecosystem and release an image needs."""

    ecosystem: str
    """As the packages need it: ``Debian:12``, ``Alpine:v3.17``, ``PyPI``."""
    packages: int
    """Packages of the image in it."""
    present: bool
    """True when the data holds advisories for exactly this ecosystem (and release)."""
    records: int = 0
    """Advisory records for it in the data."""
    updated_at: datetime | None = None
    """When its data was last imported (or confirmed unchanged), None when absent."""

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        age = None
        if self.updated_at is not None:
            age = round(((now or utcnow()) - self.updated_at).total_seconds() / 86400, 1)
        return {"ecosystem": self.ecosystem, "packages": self.packages, "present": self.present,
                "records": self.records, "updated_at": self.updated_at.isoformat() if self.updated_at else None,
                "age_days": age}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EcosystemCoverage":
        at = d.get("updated_at")
        return cls(ecosystem=d["ecosystem"], packages=int(d.get("packages") or 0), present=bool(d.get("present")),
                   records=int(d.get("records") or 0), updated_at=datetime.fromisoformat(at) if at else None)


@dataclass(frozen=True)
class UnjudgedPackage:
    """A package (or a package database) that could not be held against the advisory data."""

    ecosystem: str
    name: str
    """Package name, or the path of a package database that was not read."""
    version: str
    reason: str
    """Why: ``no advisory data for Alpine:v3.17``, the comparator's refusal, ``BerkeleyDB rpmdb
    not read``."""

    def to_dict(self) -> dict[str, Any]:
        return {"ecosystem": self.ecosystem, "name": self.name, "version": self.version, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "UnjudgedPackage":
        return cls(d.get("ecosystem") or "", d.get("name") or "", d.get("version") or "", d.get("reason") or "")


@dataclass(frozen=True)
class Coverage:
    """What the advisory data could judge of one image: per ecosystem and release, and the
    packages it could not judge, each named."""

    ecosystems: tuple[EcosystemCoverage, ...] = ()
    unjudged: tuple[UnjudgedPackage, ...] = ()
    """Packages not judged (no data for their release, a version the comparator refuses) and
    package databases not read."""

    @property
    def missing(self) -> tuple[str, ...]:
        """Ecosystems (with release) the image needs and the data does not cover."""
        return tuple(e.ecosystem for e in self.ecosystems if not e.present)

    @property
    def complete(self) -> bool:
        """True when every needed ecosystem is covered and every package was judged."""
        return not self.missing and not self.unjudged

    @property
    def state(self) -> str:
        """``complete``, ``partial`` (some packages not judged) or ``missing`` (an ecosystem
        without data)."""
        return "missing" if self.missing else "partial" if self.unjudged else "complete"

    def summary(self) -> str:
        """One line: ``complete`` or what is missing."""
        if self.complete:
            return "complete"
        parts = []
        if self.missing:
            parts.append("no advisory data for " + ", ".join(self.missing))
        refused = len(self.unjudged)
        if refused:
            parts.append(f"{refused} package{'s' if refused != 1 else ''} not judged")
        return "; ".join(parts)

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        return {"state": self.state, "missing": list(self.missing),
                "ecosystems": [e.to_dict(now) for e in self.ecosystems],
                "unjudged_count": len(self.unjudged), "unjudged": [u.to_dict() for u in self.unjudged]}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Coverage | None":
        if not isinstance(d, dict):
            return None
        return cls(ecosystems=tuple(EcosystemCoverage.from_dict(e) for e in d.get("ecosystems") or ()),
                   unjudged=tuple(UnjudgedPackage.from_dict(u) for u in d.get("unjudged") or ()))

    @functools.cached_property
    def key(self) -> tuple:
        """What a change of coverage is measured by: which ecosystems are covered and which
        packages were not judged (and why); not record counts or import dates, which move with
        every data update without changing what could be judged."""
        return (tuple(sorted((e.ecosystem, e.present) for e in self.ecosystems)),
                tuple(sorted((u.ecosystem, u.name, u.version, u.reason) for u in self.unjudged)))

    def brief(self) -> "CoverageSummary":
        """The small summary the store keeps beside the snapshot (``status``, the overview)."""
        return CoverageSummary(self.state, self.missing, len(self.unjudged))


@dataclass(frozen=True)
class CoverageSummary:
    """A snapshot's coverage in a few bytes: what ``vulnwatch status`` and the fleet overview show
    (the store keeps it beside the full :class:`Coverage`)."""

    state: str
    """``complete``, ``partial`` or ``missing`` (see :attr:`Coverage.state`)."""
    missing: tuple[str, ...] = ()
    """Ecosystems (with release) the image needs and the data does not cover."""
    unjudged: int = 0
    """Packages not judged (and package databases not read)."""

    def text(self) -> str:
        """``complete``, or ``missing: no advisory data for Alpine:v3.17; 12 packages not judged``."""
        if self.state == "complete":
            return "complete"
        parts = []
        if self.missing:
            parts.append("no advisory data for " + ", ".join(self.missing))
        if self.unjudged:
            parts.append(f"{self.unjudged} package{'s' if self.unjudged != 1 else ''} not judged")
        return f"{self.state}: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "missing": list(self.missing), "unjudged": self.unjudged}

    @classmethod
    def from_dict(cls, d: Any) -> "CoverageSummary | None":
        if not isinstance(d, dict) or not d.get("state"):
            return None
        return cls(str(d["state"]), tuple(d.get("missing") or ()), int(d.get("unjudged") or 0))


class ScanState(str, enum.Enum):
    """How a scan ended."""

    COMPLETE = "COMPLETE"
    """Findings are those of a finished scan."""
    UNSUPPORTED = "UNSUPPORTED"
    """The scanner cannot scan this image (e.g. ECR ``UnsupportedImageTypeException``)."""


@dataclass(frozen=True)
class ScanResult:
    """What one scanner reported for one image at one time."""

    image: Image
    """The image scanned (tags as seen in this cycle)."""
    scanner: str
    """Scanner name: ``ecr-basic``, ``ecr-enhanced``, ``builtin``."""
    scanned_at: datetime
    """When the findings were produced (ECR: ``imageScanCompletedAt``)."""
    findings: tuple[Finding, ...] = ()
    """Findings, one per (vulnerability, package, version)."""
    vulnerability_source_updated_at: datetime | None = None
    """Freshness of the advisory data the scanner used."""
    state: ScanState = ScanState.COMPLETE
    """Whether findings are meaningful (see :class:`ScanState`)."""
    packages: tuple[Package, ...] = ()
    """Inventory, for scanners that catalog packages themselves (empty for ECR)."""
    distro: str | None = None
    """OS ecosystem detected in the image, e.g. ``Debian:12``."""
    notes: tuple[str, ...] = ()
    """Human-readable remarks (quota reached so previous findings kept, stale data, ...)."""
    coverage: Coverage | None = None
    """What the advisory data could judge of the image (None: the scanner does not say, e.g. ECR)."""
    suppressed: tuple[Finding, ...] = ()
    """Findings an ignore rule or VEX statement suppresses, each with its
    :attr:`Finding.suppression`: kept and shown, but not in :attr:`findings`, so never counted,
    gated on or notified (the policy stage moves them here, between matching and diff)."""

    @property
    def counts(self) -> dict[str, int]:
        """Findings per severity name (suppressed ones not counted)."""
        return severity_counts(self.findings)

    @property
    def kev_count(self) -> int:
        """Findings listed in CISA's KEV catalog (suppressed ones not counted)."""
        return sum(1 for f in self.findings if f.kev is not None)

    def unsuppressed(self) -> "ScanResult":
        """The result as the scanner made it: suppressed findings back among the findings, without
        their suppression (what the policy is applied to)."""
        if not self.suppressed:
            return self
        return replace(self, findings=self.findings + tuple(replace(f, suppression=None) for f in self.suppressed),
                       suppressed=())


@dataclass(frozen=True)
class FindingChange:
    """A finding present before and after, with something about it changed."""

    before: Finding
    after: Finding
    epss_threshold: float = 0.1
    """An EPSS move at least this large is a change (``vulndb.epss_threshold``)."""

    @functools.cached_property
    def what(self) -> tuple[str, ...]:
        """Names of the fields that changed: ``severity``, ``cvss_score``, ``fix_available``,
        ``kev`` (listed in or removed from KEV), ``epss`` (moved by at least ``epss_threshold``)."""
        out = []
        if self.before.severity != self.after.severity:
            out.append("severity")
        if self.before.cvss_score != self.after.cvss_score:
            out.append("cvss_score")
        if self.before.fixable != self.after.fixable or (
                set(self.before.fixed_versions) != set(self.after.fixed_versions)):
            out.append("fix_available")
        if self.before.in_kev != self.after.in_kev:
            out.append("kev")
        b, a = self.before.epss, self.after.epss
        if (b is None) != (a is None) or (b is not None and a is not None
                                          and abs(a - b) >= self.epss_threshold - 1e-12):
            out.append("epss")
        return tuple(out)


class EventKind(str, enum.Enum):
    """What an :class:`Event` reports."""

    NEW_IMAGE = "new_image"
    """A digest seen for the first time; ``added`` holds all its findings."""
    FINDINGS_CHANGED = "findings_changed"
    """Same digest, the findings moved (new advisory data, re-score, ...)."""
    REBUILD = "rebuild"
    """A tag moved to a new digest; compared against the tag's previous digest."""
    COVERAGE = "coverage"
    """The image's coverage changed (``Event.coverage`` against ``Event.previous_coverage``): data
    for an ecosystem it needs appeared or went missing, packages became (un)judged. Carries no
    findings; made beside a findings event when both moved."""


class ReasonKind(str, enum.Enum):
    """Why findings moved: each :class:`ChangeReason` of an :class:`Event` names one."""

    NEW_IMAGE = "new_image"
    """A digest seen for the first time: its findings are all new to us."""
    IMAGE_CHANGED = "image_changed"
    """A rebuild: a tag moved to a new digest, compared against the digest it pointed to."""
    ADVISORY_DATA_CHANGED = "advisory_data_changed"
    """Same image, the advisory data moved (records added, changed or withdrawn)."""
    ENRICHMENT_DATA_CHANGED = "enrichment_data_changed"
    """Same image, an enrichment source moved (KEV, EPSS, CVE records), changing no score."""
    RESCORE = "rescore"
    """Same image and finding, its rating moved (severity, score, KEV listing, EPSS), as an
    enrichment update moves them (:data:`vulnwatch.diff.RESCORE_FIELDS`)."""
    IGNORE_RULE_EXPIRED = "ignore_rule_expired"
    """A finding suppressed before is back: the ignore rule or VEX statement expired."""
    IGNORE_RULE_REMOVED = "ignore_rule_removed"
    """A finding suppressed before is back: its rule or VEX statement is gone (removed, changed,
    or a VEX status other than not_affected/fixed now)."""


@dataclass(frozen=True)
class DataSource:
    """One source of the data findings are judged by, as of a scan: the advisory data of an
    ecosystem (``advisory``) or an enrichment source (``enrichment``)."""

    kind: str
    """``advisory`` (OSV records) or ``enrichment`` (KEV, EPSS, CVE records, ...)."""
    name: str
    """Its name: the OSV ecosystem (``Debian``, ``PyPI``) or the enrichment source (``kev``)."""
    version: str | None = None
    """Its version as the source says (a catalog version, an export's Last-Modified or ETag)."""
    updated_at: datetime | None = None
    """When it was last imported (or confirmed unchanged)."""
    location: str = ""
    """Where it came from (URL or file)."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "version": self.version,
                "updated_at": self.updated_at.isoformat() if self.updated_at else None, "location": self.location}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataSource":
        return cls(kind=d.get("kind") or "advisory", name=d.get("name") or "", version=d.get("version"),
                   updated_at=datetime.fromisoformat(d["updated_at"]) if d.get("updated_at") else None,
                   location=d.get("location") or "")

    def describe(self) -> str:
        """``Debian (version W/"abc", imported 2026-12-02 07:00 UTC)``."""
        bits = []
        if self.version:
            bits.append(f"version {self.version}")
        if self.updated_at:
            bits.append(f"imported {self.updated_at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC")
        return f"{self.name} ({', '.join(bits)})" if bits else self.name


@dataclass(frozen=True)
class ChangeReason:
    """Why some of an event's findings moved."""

    kind: ReasonKind
    summary: str
    """One line for people: ``ignore rule expired: CVE-2023-1 in openssl (.trivyignore:3, expired 2026-12-01)``."""
    findings: tuple[tuple[str, str, str, str], ...] = ()
    """:attr:`Finding.key` of each added, fixed or changed finding this reason explains; empty when
    it explains all of the event's findings (an event with one reason)."""
    data: tuple[DataSource, ...] = ()
    """For data changes and re-scores: the data as of this scan (its version and date)."""
    suppression: Suppression | None = None
    """For ``ignore_rule_expired`` / ``ignore_rule_removed``: the rule that no longer applies."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "summary": self.summary,
                "findings": [{"vulnerability_id": k[0], "ecosystem": k[1], "package_name": k[2],
                              "package_version": k[3]} for k in self.findings],
                "data": [d.to_dict() for d in self.data],
                "suppression": self.suppression.to_dict() if self.suppression is not None else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ChangeReason":
        return cls(kind=ReasonKind(d["kind"]), summary=d.get("summary") or "",
                   findings=tuple((k["vulnerability_id"], k.get("ecosystem") or "", k["package_name"],
                                   k["package_version"]) for k in d.get("findings") or ()),
                   data=tuple(DataSource.from_dict(x) for x in d.get("data") or ()),
                   suppression=Suppression.from_dict(d["suppression"]) if d.get("suppression") else None)


@dataclass(frozen=True)
class Event:
    """A change worth telling someone about. Written to the outbox, delivered at least once."""

    id: str
    """Stable id (a UUID derived from the content); receivers de-duplicate on it."""
    kind: EventKind
    image: Image
    """The image as scanned now."""
    scanner: str
    occurred_at: datetime
    added: tuple[Finding, ...] = ()
    fixed: tuple[Finding, ...] = ()
    changed: tuple[FindingChange, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    """Counts per severity now."""
    previous_counts: dict[str, int] = field(default_factory=dict)
    """Counts per severity of the snapshot compared against (empty for a new image)."""
    previous_digest: str | None = None
    """For ``REBUILD``: the digest the tag pointed to before."""
    moved_tags: tuple[str, ...] = ()
    """For ``REBUILD``: the tags that moved."""
    reasons: tuple[ChangeReason, ...] = ()
    """Why the findings moved (the image changed, the data changed, a rule expired, a re-score);
    every added, fixed and changed finding is explained by one of them."""
    coverage: Coverage | None = None
    """For ``COVERAGE``: the image's coverage now."""
    previous_coverage: Coverage | None = None
    """For ``COVERAGE``: its coverage in the snapshot compared against."""

    @property
    def subject(self) -> str:
        """``repository:tag`` (first tag) or ``repository@short-digest``."""
        img = self.image
        return f"{img.repository}:{img.tags[0]}" if img.tags else f"{img.repository}@{img.short_digest}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: what the store keeps and what webhooks carry as ``data``."""
        img = self.image
        return {
            "id": self.id,
            "kind": self.kind.value,
            "registry": img.registry,
            "repository": img.repository,
            "digest": img.digest,
            "tags": list(img.tags),
            "pushed_at": img.pushed_at.isoformat() if img.pushed_at else None,
            "scanner": self.scanner,
            "occurred_at": self.occurred_at.isoformat(),
            "previous_digest": self.previous_digest,
            "moved_tags": list(self.moved_tags),
            "counts": dict(self.counts),
            "previous_counts": dict(self.previous_counts),
            "added": [f.to_dict() for f in self.added],
            "fixed": [f.to_dict() for f in self.fixed],
            "changed": [{"before": c.before.to_dict(), "after": c.after.to_dict(),
                         "what": list(c.what), "epss_threshold": c.epss_threshold} for c in self.changed],
            "reasons": [r.to_dict() for r in self.reasons],
            **({"coverage": self.coverage.to_dict(self.occurred_at),
                "previous_coverage": (self.previous_coverage.to_dict(self.occurred_at)
                                      if self.previous_coverage is not None else None)}
               if self.coverage is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Event":
        """Inverse of :meth:`to_dict`."""
        return cls(
            id=d["id"],
            kind=EventKind(d["kind"]),
            image=Image(registry=d["registry"], repository=d["repository"], digest=d["digest"],
                        tags=tuple(d.get("tags") or ()),
                        pushed_at=datetime.fromisoformat(d["pushed_at"]) if d.get("pushed_at") else None),
            scanner=d["scanner"],
            occurred_at=datetime.fromisoformat(d["occurred_at"]),
            previous_digest=d.get("previous_digest"),
            moved_tags=tuple(d.get("moved_tags") or ()),
            counts=dict(d.get("counts") or {}),
            previous_counts=dict(d.get("previous_counts") or {}),
            added=tuple(Finding.from_dict(x) for x in d.get("added") or ()),
            fixed=tuple(Finding.from_dict(x) for x in d.get("fixed") or ()),
            changed=tuple(FindingChange(Finding.from_dict(x["before"]), Finding.from_dict(x["after"]),
                                        float(x.get("epss_threshold", 0.1)))
                          for x in d.get("changed") or ()),
            reasons=tuple(ChangeReason.from_dict(x) for x in d.get("reasons") or ()),
            coverage=Coverage.from_dict(d.get("coverage")),
            previous_coverage=Coverage.from_dict(d.get("previous_coverage")),
        )


def stable_id(*parts: Any) -> str:
    """A UUID-shaped id derived from ``parts`` (same input, same id)."""
    return stable_id_of_text(json.dumps(parts, sort_keys=True, default=str))


def stable_id_of_text(text: str) -> str:
    """:func:`stable_id` of the parts whose ``json.dumps(parts, sort_keys=True, default=str)`` is
    ``text`` (for a caller that encodes its parts from cached pieces)."""
    h = hashlib.sha256(text.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:32]}"


EPSS_BAND = 0.05
"""Width of the EPSS bands re-matching tells apart (see :func:`finding_hash`)."""


def epss_band(score: float | None) -> int:
    """The band of an EPSS score (-1 when unknown)."""
    return -1 if score is None else int(score / EPSS_BAND + 1e-9)


@functools.lru_cache(maxsize=1 << 16)
def finding_hash(f: Finding) -> int:
    """A 128-bit hash of what :func:`vulnwatch.diff.diff` compares of a finding (identity,
    severity, score, fixability, fixed versions, KEV listing, EPSS band; not titles or links).
    EPSS counts by its band of :data:`EPSS_BAND` (a daily wobble does not move every image;
    a move across a band boundary does, and the diff then applies the configured threshold)."""
    text = "|".join((f.vulnerability_id, f.ecosystem, f.package_name, f.package_version, f.severity.name,
                     repr(f.cvss_score), str(f.fixable), ",".join(sorted(f.fixed_versions))))
    if f.kev is not None or f.epss is not None:     # findings without enrichment hash as before
        text += f"|{f.kev is not None}|{epss_band(f.epss)}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=16).digest(), "big")


def signature_of(count: int, total: int) -> str:
    """The signature of ``count`` findings whose :func:`finding_hash` values add up to ``total``."""
    return f"{count}:{total % (1 << 128):032x}"


def findings_signature(findings) -> str:
    """An order-independent fingerprint of a set of findings (a sum of :func:`finding_hash`):
    equal signatures, nothing for ``diff`` to report. Being a sum, it can be built package by
    package, which is how re-matching a whole fleet stays cheap."""
    return signature_of(len(findings), sum(finding_hash(f) for f in findings))


# --------------------------------------------------------------------------------------------
# deadlines
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Deadline:
    """A point in time (``time.monotonic()``) by which some work must end, and what set it
    (``limits.image_timeout (10m)``), for the error that says it was reached.

    The one in force for the current thread is :func:`current_deadline`; :func:`deadline_scope`
    narrows it for a block (a per-image deadline inside a cycle's). Whatever blocks (a request, a
    blob download, a wait) asks :func:`current_deadline` for the time it has left."""

    at: float
    """``time.monotonic()`` value at which the deadline is reached."""
    what: str = "deadline"
    """The limit that set it, as a user configures it."""

    @classmethod
    def after(cls, seconds: float, what: str = "deadline") -> "Deadline":
        import time

        return cls(time.monotonic() + seconds, what)

    def remaining(self) -> float:
        """Seconds left (0 when reached)."""
        import time

        return max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0


_DEADLINE: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("vulnwatch_deadline", default=None)


def current_deadline() -> Deadline | None:
    """The earliest deadline in force in this thread's context, or None."""
    return _DEADLINE.get()


class deadline_scope:
    """``with deadline_scope(d):`` -- ``d`` (or the one already in force, if earlier) is the
    deadline for the block. ``None`` changes nothing. A thread pool's task inherits it only when
    run in a copied context (``contextvars.copy_context().run``)."""

    def __init__(self, deadline: Deadline | None) -> None:
        self._deadline = deadline
        self._token = None

    def __enter__(self) -> Deadline | None:
        var = _DEADLINE
        outer = var.get()
        d = self._deadline
        if d is None or (outer is not None and outer.at <= d.at):
            d = outer
        self._token = var.set(d)
        return d

    def __exit__(self, *exc: object) -> None:
        _DEADLINE.reset(self._token)


def result_signature(result: "ScanResult") -> str:
    """The findings signature a store keeps with a snapshot: of every finding the scanner made,
    suppressed ones included (suppression is not part of :func:`finding_hash`), so re-matching
    compares it with what the matcher gives, whatever the ignore rules."""
    return findings_signature(result.findings + result.suppressed)
