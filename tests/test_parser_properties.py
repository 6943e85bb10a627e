"""Property-based tests (hypothesis) for the parsers not covered next to their packages: image
manifests and indexes, tar layers, os-release, the YAML configuration, durations and sizes,
``Retry-After`` and ``WWW-Authenticate``. On any input each returns a value or raises only its
documented error type (``RegistryError``, ``LayerError``, ``ConfigError``, ``ValueError``)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vulnwatch.catalogers.interface import Distro
from vulnwatch.catalogers.os_release import find_distro, parse_os_release
from vulnwatch.config import ConfigError, parse_config
from vulnwatch.config.limits import parse_bytes
from vulnwatch.config.types import parse_duration
from vulnwatch.notify._http import parse_retry_after
from vulnwatch.registries._manifest import (INDEX_TYPES, OCI_INDEX, OCI_MANIFEST, choose_platform, descriptor,
                                            parse_manifest, resolve_manifests)
from vulnwatch.registries.auth import parse_challenge
from vulnwatch.registries.interface import Manifest, RegistryError
from vulnwatch.walker import LayerError, LayerStack, WalkPlan

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
DIGEST = st.sampled_from(["sha256:" + "a" * 64, "sha256:" + "b" * 64, "sha512:" + "c" * 128, "md5:xyz", "", "sha256:"])
PLATFORM = st.one_of(st.none(), st.fixed_dictionaries({"os": st.sampled_from(["linux", "windows", "", "unknown"]),
                                                        "architecture": st.sampled_from(["amd64", "arm64", ""])},
                                                       optional={"variant": st.sampled_from(["v8", "v7", ""])}),
                     JSON)
DESCRIPTOR = st.fixed_dictionaries({}, optional={"mediaType": st.sampled_from([OCI_MANIFEST, OCI_INDEX, "x", ""]),
                                                 "digest": DIGEST | JSON, "size": st.integers(-5, 10**6) | JSON,
                                                 "platform": PLATFORM})
MANIFEST_DOC = st.fixed_dictionaries({}, optional={
    "schemaVersion": st.sampled_from([1, 2, "2", None]), "mediaType": st.sampled_from([OCI_MANIFEST, OCI_INDEX, ""]),
    "config": DESCRIPTOR | JSON, "layers": st.lists(DESCRIPTOR, max_size=3) | JSON,
    "manifests": st.lists(DESCRIPTOR, max_size=3) | JSON})
RAW = st.one_of(MANIFEST_DOC.map(lambda d: json.dumps(d).encode()), st.binary(max_size=60),
                JSON.map(lambda d: json.dumps(d).encode()))
WHERE = {"registry": "r", "repository": "repo", "reference": "1"}


@settings(max_examples=settings.default.max_examples)
@example(b'{"manifests": [{"digest": "sha256:aa", "platform": {"os": "linux", "architecture": "amd64"}}]}',
         "linux/amd64", False)
@example(b'{"config": {"digest": 5}, "layers": [{"digest": "x", "size": "big"}]}', "linux/amd64", True)
@example(b'[1, 2]', "linux/amd64", False)
@example(b'{"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": 0}', "linux/amd64", False)  # TypeError
@example(b'{"manifests": [{"digest": "sha256:aa", "platform": {"os": 1, "architecture": []}}]}', "linux/amd64", True)
@given(RAW, st.sampled_from(["linux/amd64", "linux/arm64/v8"]), st.booleans())
def test_manifests_and_indexes_raise_only_registry_errors(raw, platform, every):
    docs = {"ref": raw}

    def fetch(ref):
        return docs.get(ref, raw), None, ref if ref.startswith("sha") else "sha256:" + "0" * 64

    try:
        doc = parse_manifest(raw, None, "sha256:" + "0" * 64, WHERE)
        assert isinstance(doc, dict) and isinstance(doc["mediaType"], str)
        if doc["mediaType"] in INDEX_TYPES:
            choose_platform(doc, platform, WHERE)
        for d in doc.get("layers") or () if isinstance(doc.get("layers"), list) else ():
            descriptor(d if isinstance(d, dict) else {}, WHERE)
        out = resolve_manifests(fetch, "ref", platform, WHERE, every=every)
        assert all(isinstance(m, Manifest) for m in out)
    except RegistryError as e:
        assert str(e).startswith("r/repo")


def _tar(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, kind, data, link in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue()


NAMES = st.sampled_from(["etc/os-release", "var/lib/dpkg/status", "a", "a/b", "../x", "/abs", "./b/../c",
                         "usr/lib/os-release", ".wh.a", "a/.wh..wh..opq", "lib/apk/db/installed"])
ENTRIES = st.lists(st.tuples(NAMES, st.sampled_from([tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                                                     tarfile.DIRTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE]),
                             st.binary(max_size=40), NAMES), max_size=6)


def _damaged(data: bytes, cut: int, flip: int) -> bytes:
    if not data:
        return data
    b = bytearray(data[: max(1, len(data) - cut)])
    b[flip % len(b)] ^= 0xFF
    return bytes(b)


LAYERS = st.one_of(ENTRIES.map(_tar), ENTRIES.map(lambda e: gzip.compress(_tar(e), mtime=0)),
                   st.builds(_damaged, ENTRIES.map(_tar), st.integers(0, 600), st.integers(0, 10**4)),
                   st.builds(_damaged, ENTRIES.map(lambda e: gzip.compress(_tar(e), mtime=0)),
                             st.integers(0, 60), st.integers(0, 10**4)),
                   st.binary(max_size=80), st.binary(max_size=40).map(lambda b: b"\x1f\x8b" + b))


@settings(max_examples=settings.default.max_examples)
@given(st.lists(LAYERS, min_size=1, max_size=3))
def test_layers_raise_only_layer_errors(blobs):
    stack = LayerStack(WalkPlan(lambda p: 4096))
    try:
        for i, blob in enumerate(blobs):
            stack.add(f"layer{i}", io.BytesIO(blob))
        result = stack.result()
        assert all(isinstance(f.data, bytes) for f in result.files.values())
        assert all(not p.startswith(("/", "../")) for p in result.files)
    except LayerError as e:
        assert str(e).startswith("layer layer")


OS_RELEASE = st.lists(st.one_of(
    st.tuples(st.sampled_from(["ID", "VERSION_ID", "PRETTY_NAME", "VERSION_CODENAME", "ID_LIKE", "bad key"]),
              st.text(max_size=12)).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.text(max_size=20)), max_size=8).map("\n".join)


@settings(max_examples=settings.default.max_examples)
@example("ID=\"debian\nVERSION_ID='12", b"")
@example("ID=alpine\nVERSION_ID=3.19.1\x00", b"\xff\xfe")
@given(OS_RELEASE | st.text(max_size=60), st.binary(max_size=40))
def test_os_release_never_raises(text, junk):
    assert isinstance(parse_os_release(text), dict)
    for files in ({"etc/os-release": text.encode("utf-8", "surrogatepass")}, {"usr/lib/os-release": junk}):
        d = find_distro(files)
        assert d is None or (isinstance(d, Distro) and isinstance(d.id, str))


YAML = st.one_of(
    st.text(max_size=120),
    st.lists(st.sampled_from(["registries:", "  - name: a", "    type: archive", "    path: x.tar", "state: {path: s}",
                              "limits: {max_packages: 0}", "limits: {max_manifest_bytes: 2MiB}", "a: &a [1, 2]",
                              "b: [*a, *a]", "<<: *a", "? [1]\n: 2", "service: {cron: '* *'}", "- x", "  ${X}",
                              "key: ${UNSET}", "limits: {delivery_timeout: 7h}", "\t", "notifications: 5"]),
             max_size=8).map("\n".join))


@settings(max_examples=settings.default.max_examples)
@example("\x1f")                      # was a yaml ReaderError
@given(YAML)
def test_the_configuration_raises_only_config_errors(text):
    try:
        parse_config(text, file="fuzz.yaml", environ={"X": "1"})
    except ConfigError as e:
        assert all(p.file == "fuzz.yaml" and p.line >= 1 for p in e.problems)


@example(-10**15)                      # was OverflowError
@example("99999999999999999999d")
@given(st.one_of(st.text(max_size=12), st.integers(), st.floats(), st.booleans(), st.none(), JSON))
def test_durations_and_sizes_raise_only_value_errors(value):
    for parse in (parse_duration, parse_bytes):
        try:
            parse(value)
        except ValueError:
            pass


@given(st.text(max_size=40))
def test_retry_after_and_challenges_never_raise(text):
    r = parse_retry_after(text)
    assert r is None or r >= 0
    c = parse_challenge(text)
    assert c is None or isinstance(c.params, dict)
