"""Packages -> findings, by evaluating OSV ``affected`` entries exactly as the OSV schema says.

For one package at version ``v`` and one ``affected`` entry of the same ecosystem and
name, ``v`` is affected when it is listed in ``versions`` or lies in any ``ECOSYSTEM``
or ``SEMVER`` range (``GIT`` ranges count only through ``versions``). A range is
evaluated as in the schema's ``IsVulnerable`` pseudocode:

- ``v`` must be below at least one ``limit`` event (no limit, or a ``"*"`` limit,
  means no upper limit);
- the events are sorted by version (``introduced: "0"`` first; on equal versions
  ``introduced`` before ``last_affected`` before ``fixed``) and walked in order:
  ``introduced <= v`` sets affected, ``fixed <= v`` clears it, ``last_affected < v``
  clears it.

The fix reported is the first ``fixed`` event above ``v`` in a range that matched.

Which packages are looked up where:

- language packages (``PyPI``, ``npm``, ...): by ``(ecosystem, name)``;
- distro packages (``Debian:11``, ``Alpine:v3.19``, ...): by the SOURCE (dpkg) /
  ORIGIN (apk) name with the source version, since distro advisories name those;
  both the ecosystem with its release and without it are asked (records without a
  release apply to every release). A package whose ecosystem has no release takes
  the image's ``distro`` (``Debian`` + ``distro="Debian:12"`` -> ``Debian:12``).

One finding per vulnerability per package: the primary id is the CVE when the record
has one (its id or an alias; Debian-style ``upstream`` CVEs give one finding each,
with the advisory id as alias); other ids become aliases; findings of several
records about the same vulnerability are merged.

Speed: the records of an ``(ecosystem, name)`` are loaded from the index once and
kept compiled (events pre-sorted with comparator keys); results are cached per
(ecosystem, name, version), so re-matching many inventories that share packages
costs a dictionary lookup per package.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..model import Coverage, EcosystemCoverage, Finding, KevListing, Package, UnjudgedPackage
from .index import VulnIndex, index_name
from .interface import DISTRO_ECOSYSTEMS, MatchStats, VersionError, VersionScheme, VulnDBError, ecosystem_base
from .schema import MAX_VERSION_LENGTH, check_record
from .severity import UNKNOWN, Rating, best_vector, kind_rank, rate_text, rate_vectors
from .versions import comparator_for, semver_for

log = logging.getLogger(__name__)

SCANNER = "builtin"


_INTRODUCED, _LAST_AFFECTED, _FIXED = 0, 1, 2
_KIND = {"introduced": _INTRODUCED, "last_affected": _LAST_AFFECTED, "fixed": _FIXED}
MAX_LINKS = 10


@dataclass(frozen=True)
class _Advisory:
    """What every finding from one record shares."""

    record_id: str
    primary_ids: tuple[str, ...]
    aliases: frozenset[str]
    title: str
    links: tuple[str, ...]


@dataclass(frozen=True)
class _Range:
    events: tuple[tuple[Any, int, str], ...]
    """(key or None for "0", kind, raw version), sorted."""
    limits: tuple[Any, ...] | None
    """Keys of ``limit`` events; None when unlimited."""


@dataclass(frozen=True)
class _Affected:
    """One ``affected`` entry of one record, compiled for evaluation."""

    advisory: _Advisory
    versions: frozenset[str]
    ranges: tuple[tuple[VersionScheme, _Range], ...]
    rating: Rating | None
    """From the record's own CVSS vectors (None: it has none)."""
    text: Rating | None
    """The record's own textual rating (None: it has none)."""
    fixed: tuple[str, ...]
    """Every ``fixed`` event of its ECOSYSTEM/SEMVER ranges."""


@dataclass(frozen=True)
class _Hit:
    """One vulnerability found for one (ecosystem, name, version), before it becomes Findings."""

    vulnerability_id: str
    aliases: frozenset[str]
    fixed: tuple[str, ...]
    rating: Rating
    title: str
    links: tuple[str, ...]
    kev: KevListing | None = None
    epss: tuple[float, float | None] | None = None


