"""The JSON documents of the HTTP API (``/api/v1``); the HTML pages render the same ones."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class Doc(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)


class Counts(Doc):
    """Findings per severity."""

    CRITICAL: int = 0
    HIGH: int = 0
    MEDIUM: int = 0
    LOW: int = 0
    NEGLIGIBLE: int = 0
    UNKNOWN: int = 0


class ImageRef(Doc):
    registry: str
    """Configured registry name."""
    repository: str
    digest: str
    short_digest: str
    """First 12 hex digits of the digest."""
    tags: list[str]
    url: str
    """Path of the image's page (its API document: the same under ``/api/v1``)."""


class TrendValue(Doc):
    at: datetime
    total: int
    """All findings at ``at``."""
    counts: Counts


class CoverageOut(Doc):
    state: str
    """``complete``, ``partial`` (some packages not judged) or ``missing`` (an ecosystem the image
    needs has no advisory data)."""
    missing: list[str] = []
    """Ecosystems (with release) without advisory data: ``Alpine:v3.17``."""
    unjudged: int = 0
    """Packages not judged (and package databases not read)."""
    text: str
    """One line: ``complete`` or ``missing: no advisory data for Alpine:v3.17; 14 packages not judged``."""


class EcosystemCoverageOut(Doc):
    ecosystem: str
    packages: int
    present: bool
    records: int
    updated_at: datetime | None
    """When its data was last imported."""


class CoverageDetailOut(CoverageOut):
    ecosystems: list[EcosystemCoverageOut] = []
    unjudged_packages: list[str] = []
    """The first packages not judged, ``name version: reason``."""


class DataSourceOut(Doc):
    kind: str
    """``advisory`` (OSV records) or ``enrichment`` (KEV, EPSS, CVE records)."""
    name: str
    """The OSV ecosystem (``Debian``) or the enrichment source (``kev``)."""
    version: str | None
    """The data's version as its source says (a catalog version, Last-Modified, ETag)."""
    updated_at: datetime | None
    """When it was imported."""


class ReasonOut(Doc):
    kind: str
    """``new_image``, ``image_changed``, ``advisory_data_changed``, ``rescore``, ``ignore_rule_expired``..."""
    label: str
    summary: str
    data: list[DataSourceOut] = []
    """The data as of the change, one entry per source, each with its version and date."""


class FleetRow(Doc):
    image: ImageRef
    scanner: str | None
    counts: Counts
    total: int
    kev: int | None = None
    """Findings listed in CISA's Known Exploited Vulnerabilities (the snapshot's stored count; null
    when the store has none for it)."""
    coverage: CoverageOut | None = None
    """What the advisory data could judge of the image (null: not recorded, or the scanner says
    nothing about it)."""
    last_scanned_at: datetime | None
    last_checked_at: datetime | None
    notes: list[str]
    """Coverage warnings of the snapshot (files not read, stale data, ...)."""
    last_error: str | None
    """Error of the last scan attempt (the findings of the previous scan are kept)."""
    superseded: bool
    """Every tag of this digest has moved to another digest."""
    trend: list[TrendValue]
    """The image's last scans, oldest first (the sparkline)."""


class FleetPageOut(Doc):
    total: int
    """Images matching the filters."""
    page: int
    per_page: int
    pages: int
    sort: str
    order: str
    items: list[FleetRow]
    totals: Counts
    """Findings of the images on this page."""


class TrendOut(Doc):
    days: int
    points: list[TrendValue]
    """Fleet totals over the current images, oldest first."""


class FindingOut(Doc):
    vulnerability_id: str
    aliases: list[str]
    package_name: str
    package_version: str
    ecosystem: str
    severity: str
    cvss_score: float | None
    fixable: bool
    fixed_versions: list[str]
    title: str
    link: str
    """The advisory."""
    url: str
    """This vulnerability's page on the dashboard."""
    severity_source: str = ""
    """Where the severity came from (the record's CVSS, an alias's, an enrichment source, the
    record's own rating), as the scanner says."""
    kev: bool = False
    """Listed in CISA's Known Exploited Vulnerabilities catalog."""
    kev_date_added: str | None = None
    """When CISA listed it (``YYYY-MM-DD``)."""
    epss: float | None = None
    """FIRST EPSS probability of exploitation in the next 30 days (0-1), when known."""
    suppressed: str | None = None
    """For a suppressed finding: the ignore rule's or VEX statement's reason and where it is written."""


