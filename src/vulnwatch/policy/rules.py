"""vulnwatch's own ignore file (YAML), and Trivy's ``.trivyignore.yaml``.

vulnwatch's form is the ``ignore.rules`` list of the config, on its own in a file::

    rules:
      - id: CVE-2023-5678                    # the id or any alias; a list, globs allowed
        package: "pkg:deb/debian/openssl*"   # purl, purl glob, or package-name glob; a list too
        repository: "prod/*"                 # registry/repository or repository glob; a list too
        reason: not reachable, no TLS server in this image
        expires: 2027-03-31                  # until the start of that day (UTC); optional

(``ignore: {rules: [...]}``, the config's own shape, is read too.) Trivy's form::

    vulnerabilities:
      - id: CVE-2023-5678
        purls: ["pkg:deb/debian/openssl@3.0.11-1~deb12u2"]
        statement: not reachable
        expired_at: 2027-03-31

Each rule needs a ``reason`` (Trivy's ``statement`` is optional) and an id or a package.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import yaml

from .interface import IgnoreRule, Loader, PolicyError

_OURS = {"id": "ids", "ids": "ids", "package": "packages", "packages": "packages", "repository": "repositories",
         "repositories": "repositories", "reason": "reason", "expires": "expires"}
_TRIVY = {"id": "ids", "purls": "packages", "statement": "reason", "expired_at": "expires"}


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _strings(node: yaml.Node, source: str, key: str) -> tuple[str, ...]:
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    out = []
    for item in items:
        if not isinstance(item, yaml.ScalarNode) or not str(item.value).strip():
            raise PolicyError(source, f"{key}: give a string or a list of strings", _line(item))
        out.append(str(item.value).strip())
    return tuple(out)


def _date(node: yaml.Node, source: str, key: str) -> date:
    value = node.value if isinstance(node, yaml.ScalarNode) else None
    try:
        return date.fromisoformat(str(value).strip()[:10]) if value is not None else date.fromisoformat("")
    except ValueError:
        raise PolicyError(source, f"{key}: {value!r} is not a date: write YYYY-MM-DD", _line(node)) from None


def rules_from_mappings(items: list[tuple[int, dict[str, Any]]], source: str, *,
                        trivy: bool = False) -> tuple[IgnoreRule, ...]:
    """Rules from already-parsed mappings (``(line, {key: value})``): the config's
    ``ignore.rules`` come this way. Values: strings, lists of strings, dates."""
    out = []
    for line, m in items:
        fields: dict[str, Any] = {}
        for key, value in m.items():
            if key == "expires" or key == "expired_at":
                if isinstance(value, datetime):
                    value = value.date()
                if not isinstance(value, date):
                    try:
                        value = date.fromisoformat(str(value)[:10])
                    except ValueError:
                        raise PolicyError(source, f"{key}: {value!r} is not a date: write YYYY-MM-DD", line) from None
                fields["expires"] = value
            elif key == "reason" or key == "statement":
                fields["reason"] = str(value).strip()
            else:
                field = (_TRIVY if trivy else _OURS).get(key)
                if field is None:
                    raise PolicyError(source, f"unknown key {key!r}", line)
                values = value if isinstance(value, (list, tuple)) else [value]
                fields[field] = tuple(str(v).strip() for v in values if str(v).strip())
        out.append(_rule(fields, source, line, trivy))
    return tuple(out)


def _rule(fields: dict[str, Any], source: str, line: int, trivy: bool) -> IgnoreRule:
    ids = tuple(i.upper() for i in fields.get("ids", ()))
    packages = fields.get("packages", ())
    if not ids and not packages:
        raise PolicyError(source, "a rule needs an id or a package (purl" + (")" if trivy else " or name)"), line)
    reason = fields.get("reason") or ""
    if not reason:
        if not trivy:
            raise PolicyError(source, "a rule needs a reason: say why it is safe to ignore", line)
        reason = f"listed in {source}"
    for p in packages:
        if p.startswith("pkg:") and "/" not in p:
            raise PolicyError(source, f"package {p!r} is not a purl: write pkg:TYPE/NAMESPACE/NAME", line)
    return IgnoreRule(source=f"{source}:{line}", reason=reason, ids=ids, packages=packages,
                      repositories=fields.get("repositories", ()), expires=fields.get("expires"))


class RulesLoader(Loader):
    name = "rules"

    def load(self, text: str, source: str) -> tuple[IgnoreRule, ...]:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            raise PolicyError(source, f"not valid YAML: {e.problem or e}", mark.line + 1 if mark else None) from None
        except (yaml.YAMLError, RecursionError) as e:
            raise PolicyError(source, f"not valid YAML: {e}") from None
        if root is None:
            return ()
        if not isinstance(root, yaml.MappingNode):
            raise PolicyError(source, "expected a mapping with `rules:` (or Trivy's `vulnerabilities:`)", _line(root))
        top = {str(k.value): v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
        if set(top) == {"ignore"} and isinstance(top["ignore"], yaml.MappingNode):
            top = {str(k.value): v for k, v in top["ignore"].value if isinstance(k, yaml.ScalarNode)}
        trivy = "vulnerabilities" in top
        key = "vulnerabilities" if trivy else "rules"
        known = {"vulnerabilities", "misconfigurations", "secrets", "licenses"} if trivy else {"rules"}
        for k, v in root.value:
            name = str(k.value) if isinstance(k, yaml.ScalarNode) else "?"
            if name not in known and name != "ignore":
                raise PolicyError(source, f"unknown key {name!r}: expected `{key}:`", _line(k))
        seq = top.get(key)
        if seq is None:
            return ()
        if not isinstance(seq, yaml.SequenceNode):
            raise PolicyError(source, f"`{key}` must be a list of rules", _line(seq))
        allowed = _TRIVY if trivy else _OURS
        rules = []
        for item in seq.value:
            if not isinstance(item, yaml.MappingNode):
                raise PolicyError(source, "a rule is a mapping (id, package, repository, reason, expires)", _line(item))
            fields: dict[str, Any] = {}
            for k, v in item.value:
                name = str(k.value) if isinstance(k, yaml.ScalarNode) else "?"
                if trivy and name == "paths":
                    raise PolicyError(source, "paths are not supported: name the package by purls", _line(k))
                if name not in allowed:
                    raise PolicyError(source, f"unknown key {name!r}: use one of {', '.join(sorted(allowed))}",
                                      _line(k))
                field = allowed[name]
                if field == "expires":
                    fields["expires"] = _date(v, source, name)
                elif field == "reason":
                    if not isinstance(v, yaml.ScalarNode):
                        raise PolicyError(source, f"{name}: give a string", _line(v))
                    fields["reason"] = str(v.value).strip()
                else:
                    fields[field] = fields.get(field, ()) + _strings(v, source, name)
            rules.append(_rule(fields, source, _line(item), trivy))
        return tuple(rules)
