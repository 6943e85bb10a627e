"""Ignore rules and VEX: which findings are suppressed (kept, shown, never counted or notified).

:data:`LOADERS` maps each input format to its reader (one module each); :func:`load_file` reads
a file in any of them, telling the format from the content; :class:`Policy` applies the rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..lazy import LazyMap
from ._match import Policy, matches, purl_matches
from .interface import IgnoreRule, Loader, PolicyError
from .rules import rules_from_mappings

__all__ = ["LOADERS", "IgnoreRule", "Loader", "Policy", "PolicyError", "detect", "load_file", "load_files",
           "load_text", "matches", "purl_matches", "rules_from_mappings"]

LOADERS: dict[str, type[Loader]] = LazyMap(__name__, {
    "rules": ".rules:RulesLoader", "trivyignore": ".trivyignore:TrivyIgnoreLoader",
    "openvex": ".openvex:OpenVexLoader", "cyclonedx": ".cyclonedx_vex:CycloneDxVexLoader",
})
"""Input format name -> its reader, each module imported when first used (CycloneDX's library
only for a CycloneDX document: :mod:`vulnwatch.lazy`)."""

VEX_FORMATS = ("openvex", "cyclonedx")
IGNORE_FORMATS = ("rules", "trivyignore")


def detect(text: str, name: str = "") -> str:
    """The format of a document: a JSON object is OpenVEX (an ``@context``) or CycloneDX (any other
    JSON object); a ``.yaml``/``.yml`` file, or text starting with ``rules:``/``vulnerabilities:``/
    ``ignore:``, is an ignore-rules file; anything else a ``.trivyignore`` id list."""
    head = text.lstrip("\ufeff \t\r\n")
    if head.startswith("{"):
        return "openvex" if '"@context"' in text[:4096] and "openvex" in text[:4096].lower() else "cyclonedx"
    if name.lower().endswith((".yaml", ".yml")) or head.startswith(("rules:", "vulnerabilities:", "ignore:")):
        return "rules"
    return "trivyignore"


def load_text(text: str, source: str, *, kind: str | None = None, name: str = "") -> tuple[IgnoreRule, ...]:
    """The rules of one document; ``kind`` ``vex`` or ``ignore`` refuses the other family."""
    fmt = detect(text, name or source)
    if kind == "vex" and fmt not in VEX_FORMATS:
        raise PolicyError(source, "not a VEX document: expected OpenVEX or CycloneDX JSON (ignore rules and "
                                  ".trivyignore files go in --ignorefile / ignore.files)")
    if kind == "ignore" and fmt not in IGNORE_FORMATS:
        raise PolicyError(source, "a VEX document: give it with --vex / ignore.vex (--ignorefile / ignore.files "
                                  "take ignore rules and .trivyignore files)")
    return LOADERS[fmt]().load(text, source)


def load_file(path: str | Path, *, kind: str | None = None) -> tuple[IgnoreRule, ...]:
    """The rules of one file (any format); :class:`PolicyError` naming it when it cannot be read."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise PolicyError(source, f"cannot read it: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise PolicyError(source, "not UTF-8 text", line) from None
    return load_text(text, source, kind=kind, name=Path(path).name)


def load_files(ignore: Iterable[str | Path] = (), vex: Iterable[str | Path] = (),
               rules: Iterable[IgnoreRule] = ()) -> Policy:
    """A :class:`Policy` of VEX documents (first: their statements win), ignore files and rules."""
    out: list[IgnoreRule] = []
    for p in vex:
        out.extend(load_file(p, kind="vex"))
    for p in ignore:
        out.extend(load_file(p, kind="ignore"))
    out.extend(rules)
    return Policy(out)
