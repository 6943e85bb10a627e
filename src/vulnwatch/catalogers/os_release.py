"""``etc/os-release`` -> :class:`Distro` with its OSV ecosystem.

OSV ecosystems carry the release where advisories depend on it: ``Debian:12``,
``Ubuntu:22.04:LTS`` (``:LTS`` only for LTS releases), ``Alpine:v3.19``
(major.minor), ``AlmaLinux:9``, ``Rocky Linux:9``; Red Hat advisories are under
``Red Hat``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from .interface import Distro

OS_RELEASE_PATHS = ("etc/os-release", "usr/lib/os-release")
"""Where os-release lives, in order of precedence (systemd's rule)."""
OS_RELEASE_MAX_SIZE = 64 * 1024
"""Size limit for os-release files (wanted whatever the catalogers are)."""


def parse_os_release(text: str) -> dict[str, str]:
    """The ``KEY=value`` pairs of an os-release file, shell quoting removed.

    Lines that are not assignments are ignored (the format allows comments and blanks).
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        key = key.strip()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            continue
        try:
            parts = shlex.split(raw, comments=False, posix=True)
            value = parts[0] if len(parts) == 1 else " ".join(parts)
        except ValueError:  # unbalanced quotes: keep what is there
            value = raw.strip().strip("\"'")
        out[key] = value
    return out


def _major(version_id: str) -> str:
    return version_id.split(".", 1)[0]


def _major_minor(version_id: str) -> str:
    m = re.match(r"(\d+)(?:\.(\d+))?", version_id)
    if not m:
        return version_id
    return f"{m.group(1)}.{m.group(2)}" if m.group(2) is not None else m.group(1)


def ecosystem_for(fields: dict[str, str]) -> str | None:
    """OSV ecosystem for parsed os-release fields, None for distributions OSV does not cover."""
    os_id = fields.get("ID", "").lower()
    vid = fields.get("VERSION_ID", "")
    if os_id == "debian":
        return f"Debian:{_major(vid)}" if vid else "Debian"
    if os_id == "ubuntu":
        if not vid:
            return "Ubuntu"
        lts = "LTS" in fields.get("VERSION", "") or "LTS" in fields.get("PRETTY_NAME", "")
        return f"Ubuntu:{vid}:LTS" if lts else f"Ubuntu:{vid}"
    if os_id == "alpine":
        return f"Alpine:v{_major_minor(vid)}" if vid else "Alpine"
    if os_id == "rhel":
        return "Red Hat"
    if os_id == "almalinux":
        return f"AlmaLinux:{_major(vid)}" if vid else "AlmaLinux"
    if os_id == "rocky":
        return f"Rocky Linux:{_major(vid)}" if vid else "Rocky Linux"
    if os_id == "wolfi":
        return "Wolfi"
    if os_id == "chainguard":
        return "Chainguard"
    if os_id == "opensuse-leap":
        return f"openSUSE:Leap {vid}" if vid else "openSUSE"
    if os_id in ("opensuse-tumbleweed",):
        return "openSUSE:Tumbleweed"
    if os_id == "photon":
        return f"Photon OS:{vid}" if vid else "Photon OS"
    if os_id == "mageia":
        return f"Mageia:{vid}" if vid else "Mageia"
    return None  # includes derivatives (ID_LIKE=debian): Debian advisories may not apply


def distro_from_os_release(text: str) -> Distro | None:
    """:class:`Distro` for the content of an os-release file, None when it has no ``ID``."""
    fields = parse_os_release(text)
    os_id = fields.get("ID", "").lower()
    if not os_id:
        return None
    return Distro(id=os_id, version_id=fields.get("VERSION_ID", ""), ecosystem=ecosystem_for(fields),
                  pretty_name=fields.get("PRETTY_NAME", ""), codename=fields.get("VERSION_CODENAME", ""))


def find_distro(files: Mapping[str, bytes]) -> Distro | None:
    """The distro of an image from its file map (``etc/os-release`` first, then
    ``usr/lib/os-release``), None when neither is present or both lack ``ID``."""
    for path in OS_RELEASE_PATHS:
        data = files.get(path)
        if data:
            distro = distro_from_os_release(data.decode("utf-8", "replace"))
            if distro:
                return distro
    return None
