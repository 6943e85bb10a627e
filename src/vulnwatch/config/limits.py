"""``limits``: deadlines and size bounds, so that a slow registry or a hostile image costs only
its own images. Every breach is an error of that image (or registry), named with the key that
bounds it; the other images go on. Data only: the stages enforce them (:mod:`vulnwatch.build`
turns this section into the stages' own values)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, model_validator

from .problems import loc_error
from .types import Duration, Model, format_duration

__all__ = ["ByteSize", "LimitsConfig", "format_bytes", "parse_bytes"]

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4, "tb": 1000**4}
_HINT = "use a number of bytes or a size such as 512KiB, 64MiB, 2GiB (or KB, MB, GB: powers of 1000)"


def parse_bytes(value: Any) -> int:
    """``4MiB`` -> 4194304, ``1GB`` -> 10**9, ``1024`` -> 1024. Raises ``ValueError``."""
    if isinstance(value, bool):
        raise ValueError(f"bad size {value!r}: {_HINT}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"bad size {value!r}: {_HINT}")
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"bad size {value!r}: {_HINT}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def format_bytes(n: int) -> str:
    """The shortest exact binary spelling: ``4MiB``, ``1536KiB``, ``100`` (bytes)."""
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


ByteSize = Annotated[int, BeforeValidator(parse_bytes),
                     PlainSerializer(format_bytes, return_type=str)]
"""A size in bytes, written as a number or ``64MiB`` / ``2GiB`` / ``500MB``."""


class LimitsConfig(Model):
    """Deadlines and size bounds. The defaults suit real fleets and images; lower them to bound
    memory and time further (every key is checked per image, registry or cycle)."""

    connect_timeout: Duration = timedelta(seconds=10)
    """One request to a registry: time to connect (TCP and TLS)."""
    read_timeout: Duration = timedelta(seconds=30)
    """One request to a registry: the longest wait for the next bytes of an answer."""
    request_timeout: Duration = timedelta(minutes=2)
    """One request to a registry other than a blob download (manifest, tag list, catalog, token),
    its whole answer: a server that drips bytes is cut off after this."""
    blob_timeout: Duration = timedelta(minutes=20)
    """One blob (layer or image config), its whole download."""
    image_timeout: Duration = timedelta(minutes=30)
    """One image: manifest, layers and cataloging. Past it the image fails with this key named;
    the others go on."""
    cycle_timeout: Duration = timedelta(hours=6)
    """One cycle (``run``, or one round of ``watch``), delivery included. Scanning stops
    ``delivery_timeout`` before it (the images not reached fail, named), so that what was
    recorded is delivered within it."""
    delivery_timeout: Duration = timedelta(minutes=5)
    """The part of ``cycle_timeout`` kept for delivering the cycle's notifications; what is not
    sent within it stays in the outbox for the next cycle. Less than ``cycle_timeout``."""
    max_manifest_bytes: ByteSize = Field(default=4 * 1024 * 1024, ge=1024)
    """A manifest or image index: larger ones are refused before they are read whole."""
    max_blob_bytes: ByteSize = Field(default=16 * 1024**3, ge=1024)
    """One compressed layer (or config) blob."""
    max_image_bytes: ByteSize = Field(default=16 * 1024**3, ge=1024)
    """Uncompressed layer bytes of one image, all layers together."""
    max_compression_ratio: float = Field(default=200.0, gt=1)
    """Uncompressed/compressed ratio of a layer (a decompression bomb), checked past 64 MiB."""
    max_tar_entries: int = Field(default=2_000_000, ge=1)
    """Tar entries of one image, all layers together."""
    max_metadata_bytes: ByteSize = Field(default=512 * 1024**2, ge=1024)
    """Package metadata kept from one image (dpkg status, ``package.json``, ``METADATA``, reduced
    archives ...), all catalogers together: what is held in memory while an image is read."""
    max_cataloger_bytes: ByteSize = Field(default=256 * 1024**2, ge=1024)
    """Package metadata handed to one cataloger for one image."""
    max_packages: int = Field(default=100_000, ge=1)
    """Packages of one image, all catalogers together."""
    max_cataloger_packages: int = Field(default=50_000, ge=1)
    """Packages (records: dpkg stanzas, apk records, rpm headers, ...) one cataloger reads from one
    image; a database with more is refused as it is read, not after."""
    zip_max_depth: int = Field(default=3, ge=1, le=16)
    """Archives nested in archives (``WEB-INF/lib/*.jar``): deeper ones are not read (1: the
    top-level archive only)."""
    zip_max_ratio: float = Field(default=100.0, gt=1)
    """Inflated/compressed ratio of one zip member (a zip bomb), checked past 1 MiB inflated."""
    zip_max_inflated_bytes: ByteSize = Field(default=1024**3, ge=1024)
    """Bytes inflated while reading one archive, nested archives included."""
    zip_max_members: int = Field(default=200_000, ge=1)
    """Entries of one archive, nested archives included."""

    @model_validator(mode="after")
    def _delivery_fits(self) -> "LimitsConfig":
        if self.delivery_timeout >= self.cycle_timeout:
            raise loc_error(("delivery_timeout",), f"delivery_timeout ({format_duration(self.delivery_timeout)}) "
                            f"must be less than cycle_timeout ({format_duration(self.cycle_timeout)}): it is the "
                            "part of the cycle kept for delivery")
        return self
