"""Building package URLs (https://github.com/package-url/purl-spec) for catalogers."""

from __future__ import annotations

from urllib.parse import quote


def _enc(value: str, safe: str = "") -> str:
    return quote(value, safe=safe)


def purl(type_: str, name: str, version: str | None = None, *, namespace: str | None = None,
         qualifiers: dict[str, str | None] | None = None) -> str:
    """``pkg:type/namespace/name@version?k=v`` with each part percent-encoded and the
    qualifiers sorted by key (empty ones dropped), as the spec asks.

    >>> purl("deb", "libc6", "2.36-9+deb12u4", namespace="debian", qualifiers={"arch": "amd64"})
    'pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64'
    """
    out = f"pkg:{type_}/"
    if namespace:
        out += "/".join(_enc(p) for p in namespace.split("/")) + "/"
    out += _enc(name)
    if version:
        out += "@" + _enc(version, safe=":")  # epochs stay readable: 1:2.3-1
    quals = {k: v for k, v in (qualifiers or {}).items() if v}
    if quals:
        out += "?" + "&".join(f"{k}={_enc(v, safe=':')}" for k, v in sorted(quals.items()))  # type: ignore[arg-type]
    return out
