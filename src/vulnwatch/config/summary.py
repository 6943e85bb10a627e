"""What ``vulnwatch check-config`` prints: the configuration in words, secrets left out."""

from __future__ import annotations

from .registries import EcrRegistryConfig, OciRegistryConfig, RepositorySelector
from .notifications import EmailSinkConfig, SlackSinkConfig, TeamsSinkConfig, WebhookSinkConfig
from .root import Config
from .limits import format_bytes
from .types import format_duration

__all__ = ["config_summary"]


def _selector_summary(sel: RepositorySelector) -> str:
    tags = "+" + ",".join(sel.tags.include)
    if sel.tags.exclude:
        tags += " -" + ",".join(sel.tags.exclude)
    out = f"{sel.name} (tags {tags}"
    if sel.newest:
        out += f", newest {sel.newest}"
    if sel.untagged:
        out += ", untagged too"
    return out + ")"


def config_summary(cfg: Config) -> list[str]:
    """Human-readable lines describing ``cfg``, secrets left out (for ``vulnwatch check-config``)."""
    lines = []
    if cfg.source is not None:
        lines.append(f"config: {cfg.source}")
    lines.append(f"state: {cfg.state.display_url()}")
    if not cfg.registries:
        lines.append("registries: none")
    for r in cfg.registries:
        if isinstance(r, EcrRegistryConfig):
            where = f"region {r.region or '(AWS default)'}"
            if r.registry_id:
                where += f", account {r.registry_id}"
            if r.endpoint_url:
                where += f", endpoint {r.endpoint_url}"
            scan = f"scan {r.scan.mode}"
        elif isinstance(r, OciRegistryConfig):
            where = r.url + (" (insecure)" if r.insecure else "")
            if r.username:
                where += f", user {r.username}"
            where += f", platform {r.platform}"
            scan = "scan builtin"
        else:
            where = str(r.path)
            scan = "scan builtin"
        lines.append(f"registry {r.name} ({r.type}): {where}; {scan} every {format_duration(r.scan.interval)}, "
                     f"wait up to {format_duration(r.scan.wait_timeout)}; max {r.max_concurrency} concurrent")
        sels = "; ".join(_selector_summary(s) for s in r.selectors())
        lines.append(f"  repositories: {sels}")
        if r.watch_list:
            lines.append(f"  watch list: {r.watch_list}")
    if not cfg.notifications:
        lines.append("notifications: none")
    for s in cfg.notifications:
        text = (f"notification {s.name} ({s.type}, {s.mode}): min severity {s.min_severity.name}, "
                f"{'fixable only' if s.fixable_only else 'fixable or not'}, repositories "
                f"{', '.join(s.repositories) or 'all'}, timeout {format_duration(s.timeout)}")
        if isinstance(s, WebhookSinkConfig):
            text += f", {'signed' if s.secret else 'unsigned'}"
            if s.headers:
                text += f", headers {', '.join(sorted(s.headers))}"
        if isinstance(s, EmailSinkConfig):
            text += (f", smtp {s.host}:{s.smtp_port} {s.tls}" + (f", user {s.username}" if s.username else "")
                     + f", from {s.from_} to {', '.join(s.to)}")
            if s.ca_file:
                text += f", CA {s.ca_file}"
            if s.tls == "none":
                text += ", TLS NOT USED"
        if isinstance(s, (SlackSinkConfig, TeamsSinkConfig, EmailSinkConfig)):
            text += f", up to {s.max_listed} findings per list"
        if hasattr(s, "max_payload_bytes"):
            text += f", messages up to {s.max_payload_bytes:,} bytes"
            if isinstance(s, WebhookSinkConfig):
                text += " (larger ones in parts)"
        if getattr(s, "verify_tls", True) is False:
            text += ", TLS NOT VERIFIED"
        lines.append(text)
    w = cfg.web
    lines.append(f"web: {w.host}:{w.port}, {'auth required' if w.auth_required else 'no auth'}, "
                 f"{'writes enabled' if w.write_token else 'read-only'}")
    sv = cfg.service
    when = f"cron '{sv.cron}' (UTC)" if sv.cron else f"every {format_duration(sv.interval)}"
    health = f"health on {sv.health_host}:{sv.health_port}" if sv.health_port else "no health endpoint"
    lines.append(f"service: cycles {when}, lease {format_duration(sv.lease_ttl)}, "
                 f"{'workers share the store (claims)' if sv.workers else 'one cycle at a time per store'}, {health}")
    lim = cfg.limits
    lines.append(f"limits: cycle {format_duration(lim.cycle_timeout)} ({format_duration(lim.delivery_timeout)} of it "
                 f"kept for delivery), image {format_duration(lim.image_timeout)}, blob "
                 f"{format_duration(lim.blob_timeout)}, request {format_duration(lim.request_timeout)} (read "
                 f"{format_duration(lim.read_timeout)}); manifests up to {format_bytes(lim.max_manifest_bytes)}, "
                 f"metadata up to {format_bytes(lim.max_metadata_bytes)} and {lim.max_packages:,} packages per image")
    d = cfg.delivery
    lines.append(f"delivery: up to {d.max_attempts} attempts, backoff {format_duration(d.backoff_base)} "
                 f"doubling to {format_duration(d.backoff_max)}")
    return lines
