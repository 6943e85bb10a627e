"""What the VEX readers share: reading JSON, and a product id -> what it matches."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from packageurl import PackageURL

from .interface import PolicyError


def load_json(text: str, source: str) -> Any:
    """The JSON document, or :class:`PolicyError` with the line of the syntax error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise PolicyError(source, f"not valid JSON: {e.msg}", e.lineno) from None
    except (ValueError, RecursionError) as e:
        raise PolicyError(source, f"not valid JSON: {e}") from None


def is_image_purl(ref: str) -> bool:
    return ref.lower().startswith("pkg:oci/")


def image_digest(ref: str) -> str | None:
    """The digest an ``pkg:oci/NAME@sha256%3A...`` purl names (None when it names no version)."""
    try:
        p = PackageURL.from_string(ref)
    except ValueError:
        return None
    return unquote(p.version) if p.version else None


def check_purl(ref: str, source: str, where: str) -> str:
    """``ref`` when it is a purl that parses; :class:`PolicyError` otherwise."""
    try:
        PackageURL.from_string(ref)
    except ValueError as e:
        raise PolicyError(source, f"{where}: {ref!r} is not a valid purl ({e})") from None
    return ref