def _advisory(record: Mapping[str, Any]) -> _Advisory:
    rid = record["id"]
    aliases = [a for a in record.get("aliases") or () if isinstance(a, str)]
    alias_cves = sorted({x for x in [rid, *aliases] if x.startswith("CVE-")})
    upstream_cves = sorted({x for x in record.get("upstream") or () if isinstance(x, str) and x.startswith("CVE-")})
    if alias_cves:
        primary: tuple[str, ...] = (alias_cves[0],)
        others = frozenset({rid, *aliases})
    elif upstream_cves:
        primary = tuple(upstream_cves)
        others = frozenset({rid, *aliases})
    else:
        primary = (rid,)
        others = frozenset(aliases)
    title = record.get("summary") or ""
    if not title:
        details = (record.get("details") or "").strip()
        title = details.splitlines()[0] if details else ""
    if len(title) > 200:
        title = title[:197] + "..."
    links = [f"https://osv.dev/vulnerability/{rid}"]
    refs = [r for r in record.get("references") or () if isinstance(r, Mapping) and isinstance(r.get("url"), str)]
    refs.sort(key=lambda r: 0 if r.get("type") == "ADVISORY" else 1)
    for r in refs:
        if r["url"] not in links:
            links.append(r["url"])
        if len(links) >= MAX_LINKS:
            break
    return _Advisory(rid, primary, others, title, tuple(links))


def _key(scheme: VersionScheme, version: str) -> Any:
    """``scheme.key(version)``, any failure reported as :class:`VersionError`.

    Comparators are meant to raise only :class:`VersionError`; this keeps a comparator's
    bug on an odd string (an ``int()`` of a huge digit run, a recursion) from stopping a
    scan: the record or package concerned is skipped and named instead.
    """
    if len(version) > MAX_VERSION_LENGTH:
        raise VersionError(version[:40] + "...", scheme.name, f"longer than {MAX_VERSION_LENGTH} characters")
    try:
        return scheme.key(version)
    except VersionError:
        raise
    except Exception as e:
        raise VersionError(version, scheme.name, f"comparator failed ({type(e).__name__}: {e})") from e


def _compile_range(scheme: VersionScheme, rng: Mapping[str, Any]) -> _Range:
    events = []
    limits: list[Any] | None = []
    for ev in rng.get("events") or ():
        for kind, value in ev.items():
            if kind == "limit":
                if "*" in value:
                    limits = None
                elif limits is not None:
                    limits.append(_key(scheme, value))
            elif kind in _KIND:
                if kind == "introduced" and value == "0":
                    events.append((None, _INTRODUCED, value))
                else:
                    events.append((_key(scheme, value), _KIND[kind], value))
    events.sort(key=lambda e: (e[0] is not None, _Order(e[0]), e[1]))
    return _Range(tuple(events), tuple(limits) if limits else None)


def _better(a: Rating | None, b: Rating | None) -> Rating | None:
    """The higher of two ratings (by severity, then score); either may be None."""
    if a is None:
        return b
    if b is None:
        return a
    return b if (b.severity, b.score or 0.0) > (a.severity, a.score or 0.0) else a


class _Order:
    """Sort helper: compares keys, with None (introduced "0") before everything."""

    __slots__ = ("k",)

    def __init__(self, k: Any) -> None:
        self.k = k

    def __lt__(self, other: "_Order") -> bool:
        if self.k is None:
            return other.k is not None
        if other.k is None:
            return False
        return self.k < other.k

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Order) and (self.k is None) == (other.k is None) and (
            self.k is None or self.k == other.k)


def _evaluate(vk: Any, rng: _Range) -> tuple[bool, str | None]:
    """(affected, first fixed version above v) for one range."""
    if rng.limits is not None and not any(vk < lk for lk in rng.limits):
        return False, None
    vulnerable = False
    events = rng.events
    stop = len(events)
    for i, (ek, kind, _raw) in enumerate(events):
        if ek is not None and ek > vk:
            stop = i
            break
        if kind == _INTRODUCED:
            vulnerable = True
        elif kind == _FIXED:
            vulnerable = False
        elif ek < vk:  # last_affected
            vulnerable = False
    if not vulnerable:
        return False, None
    for ek, kind, raw in events[stop:]:
        if kind == _FIXED:
            return True, raw
    return True, None


