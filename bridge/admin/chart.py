"""A stacked bar chart as inline SVG, drawn on the server: no script, no assets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from markupsafe import Markup, escape

# One colour per intent, distinguishable in print and for common colour blindness.
COLOURS = {
    "SWE": "#1f77b4",
    "PLAN": "#ff7f0e",
    "ASK": "#2ca02c",
    "DEV_ENVIRONMENT": "#9467bd",
}
OTHER = "#7f7f7f"

WIDTH, HEIGHT = 720, 240
LEFT, BOTTOM, TOP = 40, 30, 10


def stacked_bars(days: Sequence[date], series: Mapping[str, Sequence[int]]) -> Markup:
    """Bars per day, stacked by series, with a y axis and a legend; safe markup."""
    totals = [sum(values[n] for values in series.values()) for n in range(len(days))]
    peak = max([*totals, 1])
    plot_w, plot_h = WIDTH - LEFT - 10, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(days), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT + 24}" '
        f'width="{WIDTH}" height="{HEIGHT + 24}" role="img" '
        'aria-label="dispatches per day by intent">',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 10}" y2="{TOP + plot_h}" '
        'stroke="#999"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end" font-size="10">{peak}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end" font-size="10">0</text>',
    ]
    for n, day in enumerate(days):
        x = LEFT + n * slot + slot * 0.15
        y = TOP + plot_h
        for name, values in series.items():
            count = values[n]
            if not count:
                continue
            height = plot_h * count / peak
            y -= height
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
                f'height="{height:.1f}" fill="{COLOURS.get(name, OTHER)}">'
                f"<title>{escape(day.isoformat())} {escape(name)}: {count}</title></rect>"
            )
        parts.append(
            f'<text x="{LEFT + n * slot + slot / 2:.1f}" y="{HEIGHT - 12}" '
            f'text-anchor="middle" font-size="10">{day:%m-%d}</text>'
        )
    x = LEFT
    for name in series:
        parts.append(
            f'<rect x="{x}" y="{HEIGHT + 6}" width="10" height="10" '
            f'fill="{COLOURS.get(name, OTHER)}"/>'
            f'<text x="{x + 14}" y="{HEIGHT + 15}" font-size="11">{escape(name)}</text>'
        )
        x += 24 + 8 * len(name)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every interpolated text is escaped above)
