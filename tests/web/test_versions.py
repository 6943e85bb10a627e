"""The version order used to pick an upgrade target among fixed versions."""

from __future__ import annotations

import pytest

from vulnwatch.web.versions import needed_fix, version_key


@pytest.mark.parametrize("low, high", [
    ("1.24.2", "1.26.18"), ("1.9", "1.10"), ("2.10.1", "2.11.3"), ("1.0", "1.0.1"),
    ("7.74.0-1.3+deb11u2", "7.74.0-1.3+deb11u7"), ("1.0~rc1-1", "1.0-1"), ("9:1.0", "1:2.0") [::-1],
    ("1.1.1n-0+deb11u4", "1.1.1n-0+deb11u5"), ("2.36.1-8", "2.36.1-8+deb11u1"),
])
def test_order(low, high):
    assert version_key(low) < version_key(high)


def test_needed_fix_is_the_lowest_fix_above_the_installed_version():
    assert needed_fix("1.24.1", ["2.0.7", "1.26.18"]) == "1.26.18"
    assert needed_fix("2.0.0", ["2.0.7", "1.26.18"]) == "2.0.7"
    assert needed_fix("3.0", ["1.0"]) == "1.0"          # nothing above: the lowest given
    assert needed_fix("1.0", []) is None
