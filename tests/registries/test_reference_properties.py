"""Properties of image reference parsing: any text gives an ImageRef or an
InvalidReferenceError quoting it; what parses prints back to a reference that parses the same."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vulnwatch.model import ImageRef
from vulnwatch.registries.reference import InvalidReferenceError, parse_reference

COMPONENT = st.from_regex(r"\A[a-z0-9]{1,4}([._-][a-z0-9]{1,3})?\Z")
HOSTS = st.sampled_from(["", "ghcr.io/", "localhost/", "localhost:5000/", "127.0.0.1:5000/", "docker.io/",
                         "index.docker.io/", "Registry.Example.COM/", "[::1]:5000/", "a_b.io/", "x.io:99999999999/"])
TAGS = st.sampled_from(["", ":latest", ":1.0", ":v1_2-3.4", ":", ":-bad", ":" + "t" * 129]) | st.text(max_size=6).map(
    lambda t: ":" + t)
DIGESTS = st.sampled_from(["", "@sha256:" + "ab" * 32, "@sha256:" + "AB" * 32, "@sha512:" + "0" * 128, "@md5:x",
                           "@", "@sha256:" + "a" * 63])
SHAPED = st.builds(lambda host, parts, tag, digest: host + "/".join(parts) + tag + digest,
                   HOSTS, st.lists(COMPONENT, min_size=1, max_size=3), TAGS, DIGESTS)
TEXT = st.one_of(SHAPED, SHAPED, st.text(max_size=30),
                 st.text(alphabet="abc/:@.-_ 0123456789ABC\n\t", max_size=30))


@settings(max_examples=settings.default.max_examples * 5)
@given(TEXT)
def test_parse_reference_raises_only_its_own_error(text):
    try:
        ref = parse_reference(text)
    except InvalidReferenceError as e:
        assert repr(text) in str(e) and e.text == text
        return
    assert isinstance(ref, ImageRef) and ref.registry and ref.repository
    assert parse_reference(str(ref)) == ref                  # prints back to the same reference


def test_a_host_recognised_by_upper_case_prints_back_to_itself():
    ref = parse_reference("Registry/app")                    # host 'Registry' (Docker's rule), lowercased to 'registry'
    assert parse_reference(str(ref)) == ref                  # 'registry/app' is docker.io/registry/app
