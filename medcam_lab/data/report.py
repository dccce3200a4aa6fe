"""Counting what every pipeline step kept and dropped, so that nothing is lost silently."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

log = logging.getLogger("medcam_lab")


class CohortReport:
    """Ordered record of counts after each filter, drops by reason, and examples of dropped items.

    ``step(name, n)`` records the count after a filter; ``drop(reason, n, examples)`` records items
    removed with a reason (logged as a warning); ``to_dict()`` is what ``report.json`` holds.
    """

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.dropped: Counter[str] = Counter()
        self.examples: dict[str, list[Any]] = {}
        self.info: dict[str, Any] = {}

    def step(self, name: str, count: int, **detail: Any) -> None:
        entry = {"step": name, "count": int(count), **detail}
        self.steps.append(entry)
        log.info("%-60s %d", name, count)

    def drop(self, reason: str, count: int, examples: list[Any] | None = None) -> None:
        if count <= 0:
            return
        self.dropped[reason] += int(count)
        if examples:
            kept = self.examples.setdefault(reason, [])
            kept.extend(examples[: max(0, 5 - len(kept))])
        log.warning("dropped %d: %s%s", count, reason, f" (e.g. {examples[:3]})" if examples else "")

    def merge_drops(self, prefix: str, counts: dict[str, int]) -> None:
        for reason, n in counts.items():
            self.drop(f"{prefix}{reason}", n)

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "dropped": dict(sorted(self.dropped.items())),
            "dropped_examples": self.examples,
            **self.info,
        }

    def drops_by_variable(self) -> list[tuple[str, str, int]]:
        """Event-level drops split into ``(variable, reason, count)`` (keys ``event: <variable>: <reason>``)."""
        rows = []
        for key, n in sorted(self.dropped.items()):
            if key.startswith("event: ") and key.count(": ") >= 2:
                _, variable, reason = key.split(": ", 2)
                rows.append((variable, reason, n))
        return rows

    def to_markdown(self) -> str:
        """The human-readable summary (``report.md``): versions, counts, drops, unknown strings, the rest."""
        lines = ["# Cohort report", ""]
        versions = self.info.get("versions")
        if isinstance(versions, dict):
            lines += ["## Versions", "", "| what | version |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in versions.items()] + [""]
        lines += ["## Count after every filter", "", "| step | count | detail |", "|---|---|---|"]
        for s in self.steps:
            detail = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in s.items()
                               if k not in ("step", "count"))
            lines.append(f"| {s['step']} | {s['count']:,} | {detail} |")
        lines += ["", "## Dropped, by reason", "", "| reason | count |", "|---|---|"]
        lines += [f"| {r} | {n:,} |" for r, n in sorted(self.dropped.items())] or ["| (none) | 0 |"]
        by_variable = self.drops_by_variable()
        if by_variable:
            lines += ["", "## Dropped or out-of-range values, by variable", "", "| variable | reason | count |",
                      "|---|---|---|"]
            lines += [f"| {v} | {r} | {n:,} |" for v, r, n in by_variable]
        unknown = self.info.get("unknown_categories")
        lines += ["", "## Unknown category strings", "", "| variable: string | count |", "|---|---|"]
        lines += [f"| {k} | {n:,} |" for k, n in sorted((unknown or {}).items())] or ["| (none) | 0 |"]
        for key, value in self.info.items():
            if key in ("versions", "unknown_categories"):
                continue
            if isinstance(value, dict) and value and all(isinstance(v, (int, float)) for v in value.values()):
                lines += ["", f"## {key}", "", "| key | value |", "|---|---|"]
                lines += [f"| {k} | {v} |" for k, v in value.items()]
        return "\n".join(lines) + "\n"
