"""Real Registry v2 servers (Debian ``docker-registry`` 2.8) on 127.0.0.1 for tests.

``start_registry(workdir)`` starts one with no auth; ``users={"u": "pw"}`` turns on
htpasswd basic auth (bcrypt via ``htpasswd -Bbn``); ``token_server=`` turns on token
auth against :class:`tests.support.token_server.TokenServer`. Images are pushed with
``skopeo copy`` (:meth:`RunningRegistry.push`).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.servers import free_port
from tests.support.token_server import ISSUER, SERVICE, TokenServer


@dataclass
class RunningRegistry:
    """A started ``docker-registry serve``; ``rootdir`` is its storage on disk."""

    proc: subprocess.Popen
    port: int
    rootdir: Path
    auth: str
    """``none``, ``basic`` or ``token``."""
    push_creds: str | None = None
    """``user:password`` skopeo pushes with (auth variants)."""
    token_server: TokenServer | None = None
    log_path: Path | None = None
    pushed: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def push(self, source: str, repository: str, tag: str, *, fmt: str | None = None, all_platforms: bool = False) -> None:
        """``skopeo copy SOURCE docker://host/repository:tag`` (``source`` like ``oci:DIR:TAG``)."""
        cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
        if self.push_creds:
            cmd += ["--dest-creds", self.push_creds]
        if fmt:
            cmd += ["--format", fmt]
        if all_platforms:
            cmd += ["--all"]
        cmd += [source, f"docker://{self.host}/{repository}:{tag}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"skopeo push of {source} to {repository}:{tag} failed: {proc.stderr}")
        self.pushed.append(f"{repository}:{tag}")

    def blob_path(self, digest: str) -> Path:
        """Where the registry keeps a blob on disk (to corrupt it in tests)."""
        hexpart = digest.split(":", 1)[1]
        return self.rootdir / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _htpasswd(users: dict[str, str]) -> str:
    lines = []
    for user, password in users.items():
        out = subprocess.run(["htpasswd", "-Bbn", user, password], capture_output=True, text=True, check=True)
        lines.append(out.stdout.strip())
    return "\n".join(lines) + "\n"


def start_registry(workdir: Path, *, users: dict[str, str] | None = None,
                   token_server: TokenServer | None = None, push_creds: str | None = None) -> RunningRegistry:
    """Start ``docker-registry serve`` on a free port with storage under ``workdir``; ready on return."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    rootdir = workdir / "storage"
    config: dict = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(rootdir)}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "vulnwatch-test-secret"},
    }
    auth = "none"
    if users:
        (workdir / "htpasswd").write_text(_htpasswd(users))
        config["auth"] = {"htpasswd": {"realm": "vulnwatch-test", "path": str(workdir / "htpasswd")}}
        auth = "basic"
    elif token_server:
        (workdir / "token-ca.pem").write_bytes(token_server.cert_pem)
        config["auth"] = {"token": {"realm": token_server.realm, "service": SERVICE, "issuer": ISSUER,
                                    "rootcertbundle": str(workdir / "token-ca.pem")}}
        auth = "token"
    cfg_path = workdir / "config.yml"
    cfg_path.write_text(json.dumps(config))  # JSON is YAML
    log_path = workdir / "registry.log"
    log = open(log_path, "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    proc = subprocess.Popen(["docker-registry", "serve", str(cfg_path)], stdout=log, stderr=subprocess.STDOUT,
                            env=env)
    log.close()
    reg = RunningRegistry(proc, port, rootdir, auth, push_creds=push_creds, token_server=token_server,
                          log_path=log_path)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log_path.read_text()[-2000:]}")
        try:
            httpx.get(f"{reg.url}/v2/", timeout=1.0)
            return reg
        except httpx.HTTPError:
            time.sleep(0.05)
    reg.stop()
    raise RuntimeError(f"docker-registry on {reg.url} not ready: {log_path.read_text()[-2000:]}")
