"""Realistic scan results, built by hand: a Debian 12 image with a Python app and a Node app."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from vulnwatch.catalogers.purl import purl
from vulnwatch.model import Finding, Image, Package, ScanResult, ScanState, Severity

DIGEST = "sha256:" + "3f1a9c" + "0" * 52 + "beef01"
SCANNED_AT = datetime(2024, 5, 2, 9, 30, 15, tzinfo=timezone.utc)
DB_UPDATED_AT = datetime(2024, 5, 2, 6, 0, 0, tzinfo=timezone.utc)

IMAGE = Image(registry="prod-ecr", repository="team/app", digest=DIGEST, tags=("1.4.2", "latest"),
              pushed_at=datetime(2024, 5, 1, 18, 2, 0, tzinfo=timezone.utc),
              media_type="application/vnd.oci.image.manifest.v1+json", size_bytes=48_213_334)

DEB = "Debian:12"
LAYER_BASE = "sha256:" + "a1" * 32
LAYER_APP = "sha256:" + "b2" * 32


def deb(name, version, source=None, source_version=None):
    return Package(name=name, version=version, ecosystem=DEB,
                   purl=purl("deb", name, version, namespace="debian",
                             qualifiers={"arch": "amd64", "distro": "debian-12"}),
                   source_name=source, source_version=source_version, path="var/lib/dpkg/status",
                   layer=LAYER_BASE)


PACKAGES = (
    deb("libssl3", "3.0.11-1~deb12u2", "openssl"),
    deb("zlib1g", "1:1.2.13.dfsg-1", "zlib"),
    deb("perl-base", "5.36.0-7+deb12u1", "perl"),
    deb("apt", "2.6.1"),
    deb("libc6", "2.36-9+deb12u4", "glibc"),
    Package(name="Jinja2", version="2.10", ecosystem="PyPI", purl="pkg:pypi/jinja2@2.10",
            path="usr/local/lib/python3.11/site-packages/Jinja2-2.10.dist-info/METADATA", layer=LAYER_APP),
    Package(name="urllib3", version="1.24.1", ecosystem="PyPI", purl="pkg:pypi/urllib3@1.24.1",
            path="usr/local/lib/python3.11/site-packages/urllib3-1.24.1.dist-info/METADATA", layer=LAYER_APP),
    Package(name="requests", version="2.19.1", ecosystem="PyPI", purl="pkg:pypi/requests@2.19.1",
            path="usr/local/lib/python3.11/site-packages/requests-2.19.1.dist-info/METADATA", layer=LAYER_APP),
    Package(name="lodash", version="4.17.15", ecosystem="npm", purl="pkg:npm/lodash@4.17.15",
            path="srv/web/node_modules/lodash/package.json", layer=LAYER_APP),
    Package(name="minimist", version="1.2.0", ecosystem="npm", purl="pkg:npm/minimist@1.2.0",
            path="srv/web/node_modules/minimist/package.json", layer=LAYER_APP),
    # the same minimist again, nested under another package: same purl, other path
    Package(name="minimist", version="1.2.0", ecosystem="npm", purl="pkg:npm/minimist@1.2.0",
            path="srv/web/node_modules/mkdirp/node_modules/minimist/package.json", layer=LAYER_APP),
)

FINDINGS = (
    Finding("CVE-2023-45853", "zlib1g", "1:1.2.13.dfsg-1", Severity.CRITICAL, DEB,
            cvss_score=9.8, cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            title="MiniZip in zlib through 1.3 has an integer overflow in zipOpenNewFileInZip4_64",
            links=("https://security-tracker.debian.org/tracker/CVE-2023-45853",), scanner="builtin",
            purl=PACKAGES[1].purl),
    Finding("CVE-2018-18074", "requests", "2.19.1", Severity.CRITICAL, "PyPI",
            aliases=("GHSA-x84v-xcm2-53pg", "PYSEC-2018-28"), fixed_versions=("2.20.0",),
            cvss_score=9.8, cvss_vector="CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            title="Requests sends an HTTP Authorization header to an http URI upon receiving a same-hostname "
                  "https-to-http redirect", scanner="builtin", purl="pkg:pypi/requests@2.19.1"),
    Finding("CVE-2019-10906", "Jinja2", "2.10", Severity.HIGH, "PyPI",
            aliases=("GHSA-462w-v97r-4m45", "PYSEC-2019-217"), fixed_versions=("2.10.1",),
            cvss_score=8.6, cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:N/A:N",
            title="Jinja2 sandbox escape via str.format_map", scanner="builtin",
            purl="pkg:pypi/jinja2@2.10"),
    Finding("CVE-2023-31484", "perl-base", "5.36.0-7+deb12u1", Severity.HIGH, DEB,
            cvss_score=8.1, cvss_vector="CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H",
            title="CPAN.pm does not verify TLS certificates when downloading distributions over HTTPS",
            scanner="builtin"),
    Finding("CVE-2019-11324", "urllib3", "1.24.1", Severity.HIGH, "PyPI",
            aliases=("GHSA-mh33-7rrq-662w",), fixed_versions=("1.24.2",), cvss_score=7.5,
            cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
            title="urllib3 mishandles certain cases where the desired set of CA certificates is different "
                  "from the OS store of CA certificates", scanner="builtin"),
    Finding("CVE-2020-8203", "lodash", "4.17.15", Severity.HIGH, "npm",
            aliases=("GHSA-p6mc-m468-83gw",), fixed_versions=("4.17.19",), cvss_score=7.4,
            cvss_vector="CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:H/A:H",
            title="Prototype Pollution in lodash", scanner="builtin",
            links=("https://github.com/advisories/GHSA-p6mc-m468-83gw",
                   "https://nvd.nist.gov/vuln/detail/CVE-2020-8203")),
    # primary id is the GHSA; the CVE is an alias; two fixed versions (two branches)
    Finding("GHSA-vh95-rmgr-6w4m", "minimist", "1.2.0", Severity.MEDIUM, "npm",
            aliases=("CVE-2020-7598",), fixed_versions=("0.2.1", "1.2.3"), cvss_score=5.6,
            cvss_vector="CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:L/I:L/A:L",
            title="Prototype Pollution in minimist", scanner="builtin"),
    # scored with a CVSS v4 vector
    Finding("CVE-2024-0727", "libssl3", "3.0.11-1~deb12u2", Severity.LOW, DEB,
            fixed_versions=("3.0.13-1~deb12u1",), cvss_score=5.5,
            cvss_vector="CVSS:4.0/AV:L/AC:L/AT:N/PR:N/UI:A/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N",
            title="PKCS12 Decoding crashes", scanner="builtin"),
    Finding("CVE-2011-3374", "apt", "2.6.1", Severity.NEGLIGIBLE, DEB,
            title="It was found that apt-key in apt does not correctly validate gpg keys", scanner="builtin"),
    # Debian's temporary id, not yet triaged: no CVSS, no title, no fix
    Finding("TEMP-0290435-0B57B5", "libc6", "2.36-9+deb12u4", Severity.UNKNOWN, DEB, scanner="builtin",
            fix_available=False),
)


def make_result(**changes) -> ScanResult:
    fields = dict(image=IMAGE, scanner="builtin", scanned_at=SCANNED_AT, findings=FINDINGS,
                  vulnerability_source_updated_at=DB_UPDATED_AT, packages=PACKAGES, distro=DEB,
                  notes=("advisory data is 3 hours old",))
    fields.update(changes)
    return ScanResult(**fields)


@pytest.fixture
def result() -> ScanResult:
    """The Debian 12 + Python + Node image with ten findings of every severity."""
    return make_result()


@pytest.fixture
def ecr_result() -> ScanResult:
    """What the ECR scanner gives: findings but no inventory, no distro, no paths."""
    findings = (
        Finding("CVE-2023-45853", "zlib", "1:1.2.13.dfsg-1", Severity.CRITICAL, cvss_score=9.8,
                cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", scanner="ecr-enhanced",
                purl="pkg:deb/debian/zlib@1:1.2.13.dfsg-1?distro=debian-12", title="MiniZip integer overflow"),
        Finding("CVE-2023-31484", "perl", "5.36.0-7+deb12u1", Severity.HIGH, scanner="ecr-basic"),
        Finding("CVE-2023-31484", "perl-base", "5.36.0-7+deb12u1", Severity.HIGH, scanner="ecr-basic"),
    )
    return make_result(scanner="ecr-enhanced", findings=findings, packages=(), distro=None, notes=(),
                       vulnerability_source_updated_at=None)


@pytest.fixture
def unsupported_result() -> ScanResult:
    return make_result(scanner="ecr-basic", findings=(), packages=(), distro=None,
                       state=ScanState.UNSUPPORTED, notes=())
