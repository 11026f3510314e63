"""The dashboard's figures, computed from exactly the rows `python -m agent calls export` prints.

`summarize` takes the export's per-call rows (reports.kpi_rows) and the per-turn
reply latencies behind their turn_latency columns (reports.turn_latencies), so
what the console shows can be checked against the export line by line.

Definitions (every window in UTC, by the call's start):
  calls            calls started in the window (any status)
  ended            calls no longer active (ended, or interrupted by a crash)
  contained        ended calls the agent finished without a human: outcome completed or
                   hangup (the caller hung up on the agent) and no transfer
  containment      contained / ended
  transfers        ended calls handed to a human, by transfer_reason
  admission        calls turned away by admission control (outcome busy): straight to a human
  handle time      mean handle_ms of ended calls
  first audio      calls.first_audio_ms (call connected -> first bot audio): p50, p95
  reply latency    turns.first_audio_ms (end of caller speech -> first bot audio): p50, p95
  ASR confidence   mean of the calls' asr_confidence (each the mean over its caller turns)
  CSAT             mean and count of the post-call survey answers (1-5)
Percentiles are nearest-rank: the smallest value with at least p % of values at or below it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from html import escape

WINDOWS = (("today", 0), ("7d", 7), ("30d", 30))
CONTAINED = ("completed", "hangup")


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _started(row: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(row["started_at"])


def in_window(rows: list[dict], days: int, now: dt.datetime) -> list[dict]:
    """Calls started today (days=0) or within the last `days` days (UTC)."""
    since = dt.datetime.combine(now.date(), dt.time()) if days == 0 else now - dt.timedelta(days=days)
    return [r for r in rows if _started(r) >= since]


def figures(rows: list[dict], latencies: dict[str, list[int]]) -> dict:
    ended = [r for r in rows if r["status"] != "active"]
    contained = [r for r in ended if r["outcome"] in CONTAINED and not r["transferred_to"]]
    transferred = [r for r in ended if r["transferred_to"]]
    replies = [ms for r in rows for ms in latencies.get(r["id"], [])]
    first_audio = [r["first_audio_ms"] for r in rows if r["first_audio_ms"] is not None]
    confidence = [r["asr_confidence"] for r in rows if r["asr_confidence"] is not None]
    csat = [r["csat"] for r in rows if r.get("csat") is not None]
    handle = [r["handle_ms"] for r in ended if r["handle_ms"] is not None]
    return {
        "calls": len(rows),
        "ended": len(ended),
        "contained": len(contained),
        "containment": len(contained) / len(ended) if ended else None,
        "transferred": len(transferred),
        "transfers_by_reason": dict(Counter(r["transfer_reason"] or "?" for r in transferred).most_common()),
        "admission_refusals": sum(1 for r in rows if r["outcome"] == "busy"),
        "handle_ms_mean": _mean(handle),
        "first_audio_ms_p50": percentile(first_audio, 50),
        "first_audio_ms_p95": percentile(first_audio, 95),
        "reply_ms_p50": percentile(replies, 50),
        "reply_ms_p95": percentile(replies, 95),
        "asr_confidence_mean": _mean(confidence),
        "csat_mean": _mean(csat),
        "csat_count": len(csat),
    }


def summarize(rows: list[dict], latencies: dict[str, list[int]], now: dt.datetime | None = None) -> dict:
    """Figures per window (today, 7 d, 30 d) and per day over the last 30 days."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    windows = {name: figures(in_window(rows, days, now), latencies) for name, days in WINDOWS}
    recent = in_window(rows, 30, now)
    days = [(now.date() - dt.timedelta(days=n)) for n in range(29, -1, -1)]
    by_day: dict[dt.date, list[dict]] = {day: [] for day in days}
    for row in recent:
        by_day.setdefault(_started(row).date(), []).append(row)
    daily = [{"day": day.isoformat(), **figures(by_day[day], latencies)} for day in days]
    return {"now": now.isoformat(timespec="seconds"), "windows": windows, "daily": daily}


def display(value, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{value * 100:.1f} %"
    if kind == "ms":
        return f"{value:.0f} ms"
    if kind == "s":
        return f"{value / 1000:.1f} s"
    if kind == "ratio":
        return f"{value:.2f}"
    return str(value)


# ---- charts: hand-written SVG, no script and no inline style (the console's CSP forbids both) ----

W, H, PAD = 560, 150, 28


def _frame(title: str, peak: float, fmt) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H + PAD}" role="img" aria-label="{escape(title)}">',
        f'<text x="4" y="12" font-size="11" fill="#444">{escape(title)}</text>',
        f'<text x="4" y="{PAD + 4}" font-size="9" fill="#888">{escape(fmt(peak))}</text>',
        f'<line x1="{PAD + 20}" y1="{H}" x2="{W}" y2="{H}" stroke="#bbb"/>',
    ]


