"""The Dockerfile and the Kubernetes examples, checked without docker or a cluster: hadolint, the
Kubernetes schemas (kubernetes-validate, strict), the paths they copy or mount, and that the
configuration they carry is one vulnwatch accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from vulnwatch.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    return DockerfileParser(path=str(ROOT / "Dockerfile"))


def instructions(df: DockerfileParser, name: str) -> list[str]:
    return [i["value"] for i in df.structure if i["instruction"] == name]


def test_hadolint_finds_nothing():
    out = subprocess.run(["hadolint", "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_copied_path_exists_and_dockerignore_lets_it_through(dockerfile):
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copies = [v.split() for v in instructions(dockerfile, "COPY") if not v.startswith("--from")]
    assert copies
    for *sources, _dest in copies:
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: no such path in the repository"
            assert src.rstrip("/") in allowed, f"COPY {src}: excluded by .dockerignore"


def test_the_image_runs_unprivileged_with_state_and_cache_in_volumes(dockerfile):
    user = instructions(dockerfile, "USER")[-1]
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) >= 1000    # numeric: runAsNonRoot can check it
    env = dockerfile.envs
    volumes = " ".join(instructions(dockerfile, "VOLUME"))
    for var in ("HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        assert env[var] in volumes, f"{var}={env[var]} is not a volume: it would need a writable root"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["TMPDIR"] == "/tmp"
    assert instructions(dockerfile, "ENTRYPOINT") == ['["vulnwatch"]']
    assert "watch" in instructions(dockerfile, "CMD")[-1]
    assert "/healthz" in instructions(dockerfile, "HEALTHCHECK")[-1]
    baked = parse_config((ROOT / "deploy" / "vulnwatch.yaml").read_text(), environ={})
    for path in (baked.state.path, baked.vulndb.path, baked.layer_cache.path):
        assert any(str(path).startswith(v) for v in (env["HOME"], env["XDG_CACHE_HOME"])), path
    assert f"EXPOSE {baked.service.health_port}" in dockerfile.content


def test_kubernetes_examples_validate_against_the_schemas():
    out = subprocess.run(["kubernetes-validate", "--strict", *map(str, sorted(K8S.glob("*.yaml")))],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("passed") == 4


def _docs():
    return {d["kind"]: d for f in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())}


def test_the_workloads_probe_the_health_endpoint_and_mount_what_the_image_needs(dockerfile):
    docs = _docs()
    cfg = parse_config(docs["ConfigMap"]["data"]["vulnwatch.yaml"],
                       environ={k: "x" for k in docs["Secret"]["stringData"]} | {
                           "SIEM_WEBHOOK_URL": "https://siem.example.com/x",
                           "DIGEST_WEBHOOK_URL": "https://chat.example.com/x"})
    deployment = docs["Deployment"]["spec"]["template"]["spec"]
    cron = docs["CronJob"]["spec"]
    (watch,) = deployment["containers"]
    (run,) = cron["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert "watch" in watch["args"] and run["args"][run["args"].index("run") + 1] == "--wait"
    assert watch["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert watch["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert watch["ports"][0]["containerPort"] == cfg.service.health_port
    assert cron["concurrencyPolicy"] == "Forbid" and cron["schedule"] == cfg.service.cron
    volumes = " ".join(instructions(dockerfile, "VOLUME"))
    for pod, c in ((deployment, watch), (cron["jobTemplate"]["spec"]["template"]["spec"], run)):
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert {"/tmp", "/etc/vulnwatch"} <= mounts
        assert all(v.strip('[]",') in mounts for v in volumes.split())
        assert {e["name"]: e["value"] for e in c["env"]}["VULNWATCH_CONFIG"] == "/etc/vulnwatch/vulnwatch.yaml"
