"""The one-screen summary that ends ``medcam-lab batch``: per stage its status, time and output notebook, and the
key result the stage wrote, read from the stage's own files (nothing is recomputed). A file that is not there
is named as not found; it never stops the summary.

Written into the run folder as ``batch_summary.json`` and ``batch_summary.md`` (the text the command prints).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medcam_lab.runinfo import write_json_atomic


class _NotFound(Exception):
    """A stage file the summary needs is missing or unreadable; the message says which and why."""


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise _NotFound(f"not found: {path}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _NotFound(f"unreadable: {path} ({exc})") from None


def _cohort_result(out: Path, params: dict[str, Any]) -> str:
    from medcam_lab.data.cohort import REPORT_FILE  # here: the batch command stays light to import

    report = _read_json(out / REPORT_FILE)
    splits = {s["step"].removeprefix("pairs in "): s for s in report.get("steps", [])
              if s.get("step", "").startswith("pairs in ")}
    if not splits:
        raise _NotFound(f"no split counts in {out / REPORT_FILE}")
    pairs = " / ".join(f"{name} {s['count']:,}" for name, s in splits.items())
    patients = " / ".join(f"{s['patients']:,}" for s in splits.values() if "patients" in s)
    ehr = report.get("ehr", {})
    text = f"image–EHR pairs {pairs}" + (f" (patients {patients})" if patients else "")
    if "n_features" in ehr:
        text += f"; {ehr['n_features']} EHR features ({ehr.get('compat', '?')} mode)"
    return text


def _align_result(out: Path, params: dict[str, Any]) -> str:
    selected = _read_json(out / "selected.json")
    best, loss, run = selected["best_epoch"], selected["best_val_loss"], selected["epochs_run"]
    text = (f"best epoch {best} of {run} kept (validation loss {loss:.4f})" if selected.get("keep_best")
            else f"last of {run} epochs kept; lowest validation loss {loss:.4f} at epoch {best}")
    try:
        history = _read_json(out / "history.json")
    except _NotFound as exc:
        return f"{text}; history {exc}"
    record: dict[str, Any] = next((h for h in history if h.get("epoch") == best), {})
    if "val_retrieval_top1" in record:
        text += (f"; validation retrieval top-1 {record['val_retrieval_top1']:.3f}, "
                 f"top-5 {record['val_retrieval_top5']:.3f} at epoch {best}")
    return text


def _interval(r: dict[str, Any], confidence: float) -> str:
    return f"({confidence:.0%} CI {r['low']:.4f}–{r['high']:.4f})"


def _finetune_result(out: Path, params: dict[str, Any]) -> str:
    text = ""
    seeds = params.get("seeds") or []
    if seeds:  # the pooled result over seeds, then the first seed's run (the one notebook 03 shows in detail)
        from medcam_lab.training.finetune import seed_run_dir

        pooled = _read_json(out / "seeds_metrics.json")
        for metric in ("auroc", "auprc"):
            a = pooled[metric]["a"]
            text += (f"macro {metric.upper()} over seeds {list(seeds)} mean {a['mean']:.4f} (sd {a['sd']:.4f}) "
                     f"{_interval(a, a.get('confidence', params.get('confidence', 0.95)))}; ")
        text += f"seed {seeds[0]}: "
        out = seed_run_dir(out, seeds[0])
    metrics = _read_json(out / "evaluation" / "metrics.json")
    parts = []
    for metric in ("auroc", "auprc"):
        r = metrics[metric]
        skipped = f", {len(r['skipped_labels'])} label(s) skipped" if r.get("skipped_labels") else ""
        parts.append(f"macro {metric.upper()} {r['point']:.4f} {_interval(r, r.get('confidence', 0.95))}{skipped}")
    text += (f"{metrics['n_rows']:,} test images: " if "n_rows" in metrics else "") + "; ".join(parts)
    try:
        winner = _read_json(out / "finetune_summary.json")["selected"]
        text += f"; lr {winner['lr']:g} chosen (validation AUROC {winner['best_val_auroc']:.4f})"
    except _NotFound as exc:
        text += f"; learning-rate choice {exc}"
    return text


def _embeddings_result(out: Path, params: dict[str, Any]) -> str:
    r = _read_json(out / "retrieval.json")
    before, after = r["before"], r["after"]
    return (f"image → EHR retrieval on {r.get('split', '?')} ({after.get('n', '?')} images): top-1 "
            f"{before['top1']:.3f} → {after['top1']:.3f}, top-5 {before['top5']:.3f} → {after['top5']:.3f} before → "
            f"after alignment (chance {after.get('chance_top1', float('nan')):.3f} / "
            f"{after.get('chance_top5', float('nan')):.3f})")


def _inspect_result(out: Path, params: dict[str, Any]) -> str:
    if not out.is_dir():
        raise _NotFound(f"not found: {out}")
    snapshots = sorted(out.glob("*_attention.html"))
    if not snapshots:
        raise _NotFound(f"not found: snapshots (*_attention.html) in {out}")
    return f"{len(snapshots)} snapshot(s) (attention, Grad-CAM, EHR attribution) in {out}"


#: The reader of each notebook's key result: (its output folder, its parameters) → one line.
RESULT_READERS: dict[str, Callable[[Path, dict[str, Any]], str]] = {
    "01_prepare_cohort": _cohort_result,
    "02_align": _align_result,
    "03_finetune_evaluate": _finetune_result,
    "04_embeddings_umap": _embeddings_result,
    "05_inspect_alignment": _inspect_result,
}


def format_seconds(seconds: float | None) -> str:
    """``12.3 s``, ``4 min 05 s``, ``1 h 02 min``; ``—`` when the stage did not run."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def summarize_batch(run_dir: str | Path) -> dict[str, Any]:
    """Each stage of the batch in ``run_dir``: status, seconds, output notebook and key result (from
    ``status.json``, ``parameters.json`` and the files each stage wrote under its ``out``)."""
    run_dir = Path(run_dir)
    try:
        status = _read_json(run_dir / "status.json")
    except _NotFound as exc:
        raise FileNotFoundError(f"{run_dir} is not a batch run: status.json {exc}") from None
    try:
        parameters = _read_json(run_dir / "parameters.json")
    except _NotFound:
        parameters = {}
    error = status.get("error", {})
    stages = []
    for nb, state in status.get("stages", {}).items():
        params = parameters.get(nb, {})
        notebook = run_dir / f"{nb}.ipynb"
        if state == "done":
            out = Path(params["out"]) if params.get("out") else run_dir / nb
            try:
                result = RESULT_READERS[nb](out, params)
            except _NotFound as exc:
                result = str(exc)
            except (KeyError, TypeError, IndexError) as exc:
                result = f"unexpected content in the files of {out}: {type(exc).__name__} {exc}"
        elif error.get("notebook") == nb:
            result = f"{state}: {error.get('error', '')}"
        elif state == "running":  # the batch was stopped (interrupted) during this stage
            result = "stopped while running"
        else:
            result = "not run"
        stages.append({"stage": nb, "status": state, "seconds": status.get("seconds", {}).get(nb),
                       "notebook": str(notebook) if notebook.exists() else None, "result": result})
    done = sum(s["status"] == "done" for s in stages)
    return {"run_dir": str(run_dir), "stages_done": done, "stages": stages}


def render_summary(summary: dict[str, Any]) -> str:
    """The summary as Markdown that also reads as plain text: a table of stages, then one result line each."""
    stages = summary["stages"]
    rows = [("stage", "status", "time", "output notebook")] + [
        (s["stage"], s["status"], format_seconds(s["seconds"]), s["notebook"] or "not written") for s in stages]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]

    def line(row: tuple[str, ...]) -> str:
        return "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |"

    lines = [f"# Batch summary: {summary['run_dir']}", "",
             f"{summary['stages_done']} of {len(stages)} stage(s) done.", "", line(rows[0]),
             "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in rows[1:]), "", "Results:"]
    lines += [f"- {s['stage']}: {s['result']}" for s in stages]
    return "\n".join(lines) + "\n"


def write_batch_summary(run_dir: str | Path) -> str:
    """Write ``batch_summary.json`` and ``batch_summary.md`` into ``run_dir``; returns the Markdown text."""
    run_dir = Path(run_dir)
    summary = summarize_batch(run_dir)
    text = render_summary(summary)
    write_json_atomic(run_dir / "batch_summary.json", summary)
    (run_dir / "batch_summary.md").write_text(text)
    return text