class Matcher:
    """Finds vulnerabilities of packages in a :class:`VulnIndex`.

    ``Matcher(index)``; then :meth:`match` for the packages of one image.
    Caches what it loads: build a new Matcher (or call :meth:`clear_cache`) after the
    index was updated.
    """

    def __init__(self, index: VulnIndex, *, scanner: str = SCANNER) -> None:
        self.index = index
        self.scanner = scanner
        self._entries: dict[tuple[str, str], tuple[_Affected, ...]] = {}
        self._advisories: dict[str, _Advisory] = {}
        self._hits: dict[tuple[str, str, str], tuple[_Hit, ...]] = {}
        self._findings: dict[tuple, tuple[Finding, ...]] = {}
        self._skipped_records: dict[str, str] = {}
        self._refused: set[str] = set()
        self._skipped_packages: dict[str, str] = {}
        self._packages = 0
        self._found = 0
        self._refusals: dict[tuple[str, str, str], str] = {}
        self._enriched: dict[tuple[str, frozenset], tuple[Rating, KevListing | None, tuple | None]] = {}
        self._coverage: dict[str, tuple[int, Any]] = {}
        self._kinds: frozenset[str] | None = None
        self._by_cve: dict[str, tuple[list, tuple | None, tuple | None]] = {}
        """Enrichment rows per CVE (``VulnIndex.enrichment_of``), fetched a package's CVEs at a time."""

    # ------------------------------------------------------------------ public

    @property
    def stats(self) -> MatchStats:
        """Counters since creation: packages, findings, skipped records and packages."""
        return MatchStats(packages=self._packages, findings=self._found,
                          skipped_records=dict(self._skipped_records),
                          skipped_packages=dict(self._skipped_packages))

    def clear_cache(self) -> None:
        """Forget loaded records and cached results (after the index changed)."""
        self._entries.clear()
        self._advisories.clear()
        self._hits.clear()
        self._findings.clear()
        self._refused.clear()
        self._refusals.clear()
        self._enriched.clear()
        self._coverage.clear()
        self._kinds = None
        self._by_cve.clear()

    def match(self, packages: Sequence[Package], distro: str | None = None) -> list[Finding]:
        """Findings for the packages of one image (``distro``: the image's OS ecosystem, e.g. ``Debian:12``)."""
        out: list[Finding] = []
        cache = self._findings
        self._evaluate_new(packages, distro)
        for p in packages:
            k = (p.ecosystem, p.name, p.version, p.source_name, p.source_version, p.purl, distro)
            found = cache.get(k)
            if found is None:
                found = cache[k] = self._match_package(p, distro)
            out.extend(found)
        self._packages += len(packages)
        self._found += len(out)
        return out

    def index_keys(self, p: Package, distro: str | None = None) -> tuple[tuple[str, str], ...]:
        """The (ecosystem, normalised name) pairs of the index that matching ``p`` reads: what a
        change to the data must name to move its findings (see ``VulnIndex.changes_since``)."""
        if not p.ecosystem:
            return ()
        eco, name, _version = self.effective(p, distro)
        base = ecosystem_base(eco)
        keys = ((eco, index_name(eco, name)),)
        if base != eco:
            keys += ((base, index_name(base, name)),)
        return keys

    def effective(self, p: Package, distro: str | None) -> tuple[str, str, str]:
        """``(ecosystem, name, version)`` a package is looked up under (its release from the
        image's distro; the source package for distributions)."""
        eco = p.ecosystem
        base = ecosystem_base(eco)
        if distro and eco == base and ecosystem_base(distro) == base:
            eco = distro
        if base in DISTRO_ECOSYSTEMS:
            return eco, p.source_name or p.name, p.source_version or p.version
        return eco, p.name, p.version

    def coverage(self, packages: Sequence[Package], distro: str | None,
                 unread: Sequence[tuple[str, str]] = ()) -> Coverage:
        """What the data could judge of these packages (call after :meth:`match` on them): per
        ecosystem and release, whether there are advisories and how old; each package not
        judged (no data for its release, a version the comparator refuses) named, and
        ``unread`` package databases (``(path, reason)``) added."""
        per: dict[str, int] = {}
        unjudged: list[UnjudgedPackage] = []
        keys = []
        for p in packages:
            if not p.ecosystem:
                continue
            k = self.effective(p, distro)
            keys.append((p, k))
            per[k[0]] = per.get(k[0], 0) + 1
        ecos = []
        for eco in sorted(per):
            got = self.ecosystem_data(eco)
            ecos.append(EcosystemCoverage(eco, per[eco], bool(got[0]), got[0], got[1]))
        missing = {e.ecosystem for e in ecos if not e.present}
        for p, (eco, name, version) in keys:
            if eco in missing:
                unjudged.append(UnjudgedPackage(p.ecosystem, p.name, p.version, f"no advisory data for {eco}"))
                continue
            why = self._refusals.get((eco, name, version))
            if why is not None:
                unjudged.append(UnjudgedPackage(p.ecosystem, p.name, p.version, why))
        for path, why in unread:
            unjudged.append(UnjudgedPackage(distro or "", path, "", why))
        return Coverage(tuple(ecos), tuple(sorted(set(unjudged), key=lambda u: (u.ecosystem, u.name, u.version))))

    def ecosystem_data(self, eco: str) -> tuple[int, Any]:
        """``(advisory records, when imported)`` the data holds for one ecosystem and release
        (``Debian:12``), read once."""
        got = self._coverage.get(eco)
        if got is None:
            got = self._coverage[eco] = self.index.coverage_of(eco)
        return got

    # ------------------------------------------------------------------ internals

    def _match_package(self, p: Package, distro: str | None) -> tuple[Finding, ...]:
        if not p.ecosystem:
            return ()
        eco, name, version = self.effective(p, distro)
        hits = self._hits_for(eco, name, version)
        if not hits:
            return ()
        return tuple(Finding(
            vulnerability_id=h.vulnerability_id,
            package_name=p.name,
            package_version=p.version,
            severity=h.rating.severity,
            ecosystem=p.ecosystem or eco,
            aliases=tuple(sorted(h.aliases)),
            fixed_versions=h.fixed,
            fix_available=bool(h.fixed),
            cvss_score=h.rating.score,
            cvss_vector=h.rating.vector,
            title=h.title,
            links=h.links,
            scanner=self.scanner,
            purl=p.purl,
            severity_source=h.rating.source or "none",
            kev=h.kev,
            epss=h.epss[0] if h.epss else None,
            epss_percentile=h.epss[1] if h.epss else None,
        ) for h in hits)

    def _hits_for(self, eco: str, name: str, version: str) -> tuple[_Hit, ...]:
        k = (eco, name, version)
        hits = self._hits.get(k)
        if hits is None:
            hits = self._hits[k] = self._evaluate_all(eco, name, version)
        return hits

    def _evaluate_new(self, packages: Sequence[Package], distro: str | None) -> None:
        """Evaluate the records of every package not evaluated yet, then fetch the enrichment of
        all the vulnerabilities found in one query, and keep their hits (one look-up per image,
        not one per package)."""
        pending: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
        hits = self._hits
        for p in packages:
            if not p.ecosystem:
                continue
            k = self.effective(p, distro)
            if k not in hits and k not in pending:
                pending[k] = self._merged(*k)
        if not pending:
            return
        self._fetch_enrichment(*pending.values())
        for k, merged in pending.items():
            hits[k] = self._hits_of(merged)

    def _evaluate_all(self, eco: str, name: str, version: str) -> tuple[_Hit, ...]:
        merged = self._merged(eco, name, version)
        self._fetch_enrichment(merged)
        return self._hits_of(merged)

    def _merged(self, eco: str, name: str, version: str) -> dict[str, dict[str, Any]]:
        """The records affecting one version, merged per vulnerability id (not yet enriched)."""
        base = ecosystem_base(eco)
        entries: list[_Affected] = list(self._load(eco, name))
        if base != eco:
            entries += self._load(base, name)
        if not entries:
            return {}
        keys: dict[str, Any] = {}

        def key_of(scheme: VersionScheme) -> Any:
            if scheme.name not in keys:
                try:
                    keys[scheme.name] = _key(scheme, version)
                except VersionError as e:
                    keys[scheme.name] = None
                    shown = version if len(version) <= 80 else version[:77] + "..."
                    self._skipped_packages[f"{eco}/{name}@{shown}"] = str(e)
                    self._refusals[(eco, name, version)] = f"version not understood by the {scheme.name} comparator: {e}"
            return keys[scheme.name]

        merged: dict[str, dict[str, Any]] = {}
        for entry in entries:
            try:
                affected, fixes = self._evaluate_entry(entry, version, key_of)
            except Exception as e:
                # a comparator that fails comparing this version with a bound (cmp_to_key keys
                # compare lazily): the pair is at fault, so only this record is left out for
                # this version; other records, and this record for other versions, still count
                shown = version if len(version) <= 80 else version[:77] + "..."
                reason = (f"record {entry.advisory.record_id} cannot be evaluated for this version "
                          f"({type(e).__name__}: {e})")
                log.warning("%s/%s@%s: %s", eco, name, shown, reason)
                self._skipped_packages[f"{eco}/{name}@{shown}"] = reason
                self._refusals[(eco, name, version)] = reason
                continue
            if not affected:
                continue
            adv = entry.advisory
            for vid in adv.primary_ids:
                m = merged.get(vid)
                if m is None:
                    merged[vid] = {"aliases": set(adv.aliases - {vid}), "fixed": list(dict.fromkeys(fixes)),
                                   "rating": entry.rating, "text": entry.text, "title": adv.title,
                                   "links": list(adv.links)}
                    continue
                m["aliases"] |= adv.aliases - {vid}
                m["fixed"] += [f for f in fixes if f not in m["fixed"]]
                m["rating"] = _better(m["rating"], entry.rating)
                m["text"] = _better(m["text"], entry.text)
                m["title"] = m["title"] or adv.title
                m["links"] += [u for u in adv.links if u not in m["links"]]
        return merged

    def _hits_of(self, merged: dict[str, dict[str, Any]]) -> tuple[_Hit, ...]:
        out = []
        for vid, m in sorted(merged.items()):
            aliases = frozenset(m["aliases"])
            rating, kev, epss = self._enrich(vid, aliases, m["rating"], m["text"])
            out.append(_Hit(vid, aliases, tuple(m["fixed"]), rating, m["title"], tuple(m["links"][:MAX_LINKS]),
                            kev, epss))
        return tuple(out)

    def _fetch_enrichment(self, *merged: dict[str, dict[str, Any]]) -> None:
        """Fetch the enrichment of every CVE the vulnerabilities in ``merged`` (``_merged``'s
        per package) name that is not known yet, in one query (not two per vulnerability)."""
        if self._kinds is None:
            self._kinds = self.index.enrichment_kinds()
        if not self._kinds:
            return
        known = self._by_cve
        todo = {i for one in merged for vid, m in one.items() for i in (vid, *m["aliases"])
                if i.startswith("CVE-") and i not in known}
        if todo:
            known.update(self.index.enrichment_of(sorted(todo)))

    def _enrich(self, vid: str, aliases: frozenset, own: Rating | None, text: Rating | None
                ) -> tuple[Rating, KevListing | None, tuple | None]:
        """The severity by the order of sources (own CVSS -> another record's CVSS sharing an
        alias -> enrichment CVSS -> the record's textual rating -> UNKNOWN), KEV and EPSS."""
        k = (vid, aliases, own, text)
        got = self._enriched.get(k)
        if got is not None:
            return got
        ids = tuple(sorted({vid, *aliases}))
        cves = tuple(i for i in ids if i.startswith("CVE-"))
        if self._kinds is None:
            self._kinds = self.index.enrichment_kinds()
        kinds = self._kinds
        rating = own
        if rating is None:
            rows = self.index.alias_cvss(ids)
            if rows:
                rating = best_vector(sorted(((kind, vec, f"alias:{rid}") for rid, kind, vec in rows),
                                            key=lambda e: (kind_rank(e[0]), e[2], e[1])))
        known = self._by_cve
        if cves and kinds and any(c not in known for c in cves):
            known.update(self.index.enrichment_of([c for c in cves if c not in known]))
        if rating is None and cves and "cvss" in kinds:
            # the rows of every id, ordered as VulnIndex.enrichment_cvss orders them
            rows = sorted((r for c in cves for r in known[c][0]), key=lambda r: (r[3], r[0], r[2], r[4], r[5]))
            if rows:
                rating = best_vector([(kind, vec, f"{src}:{prov}") for _vid, src, prov, _rank, kind, vec in
                                      sorted(rows, key=lambda r: (r[3], kind_rank(r[4]), r[2], r[5]))])
        rating = rating or text or Rating(UNKNOWN.severity, source="none")
        kev_row = epss = None
        if cves and ("kev" in kinds or "epss" in kinds):
            kev_row = min((known[c][1] for c in cves if known[c][1] is not None), default=None)
            epss = max((known[c][2] for c in cves if known[c][2] is not None), default=None)
        kev = KevListing(*kev_row) if kev_row else None
        got = self._enriched[k] = (rating, kev, epss)
        return got

    def _evaluate_entry(self, entry: _Affected, version: str, key_of) -> tuple[bool, list[str]]:
        """(affected, fixed versions) of one compiled entry for one version."""
        affected = version in entry.versions
        fixes: list[str] = []
        for scheme, rng in entry.ranges:
            vk = key_of(scheme)
            if vk is None:
                continue
            hit, fix = _evaluate(vk, rng)
            if hit:
                affected = True
                if fix:
                    fixes.append(fix)
        if affected and not fixes and entry.fixed:
            fixes = self._fixes_above(entry, version, key_of)
        return affected, fixes

    def _skip_record(self, rid: str, reason: str) -> None:
        """Leave record ``rid`` out until :meth:`clear_cache`, with the reason
        (:attr:`MatchStats.skipped_records`)."""
        if rid not in self._refused:
            log.warning("skipping OSV record %s: %s", rid, reason)
        self._refused.add(rid)
        self._skipped_records[rid] = reason

    @staticmethod
    def _fixes_above(entry: _Affected, version: str, key_of) -> list[str]:
        """Fixed versions of an entry matched through ``versions`` only: those above ``version``."""
        out = []
        for scheme, rng in entry.ranges:
            vk = key_of(scheme)
            for ek, kind, raw in rng.events:
                if kind == _FIXED and (vk is None or ek > vk) and raw not in out:
                    out.append(raw)
        return out

    def _load(self, eco: str, name: str) -> tuple[_Affected, ...]:
        norm = index_name(eco, name)
        k = (eco, norm)
        cached = self._entries.get(k)
        if cached is not None:
            return cached
        compiled: list[_Affected] = []
        try:
            scheme: VersionScheme | None = comparator_for(eco)
        except VersionError:
            scheme = None
        for rid in self.index.record_ids_for(eco, name):
            if rid in self._refused:
                continue
            try:
                record = self.index.record(rid)
            except VulnDBError as e:
                self._skip_record(rid, str(e))
                continue
            if record is None:
                continue
            adv = self._advisories.get(rid)
            try:
                if adv is None:
                    # the index may have been written by an older vulnwatch that stored anything
                    why = check_record(record)
                    if why:
                        self._skip_record(rid, f"not a valid OSV record: {why}")
                        continue
                    adv = self._advisories[rid] = _advisory(record)
                compiled += self._compile(record, adv, eco, norm, scheme)
            except VersionError as e:
                self._skip_record(rid, f"{e} (in {eco} {name})")
            except Exception as e:
                # a valid record should never get here: a bug, reported, and the scan goes on
                log.exception("OSV record %s cannot be compiled", rid)
                self._skip_record(rid, f"cannot be compiled for {eco} {name} ({type(e).__name__}: {e})")
        out = self._entries[k] = tuple(compiled)
        return out

    @staticmethod
    def _compile(record: Mapping[str, Any], adv: _Advisory, eco: str, norm: str,
                 scheme: VersionScheme | None) -> list[_Affected]:
        out = []
        for aff in record.get("affected") or ():
            pkg = aff.get("package") or {}
            if pkg.get("ecosystem") != eco or index_name(eco, pkg.get("name", "")) != norm:
                continue
            ranges = []
            fixed: list[str] = []
            for rng in aff.get("ranges") or ():
                kind = rng.get("type")
                if kind == "SEMVER":
                    use = semver_for(eco)
                elif kind == "ECOSYSTEM" and scheme is not None:
                    use = scheme
                else:
                    continue  # GIT (and ranges of ecosystems without a comparator): versions only
                compiled = _compile_range(use, rng)
                ranges.append((use, compiled))
                fixed += [raw for _k, kind_, raw in compiled.events if kind_ == _FIXED and raw not in fixed]
            own = rate_vectors(record, aff)
            text = rate_text(record, aff)
            out.append(_Affected(adv, frozenset(aff.get("versions") or ()), tuple(ranges),
                                 Rating(own.severity, own.score, own.vector, f"record:{adv.record_id}") if own else None,
                                 Rating(text.severity, source=f"text:{adv.record_id}") if text else None,
                                 tuple(fixed)))
        return out
