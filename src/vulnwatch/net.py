"""What every HTTP client of ours (registries, sinks) needs to know about a failed connection.

A TLS certificate that does not verify is a permanent error: retrying cannot fix it, and the
message must say TLS, not "cannot reach". Imports nothing of ours.
"""

from __future__ import annotations

import ssl

__all__ = ["tls_verify_error"]


def tls_verify_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind ``exc`` (itself, its cause or its context,
    however deep), or None. Some transports keep only the text (``CERTIFICATE_VERIFY_FAILED``):
    that counts too."""
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, ssl.SSLCertVerificationError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return ssl.SSLCertVerificationError(text)
    return None
