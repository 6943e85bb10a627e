"""ECRScanner in enhanced (Inspector) mode, findings injected into moto_server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from vulnwatch.model import Image, Severity
from vulnwatch.scanners.ecr import ECRScanner, map_enhanced_finding, platform_ecosystem
from vulnwatch.scanners.interface import ScanError

from tests.support.ecr import ts

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def enhanced_finding(**over) -> dict:
    f = {
        "awsAccountId": "123456789012",
        "findingArn": "arn:aws:inspector2:us-east-1:123456789012:finding/abc",
        "description": "A flaw in OpenSSL's X.509 handling.",
        "title": "CVE-2023-0286 - openssl, libssl3",
        "severity": "HIGH",
        "status": "ACTIVE",
        "type": "PACKAGE_VULNERABILITY",
        "score": 7.4,
        "fixAvailable": "PARTIAL",
        "exploitAvailable": "NO",
        "firstObservedAt": ts(NOW - timedelta(days=3)),
        "lastObservedAt": ts(NOW - timedelta(hours=2)),
        "updatedAt": ts(NOW - timedelta(hours=2)),
        "packageVulnerabilityDetails": {
            "vulnerabilityId": "CVE-2023-0286",
            "source": "DEBIAN_CVE",
            "sourceUrl": "https://security-tracker.debian.org/tracker/CVE-2023-0286",
            "referenceUrls": ["https://www.openssl.org/news/secadv/20230207.txt",
                              "https://security-tracker.debian.org/tracker/CVE-2023-0286"],
            "relatedVulnerabilities": ["DSA-5343-1", "CVE-2023-0286"],
            "vendorSeverity": "high",
            "cvss": [
                {"baseScore": 5.8, "scoringVector": "AV:N/AC:M/Au:N/C:P/I:N/A:P", "source": "NVD", "version": "2.0"},
                {"baseScore": 7.4, "scoringVector": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:H",
                 "source": "NVD", "version": "3.1"},
            ],
            "vulnerablePackages": [
                {"name": "openssl", "version": "3.0.11", "release": "1~deb12u1", "epoch": 0,
                 "packageManager": "OS", "arch": "AMD64", "fixedInVersion": "0:3.0.11-1~deb12u2"},
                {"name": "libssl3", "version": "3.0.11", "release": "1~deb12u1", "epoch": 1,
                 "packageManager": "OS", "arch": "AMD64", "fixedInVersion": "NotAvailable"},
            ],
        },
        "resources": [{"type": "AWS_ECR_CONTAINER_IMAGE", "id": "arn:...",
                       "details": {"awsEcrContainerImage": {"platform": "DEBIAN_12", "repositoryName": "app",
                                                            "imageHash": "sha256:x"}}}],
    }
    f.update(over)
    return f


def python_finding() -> dict:
    return {
        "title": "GHSA-xxxx - jinja2", "severity": "MEDIUM", "fixAvailable": "YES", "exploitAvailable": "YES",
        "packageVulnerabilityDetails": {
            "vulnerabilityId": "GHSA-462w-v97r-4m45", "relatedVulnerabilities": ["CVE-2019-10906"],
            "cvss": [{"baseScore": 8.6, "scoringVector": "AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:N/A:N",
                      "version": "3.0", "source": "GITHUB"}],
            "vulnerablePackages": [{"name": "Jinja2", "version": "2.10", "packageManager": "PYTHONPKG",
                                    "fixedInVersion": "2.10.1", "filePath": "usr/lib/python3/site-packages"}],
        },
    }


def enhanced_result(repo: str, digest: str, findings: list[dict]) -> dict:
    return {
        "registryId": "123456789012", "repositoryName": repo, "imageId": {"imageDigest": digest},
        "imageScanStatus": {"status": "ACTIVE", "description": "Continuous scan is selected."},
        "imageScanFindings": {"enhancedFindings": findings, "findingSeverityCounts": {"HIGH": 1},
                              "vulnerabilitySourceUpdatedAt": ts(NOW - timedelta(hours=1))},
    }


@pytest.fixture
def enhanced_registry(moto, ecr):
    ecr.put_registry_scanning_configuration(
        scanType="ENHANCED",
        rules=[{"scanFrequency": "CONTINUOUS_SCAN", "repositoryFilters": [{"filter": "*", "filterType": "WILDCARD"}]}])
    return ecr


def test_enhanced_findings_mapped_from_moto(moto, enhanced_registry, pusher):
    ecr = enhanced_registry
    digest = pusher.push("app", "latest")
    ecr.start_image_scan(repositoryName="app", imageId={"imageDigest": digest})  # moto needs a scan on record
    moto.inject_findings([enhanced_result("app", digest, [enhanced_finding(), python_finding()])])
    s = ECRScanner(region="us-east-1", endpoint_url=moto.url, poll_initial=0.01)  # mode auto
    img = Image(registry="prod", repository="app", digest=digest, tags=("latest",))
    result = s.scan(img)

    assert s.name == "ecr-enhanced" and result.scanner == "ecr-enhanced"
    assert s.calls["StartImageScan"] == 0 and s.calls["GetRegistryScanningConfiguration"] == 1
    assert len(result.findings) == 3  # one per (vulnerability, package, version)
    by_pkg = {f.package_name: f for f in result.findings}
    ossl = by_pkg["openssl"]
    assert ossl.vulnerability_id == "CVE-2023-0286"
    assert ossl.package_version == "3.0.11-1~deb12u1" and ossl.ecosystem == "Debian:12"
    assert by_pkg["libssl3"].package_version == "1:3.0.11-1~deb12u1"
    assert ossl.fixed_versions == ("0:3.0.11-1~deb12u2",) and by_pkg["libssl3"].fixed_versions == ()
    assert ossl.fix_available is True and ossl.exploit_available is False
    assert ossl.cvss_score == 7.4 and ossl.cvss_vector.startswith("CVSS:3.1/")
    assert ossl.severity is Severity.HIGH
    assert ossl.aliases == ("DSA-5343-1",)
    assert ossl.links[0] == "https://security-tracker.debian.org/tracker/CVE-2023-0286"
    assert len(ossl.links) == 2  # duplicates dropped
    assert ossl.title == "CVE-2023-0286 - openssl, libssl3"
    jinja = by_pkg["Jinja2"]
    assert (jinja.ecosystem, jinja.package_version, jinja.fixed_versions) == ("PyPI", "2.10", ("2.10.1",))
    assert jinja.exploit_available is True and jinja.fix_available is True
    assert jinja.cvss_vector == "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:N/A:N" and jinja.cvss_score == 8.6
    assert jinja.aliases == ("CVE-2019-10906",)
    assert result.scanned_at == NOW - timedelta(hours=2)  # latest finding update when no completion time
    assert result.vulnerability_source_updated_at == NOW - timedelta(hours=1)
    assert result.distro == "Debian:12"


def test_enhanced_never_starts_scans_and_reports_missing_scan(moto, enhanced_registry, pusher):
    digest = pusher.push("app", "latest")
    s = ECRScanner(region="us-east-1", endpoint_url=moto.url, mode="enhanced")
    with pytest.raises(ScanError) as e:
        s.scan(Image(registry="prod", repository="app", digest=digest))
    assert e.value.code == "ScanNotFoundException"
    assert s.calls["StartImageScan"] == 0


def test_enhanced_unsupported_image_status_is_error(moto, enhanced_registry, pusher, proxy):
    digest = pusher.push("app", "latest")
    proxy.queue_status(digest, "UNSUPPORTED_IMAGE", description="The operating system is not supported.")
    s = ECRScanner(region="us-east-1", endpoint_url=proxy.url, mode="enhanced")
    with pytest.raises(ScanError, match="not supported") as e:
        s.scan(Image(registry="prod", repository="app", digest=digest))
    assert e.value.code == "UNSUPPORTED_IMAGE"


def test_enhanced_served_by_proxy_with_pages(moto, enhanced_registry, pusher, proxy):
    digest = pusher.push("app", "latest")
    many = [enhanced_finding(packageVulnerabilityDetails={
        **enhanced_finding()["packageVulnerabilityDetails"], "vulnerabilityId": f"CVE-2024-{i:05d}"})
        for i in range(150)]
    proxy.findings[digest] = enhanced_result("app", digest, many)
    s = ECRScanner(region="us-east-1", endpoint_url=proxy.url, mode="enhanced")
    result = s.scan(Image(registry="prod", repository="app", digest=digest))
    assert len(result.findings) == 300  # 150 vulnerabilities x 2 packages
    assert proxy.calls["DescribeImageScanFindings"] == 2


def test_auto_mode_falls_back_to_basic(moto):
    s = ECRScanner(region="us-east-1", endpoint_url=moto.url)
    assert s.name == "ecr-basic"


def test_mapping_helpers():
    assert platform_ecosystem("UBUNTU_22_04") == "Ubuntu:22.04"
    assert platform_ecosystem("ALPINE_LINUX_3_19") == "Alpine:v3.19"
    assert platform_ecosystem("WINDOWS_SERVER_2022") == ""
    f = enhanced_finding(fixAvailable="NO", exploitAvailable=None, severity="UNTRIAGED")
    out = map_enhanced_finding(f)
    assert all(x.fix_available is False and x.exploit_available is None for x in out)
    assert all(x.severity is Severity.UNKNOWN for x in out)
