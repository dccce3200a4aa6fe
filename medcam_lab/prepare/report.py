"""Counting what every pipeline step kept and dropped, so that nothing is lost silently."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

log = logging.getLogger("medcam_lab")
MASKED_WARNING_SHARE = 0.10
"""A channel losing more than this share of its rows to masked values gets a warning in ``report.md``."""


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
        """Record the count after the filter ``name`` (extra keyword details are kept with it) and log it."""
        entry = {"step": name, "count": int(count), **detail}
        self.steps.append(entry)
        log.info("%-60s %d", name, count)

    def drop(self, reason: str, count: int, examples: list[Any] | None = None) -> None:
        """Record ``count`` items dropped for ``reason`` (up to 5 examples kept) and log a warning; a count of 0
        records nothing."""
        if count <= 0:
            return
        self.dropped[reason] += int(count)
        if examples:
            kept = self.examples.setdefault(reason, [])
            kept.extend(examples[: max(0, 5 - len(kept))])
        log.warning("dropped %d: %s%s", count, reason, f" (e.g. {examples[:3]})" if examples else "")

    def merge_drops(self, prefix: str, counts: dict[str, int]) -> None:
        """Record every ``{reason: count}`` of ``counts`` as a drop named ``prefix + reason``."""
        for reason, n in counts.items():
            self.drop(f"{prefix}{reason}", n)

    def to_dict(self) -> dict[str, Any]:
        """What ``report.json`` holds: the steps, the drops by reason, their examples and the extra ``info``."""
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

    def masked_values_markdown(self) -> list[str]:
        """``report.md`` lines for masked values (``value`` not a number, ``valuenum`` a number), per variable,
        with a warning for every channel that loses more than :data:`MASKED_WARNING_SHARE` of its rows."""
        masked = self.info.get("valuenum_fallback")
        if not masked:
            return []
        lines = ["", "## Masked values (`value` not a number, `valuenum` a number)", "",
                 "| variable | rows | what was done | masked rows | share |", "|---|---|---|---|---|"]
        warnings = []
        for variable, entry in masked.items():
            rows = int(entry["rows"])
            for what, n in entry.items():
                if what == "rows":
                    continue
                share = n / rows if rows else 0.0
                lines.append(f"| {variable} | {rows:,} | {what} | {n:,} | {share:.1%} |")
                if "dropped" in what and share > MASKED_WARNING_SHARE:
                    warnings.append(
                        f"**Warning:** {variable} loses {n:,} of its {rows:,} rows ({share:.1%}): `value` is masked "
                        "(e.g. `___`) and the reference ignores `valuenum`; `--compat clean` (switch "
                        "`valuenum_fallback`) keeps them."
                    )
        if warnings:
            for warning in warnings:
                log.warning(warning.replace("**", "").replace("`", ""))
            lines += [""] + [f"- {w}" for w in warnings]
        return lines

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
        lines += self.masked_values_markdown()
        for key, value in self.info.items():
            if key in ("versions", "unknown_categories", "valuenum_fallback"):
                continue
            if isinstance(value, dict) and value and all(isinstance(v, (int, float)) for v in value.values()):
                lines += ["", f"## {key}", "", "| key | value |", "|---|---|"]
                lines += [f"| {k} | {v} |" for k, v in value.items()]
        return "\n".join(lines) + "\n"
