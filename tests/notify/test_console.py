import io
from datetime import datetime, timezone

from vulnwatch.model import Event, EventKind, Finding, Image, Severity
from vulnwatch.notify.console import ConsoleNotifier


def test_console_prints_most_severe_first_with_fixes():
    added = (Finding("CVE-2023-0002", "zlib", "1.0", Severity.LOW),
             Finding("CVE-2023-0001", "openssl", "1.1", Severity.CRITICAL, fixed_versions=("1.2",)))
    ev = Event(id="x", kind=EventKind.NEW_IMAGE, image=Image("reg", "app", "sha256:" + "b" * 64, ("v1",)),
               scanner="builtin", occurred_at=datetime.now(timezone.utc), added=added)
    out = io.StringIO()
    ConsoleNotifier("console", stream=out).send([ev])
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[vulnwatch] app:v1 (reg, bbbbbbbbbbbb): new image")
    assert "CRITICAL" in lines[1] and "fixed in 1.2" in lines[1]
    assert "LOW" in lines[2] and "no fix yet" in lines[2]
