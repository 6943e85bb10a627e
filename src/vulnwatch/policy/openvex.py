"""OpenVEX documents (https://openvex.dev, v0.2.0, and the 0.0.x form with string vulnerabilities
and products).

A statement suppresses the findings of its vulnerability (``vulnerability.name`` or ``@id``, and its
``aliases``) in its products when its status is ``not_affected`` (which needs a
``justification`` or an ``impact_statement``) or ``fixed``. Products are matched by purl:

- a package purl (``pkg:deb/debian/openssl@3.0.11-1~deb12u2``): that package (a version or
  qualifiers given must match, missing ones match any);
- an image purl (``pkg:oci/app@sha256%3A...``): that image (by digest), and with
  ``subcomponents`` only those packages in it;
- any other id (a product name): every image the document is applied to, narrowed by its
  ``subcomponents``.

VEX is a sequence: a later statement (by ``timestamp``, else by order) about the same
vulnerability and product replaces an earlier one, so ``under_investigation`` or ``affected``
after ``not_affected`` brings the findings back.
"""

from __future__ import annotations

from typing import Any

from .interface import SUPPRESSING_STATUSES, IgnoreRule, Loader, PolicyError
from ._shared import check_purl, image_digest, is_image_purl, load_json

STATUSES = ("not_affected", "affected", "fixed", "under_investigation")
JUSTIFICATIONS = ("component_not_present", "vulnerable_code_not_present", "vulnerable_code_not_in_execute_path",
                  "vulnerable_code_cannot_be_controlled_by_adversary", "inline_mitigations_already_exist")


def _id(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        v = value.get("@id") if isinstance(value.get("@id"), str) else value.get("name")
        return v.strip() if isinstance(v, str) and v.strip() else None
    return None


def _str(value: Any, source: str, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PolicyError(source, f"{where}: expected a string")
    return value


class OpenVexLoader(Loader):
    name = "openvex"

    def load(self, text: str, source: str) -> tuple[IgnoreRule, ...]:
        doc = load_json(text, source)
        if not isinstance(doc, dict) or "openvex" not in str(doc.get("@context", "")).lower():
            raise PolicyError(source, "not an OpenVEX document (no \"@context\": \"https://openvex.dev/ns/...\")")
        statements = doc.get("statements")
        if not isinstance(statements, list):
            raise PolicyError(source, "an OpenVEX document needs a \"statements\" list")
        doc_time = doc.get("timestamp") if isinstance(doc.get("timestamp"), str) else ""
        latest: dict[tuple[str, str], tuple[str, int, IgnoreRule | None]] = {}
        for n, st in enumerate(statements):
            where = f"statements[{n}]"
            if not isinstance(st, dict):
                raise PolicyError(source, f"{where}: a statement is an object")
            vuln = st.get("vulnerability")
            vid = _id(vuln)
            if vid is None:
                raise PolicyError(source, f"{where}: \"vulnerability\" needs a \"name\" (the CVE or advisory id)")
            aliases = vuln.get("aliases", []) if isinstance(vuln, dict) else []
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                raise PolicyError(source, f"{where}: vulnerability.aliases must be a list of strings")
            status = st.get("status")
            if status not in STATUSES:
                raise PolicyError(source, f"{where} ({vid}): status {status!r} is not one of {', '.join(STATUSES)}")
            justification = _str(st.get("justification"), source, f"{where}.justification")
            if justification is not None and justification not in JUSTIFICATIONS:
                raise PolicyError(source, f"{where} ({vid}): justification {justification!r} is not one of "
                                          f"{', '.join(JUSTIFICATIONS)}")
            impact = _str(st.get("impact_statement"), source, f"{where}.impact_statement")
            if status == "not_affected" and not (justification or impact):
                raise PolicyError(source, f"{where} ({vid}): not_affected needs a justification or an "
                                          "impact_statement")
            when = st.get("timestamp") if isinstance(st.get("timestamp"), str) else doc_time
            products = st.get("products")
            if not isinstance(products, list) or not products:
                raise PolicyError(source, f"{where} ({vid}): \"products\" must be a non-empty list")
            action = _str(st.get("action_statement"), source, f"{where}.action_statement")
            reason = impact or (f"fixed: {action}" if status == "fixed" and action else None) or justification or status
            ids = tuple(dict.fromkeys(i.upper() for i in [vid, *aliases] if i.strip()))
            for m, product in enumerate(products):
                pid = _id(product)
                if pid is None:
                    raise PolicyError(source, f"{where}.products[{m}]: a product needs an \"@id\" (a purl)")
                subs = product.get("subcomponents", []) if isinstance(product, dict) else []
                if not isinstance(subs, list):
                    raise PolicyError(source, f"{where}.products[{m}].subcomponents must be a list")
                packages, digests = [], []
                for k, sub in enumerate(subs):
                    sid = _id(sub)
                    if sid is None:
                        raise PolicyError(source, f"{where}.products[{m}].subcomponents[{k}] needs an \"@id\"")
                    packages.append(check_purl(sid, source, f"{where}.products[{m}].subcomponents[{k}]")
                                    if sid.startswith("pkg:") else sid)
                if is_image_purl(pid):
                    digest = image_digest(pid)
                    if digest:
                        digests.append(digest)
                elif pid.startswith("pkg:"):
                    if subs:
                        raise PolicyError(source, f"{where}.products[{m}]: subcomponents of a package purl; "
                                                  "name the image (pkg:oci/...) or a product as the product")
                    packages.append(check_purl(pid, source, f"{where}.products[{m}]"))
                rule = None
                if status in SUPPRESSING_STATUSES:
                    rule = IgnoreRule(source=f"{source}#{where}", reason=reason, ids=ids, packages=tuple(packages),
                                      digests=tuple(digests), kind="vex", status=status,
                                      justification=justification)
                key = (vid.upper(), pid + "|" + ",".join(sorted(packages)))
                prev = latest.get(key)
                if prev is None or (when, n) >= prev[:2]:
                    latest[key] = (when, n, rule)
        return tuple(r for _w, _n, r in latest.values() if r is not None)
