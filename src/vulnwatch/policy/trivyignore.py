"""``.trivyignore``: one vulnerability id per line, as Trivy reads it.

- ``#`` starts a comment (a whole line, or the rest of one); blank lines are skipped.
- ``CVE-2023-1234 exp:2027-01-31``: Trivy's expiry suffix; the rule applies until that day (UTC).
- The comment lines right above an id are its reason (else ``listed in FILE``).
"""

from __future__ import annotations

import re
from datetime import date

from .interface import IgnoreRule, Loader, PolicyError

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/*?+-]*$")


class TrivyIgnoreLoader(Loader):
    name = "trivyignore"

    def load(self, text: str, source: str) -> tuple[IgnoreRule, ...]:
        rules: list[IgnoreRule] = []
        comment: list[str] = []
        for n, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if line.startswith("#"):
                comment.append(line.lstrip("#").strip())
                continue
            body, _, trailing = line.partition("#")
            words = body.split()
            if not words:
                comment = []
                continue
            vid, expires = words[0], None
            for extra in words[1:]:
                if extra.startswith("exp:"):
                    try:
                        expires = date.fromisoformat(extra[4:])
                    except ValueError:
                        raise PolicyError(source, f"bad expiry {extra!r}: write exp:YYYY-MM-DD", n) from None
                else:
                    raise PolicyError(source, f"unexpected {extra!r} after {vid!r}: a line holds one id and "
                                              "an optional exp:YYYY-MM-DD", n)
            if not _ID.match(vid):
                raise PolicyError(source, f"{vid!r} is not a vulnerability id", n)
            reason = trailing.strip() or " ".join(c for c in comment if c) or f"listed in {source}"
            rules.append(IgnoreRule(source=f"{source}:{n}", reason=reason, ids=(vid.upper(),), expires=expires))
            comment = []
        return tuple(rules)
