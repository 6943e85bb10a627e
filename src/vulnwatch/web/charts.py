"""Server-side sparklines: a small SVG polyline per image row (no script needed). The larger
charts are drawn in the browser by ``static/charts.js`` from JSON embedded in the page."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape


def sparkline(values: Sequence[int], width: int = 96, height: int = 22) -> Markup:
    """An inline SVG of ``values`` (oldest first); ``data-values`` carries them for tests and tools."""
    if not values:
        return Markup('<span class="muted">—</span>')
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1
    step = (width - 4) / max(1, len(values) - 1)
    pts = [(2 + i * step if len(values) > 1 else width / 2, height - 3 - (v - lo) / span * (height - 6))
           for i, v in enumerate(values)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
    data = ",".join(str(int(v)) for v in values)
    last = values[-1]
    trend = "up" if last > values[0] else "down" if last < values[0] else "flat"
    label = f"{len(values)} scans, {values[0]} to {last} findings"
    x, y = pts[-1]
    return Markup(
        f'<svg class="spark spark-{trend}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(label)}" data-values="{data}">'
        f'<title>{escape(label)}</title><polyline points="{path}"/>'
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2"/></svg>')
