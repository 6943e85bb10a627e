"""CVSS vectors -> score and rating; fallbacks to the records' own ratings."""

from __future__ import annotations

from vulnwatch.model import Severity
from vulnwatch.vulndb.severity import rate, rating_from_score, score_vector

V31_CRIT = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
V31_MED = "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N"
V4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:H/UI:N/VC:L/VI:L/VA:N/SC:N/SI:N/SA:N"
V2 = "AV:N/AC:L/Au:N/C:P/I:P/A:P"


def test_cvss_versions():
    r3 = score_vector("CVSS_V3", V31_CRIT)
    assert (r3.severity, r3.score, r3.vector) == (Severity.CRITICAL, 9.8, V31_CRIT)
    assert score_vector("CVSS_V3", V31_MED).severity is Severity.MEDIUM
    r4 = score_vector("CVSS_V4", V4)
    assert (r4.severity, r4.score) == (Severity.MEDIUM, 5.1)
    r2 = score_vector("CVSS_V2", V2)
    assert (r2.severity, r2.score) == (Severity.HIGH, 7.5)
    assert score_vector("CVSS_V3", "CVSS:3.1/garbage") is None
    assert score_vector("Ubuntu", "high") is None


def test_preference_and_fallbacks():
    both = {"severity": [{"type": "CVSS_V2", "score": V2}, {"type": "CVSS_V3", "score": V31_MED}]}
    assert rate(both).score == rate({"severity": [{"type": "CVSS_V3", "score": V31_MED}]}).score
    # affected-level vector wins over the record's
    assert rate(both, {"severity": [{"type": "CVSS_V3", "score": V31_CRIT}]}).severity is Severity.CRITICAL
    # broken vector falls through to the next kind
    broken = {"severity": [{"type": "CVSS_V3", "score": "nope"}, {"type": "CVSS_V2", "score": V2}]}
    assert rate(broken).severity is Severity.HIGH
    assert rate({"database_specific": {"severity": "MODERATE"}}).severity is Severity.MEDIUM
    assert rate({}, {"ecosystem_specific": {"severity": "low"}}).severity is Severity.LOW
    assert rate({}).severity is Severity.UNKNOWN and rate({}).score is None


def test_score_bands():
    assert [rating_from_score(s) for s in (0.0, 0.1, 4.0, 7.0, 9.0)] == [
        Severity.NEGLIGIBLE, Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]
    assert rating_from_score(3.9, 2) is Severity.LOW and rating_from_score(10.0, 2) is Severity.HIGH
