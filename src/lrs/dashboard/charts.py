"""Charts drawn on the server as SVG: bars for rates, a weekday by hour grid for when people
learn. Each is an image with a text label; the figures are always in a table beside it."""

from __future__ import annotations

from html import escape

BAR = "#1f5f8b"  # 7.0:1 against white
TRACK = "#e6edf2"


def _short(label: str, room: int = 23) -> str:
    """A label that fits beside a bar: long ones keep their end, where names differ."""
    return label if len(label) <= room else "\u2026" + label[-(room - 1) :]


def bars(label: str, rows: list[tuple[str, float | None, str]], width: int = 560) -> str:
    """Horizontal bars of values from 0 to 1: (row label, value, value as text)."""
    row_height, left, right = 28, 190, 70
    height = row_height * max(len(rows), 1) + 8
    span = width - left - right
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {width} {height}"'
        f' width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
    ]
    for i, (name, value, shown) in enumerate(rows):
        y = 4 + i * row_height
        filled = 0 if value is None else max(0.0, min(1.0, value)) * span
        parts.append(
            f'<text x="{left - 8}" y="{y + 18}" text-anchor="end" font-size="13">'
            f"{escape(_short(name))}</text>"
            f'<rect x="{left}" y="{y + 4}" width="{span}" height="18" fill="{TRACK}"/>'
            f'<rect x="{left}" y="{y + 4}" width="{filled:.1f}" height="18" fill="{BAR}"/>'
            f'<text x="{left + span + 6}" y="{y + 18}" font-size="13">{escape(shown)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def grid(label: str, counts: dict[tuple[int, int], int], weekdays: list[str]) -> str:
    """Seven rows of 24 hours, darker where more learners were active."""
    cell, left, top = 18, 80, 18
    most = max(counts.values(), default=0) or 1
    width, height = left + 24 * cell + 4, top + 7 * cell + 4
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {width} {height}"'
        f' width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
    ]
    for hour in range(0, 24, 3):
        parts.append(f'<text x="{left + hour * cell + 2}" y="12" font-size="11">{hour:02d}</text>')
    for day in range(7):
        y = top + day * cell
        parts.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" font-size="11">'
            f"{escape(weekdays[day][:3])}</text>"
        )
        for hour in range(24):
            share = counts.get((day, hour), 0) / most
            # From the track colour to the bar colour: light cells stay visibly cells.
            shade = f"rgba(31, 95, 139, {0.08 + 0.92 * share:.2f})"
            parts.append(
                f'<rect x="{left + hour * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}"'
                f' fill="{shade}"/>'
            )
    parts.append("</svg>")
    return "".join(parts)
