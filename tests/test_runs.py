"""vulnwatch.runs: a result's findings a package at a time (the walk, its caches, joined)."""

from __future__ import annotations

from vulnwatch.model import Finding, Severity, findings_signature, severity_counts as plain_counts
from vulnwatch.runs import joined, runs, severity_counts, signature_total, totals
from vulnwatch.model import signature_of


def f(vid: str, pkg: str = "openssl", ver: str = "3.0.11-1", sev: Severity = Severity.HIGH) -> Finding:
    return Finding(vulnerability_id=vid, package_name=pkg, package_version=ver, severity=sev, ecosystem="Debian:12")


def test_a_package_is_one_run_even_after_a_shorter_run_of_it_was_seen():
    a, b, c = f("CVE-1"), f("CVE-2"), f("CVE-3", sev=Severity.LOW)
    assert [len(r.items) for r in runs((a, b))] == [2]
    # the same first findings, then one more of the same package: one run (one stored set), not
    # the cached shorter run and a second run of the same package
    whole = runs((a, b, c))
    assert [len(r.items) for r in whole] == [3]
    assert [len(r.items) for r in runs((a, b, c, f("CVE-4", pkg="zlib")))] == [3, 1]


def test_runs_found_again_are_the_same_runs():
    a, b, c = f("CVE-1"), f("CVE-2"), f("CVE-3")
    first = runs((a, b, c))[0]
    runs((a,))                       # another run starting at the same finding
    assert runs((f("CVE-0", pkg="zlib"), a, b, c))[1] is first


def test_joined_is_what_walking_gives():
    x = (f("CVE-1"), f("CVE-2", sev=Severity.CRITICAL))
    y = (f("CVE-3", pkg="zlib", ver="1.2"),)
    z = (f("CVE-4", pkg="curl", ver="8.0", sev=Severity.LOW),)
    parts = [runs(x)[0], runs(y)[0], runs(z)[0]]
    seq = joined(parts)
    assert seq == x + y + z
    assert runs(seq) == parts
    plain = tuple(seq)[:]            # the same findings in a tuple of their own: walked
    walked = runs(tuple(list(seq)))
    assert [(r.sid, r.items) for r in walked] == [(r.sid, r.items) for r in parts]
    assert severity_counts(seq) == plain_counts(plain)
    assert signature_of(*signature_total(seq)) == findings_signature(plain)
    assert totals(seq)[0] == 4 and totals(seq)[3] == 0


def test_joined_neighbours_of_one_package_are_walked_as_one_run():
    a, b = runs((f("CVE-1"),))[0], runs((f("CVE-2"),))[0]
    seq = joined([a, b])
    assert [len(r.items) for r in runs(seq)] == [2]
