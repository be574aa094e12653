"""The CLI's tables: what a command prints of an API call's result, as plain text.

These format what the API returns; the formatting rules of a study's trials are the tuning
module's own (the trials it counts, how its parameters read), shared with the summary.md it writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def ensemble_table(result: dict[str, Any]) -> str:
    """`aelab ensemble`: each member's metrics, then the ensemble's."""
    lines = [f"{'member':<40} {'code':>6} {'test_rmse':>10} {'test_bce':>9} {'pca_rmse':>9}"]
    rows = [(row["run"][-40:], row) for row in result["members"]]
    rows.append(("ensemble (mean of reconstructions)", result))
    for label, row in rows:
        lines.append(
            f"{label:<40} {row['code_size']:>6} {row['test_rmse']:>10.4f} {row['test_bce']:>9.4f} "
            f"{row['pca_rmse']:>9.4f}"
        )
    return "\n".join(lines)


def demo_table(rows: list) -> str:
    """`aelab demo`: the rows of :func:`aelab.demo` as a plain-text table."""
    head = ("model", "seed's published number", "ours (test)", "PCA, same code size", "beats PCA", "steps", "seconds")
    body = [
        (
            r.model,
            r.published,
            r.ours + {True: " met", False: " missed"}.get(r.met, ""),
            r.pca,
            "yes" if r.beats_pca else "no",
            f"{r.steps:,}" if r.steps else "-",
            f"{r.seconds:.0f}",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in (head, *body)) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in (head, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_table(study) -> str:
    """`aelab tune`: the trials, each one's state, value and parameters."""
    from aelab.tuning import params_text, study_trials  # (the import loads Optuna: not for `aelab --help`)

    rows = [f"{'trial':>5}  {'state':<9} {'value':>10}  params"]
    for t in study_trials(study):
        value = "" if t.value is None else f"{t.value:.5g}"
        params = params_text(t.params)
        rows.append(f"{t.number:>5}  {t.state.name.lower():<9} {value:>10}  {params}")
    return "\n".join(rows)


def study_table(study, out: str | Path) -> str:
    """`aelab tune --list`: a study's trials (:func:`aelab.tuning.load_study`), each one's state, value,
    parameters, and the machine and folder of its run (workers with their own --out keep their
    runs apart)."""
    from aelab.tuning import params_text, study_trials

    out = Path(out)
    rows = [f"{'trial':>5}  {'state':<9} {'value':>10}  {'host':<16} run folder / params"]
    for t in study_trials(study):
        value = "" if t.value is None else f"{t.value:.5g}"
        where = t.user_attrs.get("folder") or str(out / t.user_attrs.get("run", ""))
        rows.append(
            f"{t.number:>5}  {t.state.name.lower():<9} {value:>10}  {t.user_attrs.get('host', '-'):<16} "
            f"{where}  {params_text(t.params)}"
        )
    return "\n".join(rows)
