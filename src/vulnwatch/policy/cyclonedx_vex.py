"""CycloneDX VEX: the ``vulnerabilities`` of a CycloneDX JSON document (a BOM, or a VEX-only
document), each with an ``analysis``.

A vulnerability (its ``id`` and the ids of its ``references``) is suppressed in what it
``affects`` when ``analysis.state`` is ``not_affected`` (with a ``justification`` or a
``detail``), ``false_positive``, ``resolved`` or ``resolved_with_pedigree`` (states and
justifications are CycloneDX's, as cyclonedx-python-lib names them). An ``affects[].ref`` is
matched by purl: a purl itself, the ``bom-ref`` of a component of the document with a purl, or
``urn:cdx:SERIAL/VERSION#BOM-REF`` (a BOM-Link) whose bom-ref is one of those. A ref naming the
document's own ``metadata.component`` (the image) matches every package of the image it is
applied to (by digest when that component is a ``pkg:oci`` purl).
"""

from __future__ import annotations


from cyclonedx.model.impact_analysis import ImpactAnalysisJustification, ImpactAnalysisState

from .interface import SUPPRESSING_STATUSES, IgnoreRule, Loader, PolicyError
from ._shared import check_purl, image_digest, is_image_purl, load_json

STATES = tuple(s.value for s in ImpactAnalysisState)
JUSTIFICATIONS = tuple(j.value for j in ImpactAnalysisJustification)


def _components(doc: dict) -> dict[str, dict]:
    """Every component of the document (nested ones too) by bom-ref."""
    out: dict[str, dict] = {}
    stack = [c for c in (doc.get("components") or []) if isinstance(c, dict)]
    meta = doc.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("component"), dict):
        stack.append(meta["component"])
    while stack:
        c = stack.pop()
        ref = c.get("bom-ref")
        if isinstance(ref, str):
            out[ref] = c
        stack.extend(x for x in (c.get("components") or []) if isinstance(x, dict))
    return out


class CycloneDxVexLoader(Loader):
    name = "cyclonedx"

    def load(self, text: str, source: str) -> tuple[IgnoreRule, ...]:
        doc = load_json(text, source)
        if not isinstance(doc, dict) or doc.get("bomFormat") != "CycloneDX":
            raise PolicyError(source, "not a CycloneDX document (no \"bomFormat\": \"CycloneDX\")")
        vulns = doc.get("vulnerabilities", [])
        if not isinstance(vulns, list):
            raise PolicyError(source, "\"vulnerabilities\" must be a list")
        components = _components(doc)
        meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        top = meta.get("component") if isinstance(meta.get("component"), dict) else None
        top_ref = top.get("bom-ref") if top else None
        rules = []
        for n, v in enumerate(vulns):
            where = f"vulnerabilities[{n}]"
            if not isinstance(v, dict) or not isinstance(v.get("id"), str) or not v["id"].strip():
                raise PolicyError(source, f"{where}: a vulnerability needs an \"id\"")
            vid = v["id"].strip()
            analysis = v.get("analysis")
            if analysis is None:
                continue        # a plain BOM's finding: no statement about it
            if not isinstance(analysis, dict):
                raise PolicyError(source, f"{where} ({vid}): \"analysis\" must be an object")
            state = analysis.get("state")
            if state not in STATES:
                raise PolicyError(source, f"{where} ({vid}): analysis.state {state!r} is not one of {', '.join(STATES)}")
            justification = analysis.get("justification")
            if justification is not None and justification not in JUSTIFICATIONS:
                raise PolicyError(source, f"{where} ({vid}): analysis.justification {justification!r} is not one "
                                          f"of {', '.join(JUSTIFICATIONS)}")
            detail = analysis.get("detail")
            if detail is not None and not isinstance(detail, str):
                raise PolicyError(source, f"{where} ({vid}): analysis.detail must be a string")
            if state == "not_affected" and not (justification or detail):
                raise PolicyError(source, f"{where} ({vid}): not_affected needs a justification or a detail")
            if state not in SUPPRESSING_STATUSES:
                continue
            refs = v.get("references") or []
            aliases = [r.get("id") for r in refs if isinstance(r, dict) and isinstance(r.get("id"), str)] \
                if isinstance(refs, list) else []
            affects = v.get("affects")
            if not isinstance(affects, list) or not affects:
                raise PolicyError(source, f"{where} ({vid}): \"affects\" must name the components (by ref)")
            packages, digests, whole_image = [], [], False
            for m, a in enumerate(affects):
                ref = a.get("ref") if isinstance(a, dict) else None
                if not isinstance(ref, str) or not ref:
                    raise PolicyError(source, f"{where}.affects[{m}]: needs a \"ref\"")
                bom_ref = ref.split("#", 1)[1] if ref.startswith("urn:cdx:") and "#" in ref else ref
                if bom_ref == top_ref:
                    whole_image = True
                    purl = top.get("purl") if top else None
                    if isinstance(purl, str) and is_image_purl(purl) and image_digest(purl):
                        digests.append(image_digest(purl))
                    continue
                comp = components.get(bom_ref)
                purl = comp.get("purl") if comp else (bom_ref if bom_ref.startswith("pkg:") else None)
                if not isinstance(purl, str):
                    raise PolicyError(source, f"{where}.affects[{m}] ({vid}): ref {ref!r} names no component with "
                                              "a purl in this document; use the package's purl as the ref")
                packages.append(check_purl(purl, source, f"{where}.affects[{m}]"))
            reason = detail or justification or state
            ids = tuple(dict.fromkeys(i.strip().upper() for i in [vid, *aliases] if i and i.strip()))
            rules.append(IgnoreRule(source=f"{source}#{where}", reason=reason, ids=ids,
                                    packages=() if whole_image else tuple(packages), digests=tuple(digests),
                                    kind="vex", status=state, justification=justification))
        return tuple(rules)
