"""Hypothesis strategies: OSV records shaped like the schema, with arbitrary junk mixed in
at every level, and the version strings and CVSS vectors that go with them."""

from __future__ import annotations

from hypothesis import strategies as st

from vulnwatch.vulndb.schema import EVENT_KINDS

JSON_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
                | st.floats(allow_nan=False) | st.text(max_size=12))
JUNK = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
"""Any JSON value (no NaN: it is not equal to itself, which only complicates the oracles)."""


REAL_VERSIONS = ["0", "1.0", "1.0.0", "2.10", "2.10.1", "1:2.36-9+deb12u4", "1.1.1n-0+deb11u4", "7.74.0-1.3+deb11u7",
                 "3.0.7-r0", "1.2.3_rc1-r2", "v1.20.3", "1.2.3-beta.1+build.5", "0.0.0-20230101-abcdef",
                 "2.0.0.RELEASE", "1.0-SNAPSHOT", "5.3.0.Final", "1.0~rc1-1", "20230101", "2:1.0-1.el9",
                 "1.24.1", "2019.3", "1.0.post1", "1.0a1", "v0.0.0-20211216021012-1d35b9e2eb4e", "*"]
VERSIONS = st.one_of(
    st.sampled_from(REAL_VERSIONS),
    st.from_regex(r"\A[0-9]{1,3}(\.[0-9]{1,3}){0,3}([-~+_.:][0-9a-z]{1,4}){0,2}\Z"),
    st.text(max_size=10),
)
"""Version strings: real ones, version-shaped ones, and any text."""

ECOSYSTEMS = st.sampled_from(["PyPI", "Debian:11", "Debian", "Alpine:v3.11", "npm", "Go", "Maven", "crates.io",
                              "Red Hat", "Ubuntu:22.04:LTS", "NoSuchEcosystem"]) | st.text(max_size=8)
NAMES = st.sampled_from(["demo", "Jinja2", "openssl", "@scope/pkg", "golang.org/x/net", "org.example:lib"]) | st.text(
    min_size=1, max_size=8)
IDS = st.sampled_from(["PYSEC-2019-217", "DSA-5365-1", "GHSA-xxxx-yyyy-zzzz", "CVE-2023-1234", "GO-2024-1"]) | st.text(
    max_size=10)
TIMESTAMPS = st.sampled_from(["2024-01-01T00:00:00Z", "2024-02-02 07:18:32.552079+00:00"]) | st.text(max_size=8)

CVSS_VECTORS = st.one_of(
    st.sampled_from([
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.0/AV:L/AC:H/PR:H/UI:R/S:C/C:L/I:N/A:N",
        "AV:N/AC:L/Au:N/C:P/I:P/A:P", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
        "CVSS:3.1/AV:N", "CVSS:4.0/AV:N/AC:L", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:Q",
    ]),
    st.lists(st.from_regex(r"\A[A-Z]{1,4}:[A-Za-z0-9.]{1,5}\Z"), max_size=14).map("/".join),
    st.text(max_size=30),
)
"""CVSS vectors: valid, truncated, made of metric-shaped parts, and any text."""

def _records(w):
    """OSV-shaped records; ``w`` wraps every field's strategy (identity: well-typed)."""
    events = st.one_of(st.builds(lambda kind, version: {kind: version}, st.sampled_from(EVENT_KINDS), w(VERSIONS)),
                       st.builds(dict, introduced=st.just("0")))
    ranges = st.fixed_dictionaries(
        {"type": w(st.sampled_from(["ECOSYSTEM", "SEMVER", "GIT"])), "events": w(st.lists(w(events), min_size=1,
                                                                                         max_size=5))},
        optional={"repo": w(st.text(max_size=10)), "database_specific": w(st.dictionaries(st.text(max_size=4), JUNK,
                                                                                           max_size=2))})
    severities = st.fixed_dictionaries({"type": w(st.sampled_from(["CVSS_V3", "CVSS_V2", "CVSS_V4", "Ubuntu"])),
                                        "score": w(CVSS_VECTORS)})
    packages = st.fixed_dictionaries({"ecosystem": w(ECOSYSTEMS), "name": w(NAMES)},
                                     optional={"purl": w(st.text(max_size=10))})
    specific = w(st.dictionaries(st.sampled_from(["severity", "x", "imports"]),
                                 st.sampled_from(["HIGH", "MODERATE", "low"]) | JUNK, max_size=2))
    affected = st.fixed_dictionaries({"package": w(packages)}, optional={
        "ranges": w(st.lists(w(ranges), min_size=1, max_size=3)),
        "versions": w(st.lists(w(VERSIONS), min_size=1, max_size=4)),
        "severity": w(st.lists(w(severities), max_size=2) | st.none()),
        "ecosystem_specific": specific,
        "database_specific": specific,
    })
    references = st.fixed_dictionaries({"type": w(st.sampled_from(["ADVISORY", "WEB", "FIX"])),
                                        "url": w(st.text(max_size=20))})
    credits = st.fixed_dictionaries({"name": w(st.text(max_size=10))},
                                    optional={"contact": w(st.lists(w(st.text(max_size=10)), max_size=2)),
                                              "type": w(st.text(max_size=8))})
    ids = IDS.filter(bool)
    record = st.fixed_dictionaries(
        {"id": w(ids), "modified": w(TIMESTAMPS), "affected": w(st.lists(w(affected), min_size=1, max_size=3))},
        optional={
            "published": w(TIMESTAMPS),
            "withdrawn": w(TIMESTAMPS),
            "aliases": w(st.lists(w(ids), max_size=3) | st.none()),
            "related": w(st.lists(w(ids), max_size=2)),
            "upstream": w(st.lists(w(ids), max_size=3)),
            "summary": w(st.text(max_size=30)),
            "details": w(st.text(max_size=60)),
            "severity": w(st.lists(w(severities), max_size=2) | st.none()),
            "references": w(st.lists(w(references), max_size=3) | st.none()),
            "credits": w(st.lists(w(credits), max_size=2)),
            "database_specific": specific,
            "schema_version": w(st.just("1.7.0")),
            "x_unknown_field": JUNK,
        })
    return record, affected


VALID_RECORDS, VALID_AFFECTED = _records(lambda s: s)
"""Well-typed OSV records (all valid, except where a text strategy draws an empty id or
the like: the oracle is always :func:`~vulnwatch.vulndb.schema.check_record`)."""


@st.composite
def poisoned(draw, base: st.SearchStrategy):
    """A well-typed value with one place in it (any depth) replaced by junk."""
    value = draw(base)
    places = []

    def walk(node, path):
        places.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + (i,))

    walk(value, ())
    if len(places) == 1:  # a scalar: no inner place
        return draw(JUNK)
    path = draw(st.sampled_from(places[1:]))
    junk = draw(JUNK)
    node = value
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = junk
    return value


RECORDS = st.one_of(VALID_RECORDS, poisoned(VALID_RECORDS))
"""OSV-shaped records: half well-typed, half with junk in one place."""

AFFECTED = st.one_of(VALID_AFFECTED, poisoned(VALID_AFFECTED))

ANY_RECORD = st.one_of(RECORDS, RECORDS, RECORDS, JUNK)
"""A record, or any JSON value where a record should be."""