class EventOut(Doc):
    id: str
    kind: str
    """``new_image``, ``findings_changed``, ``rebuild`` or ``coverage``."""
    occurred_at: datetime
    image: ImageRef
    summary: str
    """One line: ``rebuild: +2 new, -10 fixed``."""
    why: str
    """What made it: first scan, new advisory data, a tag moved to a new digest."""
    added: list[str]
    fixed: list[str]
    changed: list[str]
    """``ID package: what changed``."""
    previous_digest: str | None
    moved_tags: list[str]
    reasons: list[ReasonOut] = []
    """Why the findings moved, each reason with the data (and its version) it names."""


class ImageDetailOut(Doc):
    image: ImageRef
    scanner: str | None
    scanned_at: datetime | None
    state: str | None
    distro: str | None
    counts: Counts
    kev: int | None = None
    """Findings of the snapshot listed in CISA's KEV catalog."""
    coverage: CoverageDetailOut | None = None
    """Per ecosystem and release, whether there is data and how old, and the packages not judged."""
    notes: list[str]
    last_error: str | None
    superseded: bool
    findings_total: int
    """Findings of the snapshot before the filters."""
    findings: list[FindingOut]
    suppressed: list[FindingOut] = []
    """Findings an ignore rule or VEX statement suppresses: shown, never counted."""
    """After the filters, most severe first."""
    history: list[TrendValue]
    """Scans of this digest, oldest first."""
    timeline: list[EventOut]
    """Change events of this digest, newest first (and rebuilds that moved a tag away from it)."""


class AffectedOut(Doc):
    image: ImageRef
    package_name: str
    package_version: str
    ecosystem: str
    severity: str
    fixed_versions: list[str]
    since: datetime | None
    """Since when this digest has had it without a break."""


class VulnerabilityOut(Doc):
    id: str
    aliases: list[str]
    title: str
    severity: str
    """The highest severity any image has it at."""
    links: list[str]
    first_seen: datetime | None
    """The earliest ``since`` over the images."""
    images: int
    affected: list[AffectedOut]


class UpgradeOut(Doc):
    ecosystem: str
    package: str
    installed: list[str]
    """Installed versions that have fixable findings."""
    target: str
    """The lowest version that fixes every one of them (see docs/dashboard.md)."""
    findings: int
    critical: int
    high: int
    images: int
    vulnerabilities: list[str]
    text: str
    """``upgrade X to Y fixes N findings (K critical) in M images``."""


class MttrOut(Doc):
    registry: str
    repository: str
    fixed: int
    """Findings fixed in the window."""
    measured: int
    """Of those, how many have a known first-seen time."""
    mean_seconds: float | None
    mean_days: float | None


class RemediationOut(Doc):
    days: int
    """The window of the mean time to remediate."""
    upgrades: list[UpgradeOut]
    mttr: list[MttrOut]


class DeliveryOut(Doc):
    id: int
    event: str
    kind: str
    subject: str
    summary: str
    image: ImageRef
    sink: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None


class DeliveriesOut(Doc):
    counts: dict[str, int] = Field(default_factory=dict)
    """Outbox rows per status."""
    items: list[DeliveryOut]
    writable: bool
    """Whether this server accepts write actions (``web.write_token`` is set)."""


class RequeueOut(Doc):
    requeued: int
    delivered: int
    """Deliveries the sinks accepted in the delivery run that followed (every due row)."""
    failed: int
    dead: int
    status: str
    """The status of this delivery afterwards."""


class CsrfOut(Doc):
    csrf_token: str
    """Send it back as ``X-CSRF-Token`` with the ``vw_csrf`` cookie just set."""


class Problem(Doc):
    detail: str
