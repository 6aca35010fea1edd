"""The comparison as one self-contained HTML file: per-tensor max abs and max rel error
against depth on a log scale (inline SVG, no script, nothing fetched), the tolerance and
the noise floor beside them, the first divergence marked, and the table mapping each
source node or layer to the Keras layers built from it."""

import html
import math

from mwconv.localize.result import SCHEMA

ERROR_COLOR = "#1f5fbf"        # max abs error
REL_COLOR = "#8a3ffc"          # max rel error
TOLERANCE_COLOR = "#2e9e44"    # what the tolerance admits
FLOOR_COLOR = "#9a9a9a"        # the noise floor
DIVERGENCE_COLOR = "#e0201b"   # the first divergence
WIDTH, HEIGHT, PAD = 920, 260, 56
LOWEST = 1e-12                 # zero errors are drawn here


def _y(value, low, high):
    v = math.log10(max(value if value is not None else LOWEST, LOWEST))
    return PAD / 2 + (HEIGHT - PAD) * (1 - (v - low) / max(high - low, 1e-9))


def _x(i, n):
    return PAD + (WIDTH - 1.5 * PAD) * (i / max(n - 1, 1))


def _polyline(rows, values, color, low, high, dash="", width=2):
    points = [(r.index, v) for r, v in zip(rows, values) if v is not None]
    if not points:
        return ""
    n = len(rows)
    coords = " ".join(f"{_x(i, n):.1f},{_y(v, low, high):.1f}" for i, v in points)
    dashes = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline fill="none" stroke="{color}" stroke-width="{width}"{dashes} points="{coords}"/>'


def _panel(rows, series, title, first):
    values = [v for _, vs, _, _ in series for v in vs if v]
    low = math.floor(math.log10(max(min(values), LOWEST))) if values else -12
    high = math.ceil(math.log10(max(values))) if values else 0
    high = max(high, low + 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
             f'aria-label="{html.escape(title)}">', f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>']
    for e in range(low, high + 1):
        y = _y(10.0 ** e, low, high)
        parts.append(f'<line x1="{PAD}" x2="{WIDTH - PAD / 2}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e6e6"/>'
                     f'<text x="{PAD - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">1e{e}</text>')
    if first is not None:
        x = _x(first.index, len(rows))
        parts.append(f'<line class="divergence" x1="{x:.1f}" x2="{x:.1f}" y1="{PAD / 2}" y2="{HEIGHT - PAD / 2}" '
                     f'stroke="{DIVERGENCE_COLOR}" stroke-width="6"/>')
    for _, vs, color, dash in series:
        parts.append(_polyline(rows, vs, color, low, high, dash, 3 if not dash else 2))
    parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" font-size="12" text-anchor="middle">depth: paired tensor '
                 f'in graph order (1 to {len(rows)})</text>')
    parts.append(f'<text x="{PAD}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text></svg>')
    return "".join(parts)


def _legend(items):
    return "".join(f'<span class="key"><span class="swatch" style="background:{c}"></span>{html.escape(t)}</span>'
                   for t, c in items)


def _table(rows):
    head = ("#", "status", "source node / layer", "op", "Keras layer", "built", "shape", "max abs", "allowed",
            "noise floor", "max rel", "inputs' max abs")
    out = ["<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in rows:
        cells = (r.index + 1, r.status, r.pair.source, r.pair.op, r.pair.keras_layer, ", ".join(r.pair.built),
                 "x".join(map(str, r.shape)), _g(r.max_abs), _g(r.allowed), _g(r.noise_floor), _g(r.max_rel),
                 _g(r.inputs_max_abs))
        cls = " class=\"bad\"" if r.failed else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return "".join(out) + "</tbody></table>"


def _g(value):
    return "" if value is None else f"{value:.3g}"


def render(comparison):
    """The report as a string of HTML."""
    rows = comparison.rows
    first = comparison.first_divergence
    abs_panel = _panel(rows, [("max abs error", [r.max_abs for r in rows], ERROR_COLOR, ""),
                              ("tolerance", [r.allowed for r in rows], TOLERANCE_COLOR, "6,4"),
                              ("noise floor", [r.noise_floor for r in rows], FLOOR_COLOR, "2,3")],
                       "max abs error per tensor (log scale)", first)
    rel_panel = _panel(rows, [("max rel error", [r.max_rel for r in rows], REL_COLOR, ""),
                              ("rtol", [r.rtol for r in rows], TOLERANCE_COLOR, "6,4")],
                       "max rel error per tensor (log scale)", first)
    verdict = html.escape(comparison.describe_divergence())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mwconv compare: {html.escape(comparison.source)}</title>
<meta name="generator" content="mwconv ({SCHEMA})">
<style>
body {{ font-family: sans-serif; margin: 24px; color: #1b1b1b; }}
.verdict {{ padding: 10px 14px; border-left: 6px solid {DIVERGENCE_COLOR if first else TOLERANCE_COLOR};
           background: #f6f6f6; margin: 12px 0; }}
.key {{ margin-right: 18px; font-size: 13px; }}
.swatch {{ display: inline-block; width: 22px; height: 4px; margin-right: 6px; vertical-align: middle; }}
table {{ border-collapse: collapse; font-size: 12px; margin-top: 16px; }}
th, td {{ border: 1px solid #ddd; padding: 3px 6px; text-align: left; }}
tr.bad td {{ background: #fdecea; }}
</style></head><body>
<h1>mwconv compare</h1>
<p>source <code>{html.escape(comparison.source)}</code> ({html.escape(comparison.source_kind)}) against
<code>{html.escape(comparison.model)}</code>; probe of {comparison.probe.get('samples')} samples (seed
{comparison.probe.get('seed')}).</p>
<p class="verdict" id="verdict">{verdict}</p>
<div>{_legend([("max abs error", ERROR_COLOR), ("max rel error", REL_COLOR), ("tolerance", TOLERANCE_COLOR),
               ("noise floor", FLOOR_COLOR), ("first divergence", DIVERGENCE_COLOR)])}</div>
<figure id="abs">{abs_panel}</figure>
<figure id="rel">{rel_panel}</figure>
<h2>Source nodes and the Keras layers built from them</h2>
{_table(rows)}
</body></html>
"""


def write(comparison, path, force=False):
    """Write the report atomically (never over an existing file without ``force``)."""
    from mwconv.outputs import atomic_output
    with atomic_output(path, force=force) as tmp:
        with open(tmp, "w", encoding="utf8") as f:
            f.write(render(comparison))
    return path