def _x(index: int, count: int) -> float:
    return PAD + 24 + index * (W - PAD - 28) / max(1, count - 1)


def _day_labels(days: list[str]) -> list[str]:
    marks = []
    for index, day in enumerate(days):
        if (len(days) - 1 - index) % 7 == 0:  # weekly marks ending today
            anchor = "end" if index == len(days) - 1 else "middle"  # today's mark stays inside the chart
            marks.append(f'<text x="{_x(index, len(days)):.0f}" y="{H + 14}" font-size="9" fill="#888" '
                         f'text-anchor="{anchor}">{day[5:]}</text>')  # fmt: skip
    return marks


def bar_chart(title: str, days: list[str], series: list[tuple[str, str, list[float]]]) -> str:
    """Stacked bars per day; series = (label, colour, values)."""
    totals = [sum(values[i] for _, _, values in series) for i in range(len(days))]
    peak = max(totals + [1])
    svg = _frame(title, peak, lambda v: f"{v:g}")
    width = max(3.0, (W - PAD - 28) / max(1, len(days)) - 3)
    for i in range(len(days)):
        base = H
        for label, colour, values in series:
            if not values[i]:
                continue
            height = values[i] / peak * (H - PAD)
            base -= height
            svg.append(f'<rect x="{_x(i, len(days)) - width / 2:.1f}" y="{base:.1f}" width="{width:.1f}" '
                       f'height="{height:.1f}" fill="{colour}"><title>{days[i]} {escape(label)}: {values[i]:g}'
                       f'</title></rect>')  # fmt: skip
    svg += _day_labels(days) + _legend(series) + ["</svg>"]
    return "".join(svg)


def line_chart(title: str, days: list[str], series: list[tuple[str, str, list[float | None]]], fmt) -> str:
    present = [v for _, _, values in series for v in values if v is not None]
    peak = max(present + [0]) or 1
    svg = _frame(title, peak, fmt)
    for label, colour, values in series:
        points = [(i, v) for i, v in enumerate(values) if v is not None]
        coords = " ".join(f"{_x(i, len(days)):.1f},{H - v / peak * (H - PAD):.1f}" for i, v in points)
        if len(points) > 1:
            svg.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        for i, v in points:
            svg.append(f'<circle cx="{_x(i, len(days)):.1f}" cy="{H - v / peak * (H - PAD):.1f}" r="2.5" '
                       f'fill="{colour}"><title>{days[i]} {escape(label)}: {escape(fmt(v))}</title></circle>')  # fmt: skip
    svg += _day_labels(days) + _legend(series) + ["</svg>"]
    return "".join(svg)


def _legend(series) -> list[str]:
    out = []
    x = W - 10
    for label, colour, _ in reversed(series):
        x -= 8 + 6 * len(label)
        out.append(f'<rect x="{x}" y="4" width="8" height="8" fill="{colour}"/>'
                   f'<text x="{x + 11}" y="12" font-size="10" fill="#444">{escape(label)}</text>')  # fmt: skip
        x -= 10
    return out


def _percentiles_chart(title: str, days: list[str], daily: list[dict], field: str) -> str:
    series = [(p, colour, [d[f"{field}_{p}"] for d in daily]) for p, colour in (("p50", "#264653"), ("p95", "#e76f51"))]
    return line_chart(title, days, series, lambda v: f"{v:.0f} ms")


def charts(summary: dict) -> list[str]:
    daily = summary["daily"]
    days = [d["day"] for d in daily]
    other = [d["calls"] - d["contained"] - d["transferred"] - d["admission_refusals"] for d in daily]
    return [
        bar_chart(
            "Calls per day (UTC)",
            days,
            [
                ("contained", "#2a9d8f", [d["contained"] for d in daily]),
                ("transferred", "#e9c46a", [d["transferred"] for d in daily]),
                ("refused", "#e76f51", [d["admission_refusals"] for d in daily]),
                ("other", "#adb5bd", other),
            ],
        ),
        line_chart(
            "Containment rate",
            days,
            [("containment", "#2a9d8f", [d["containment"] for d in daily])],
            lambda v: f"{v * 100:.0f} %",
        ),
        _percentiles_chart("Reply latency", days, daily, "reply_ms"),
        _percentiles_chart("Time to first audio", days, daily, "first_audio_ms"),
        line_chart(
            "Average handle time",
            days,
            [("handle", "#264653", [d["handle_ms_mean"] for d in daily])],
            lambda v: f"{v / 1000:.0f} s",
        ),
        line_chart(
            "ASR confidence and CSAT (of 5)",
            days,
            [
                ("ASR", "#264653", [d["asr_confidence_mean"] for d in daily]),
                ("CSAT/5", "#2a9d8f", [d["csat_mean"] / 5 if d["csat_mean"] is not None else None for d in daily]),
            ],
            lambda v: f"{v:.2f}",
        ),
    ]
