"""Per-epoch validation documents (JSON) shared by every plugin, and their callback summary.

A plugin hands `ctx.on_epoch(..., validation)` a dict of these documents; the job runner uploads
each as `{output_uri}artifacts/epoch-{n:03d}/{name}.json` and puts `summarise()` in the callback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PR_POINTS = 101  # recall 0.00, 0.01, ..., 1.00: enough for a chart, small enough for JSON


def confusion_matrix_doc(
    matrix: Sequence[Sequence[float]], classes: list[str], background: bool
) -> dict[str, Any]:
    """Counts indexed `[predicted][true]`; detection adds a last `background` row and column
    (a missed object is counted in the background row, a false detection in the column)."""
    names = [*classes, "background"] if background else list(classes)
    counts = [[int(round(float(v))) for v in row] for row in matrix]
    if len(counts) != len(names) or any(len(row) != len(names) for row in counts):
        raise ValueError(f"confusion matrix is not {len(names)}x{len(names)}")
    return {"axes": ["predicted", "true"], "names": names, "counts": counts}


def per_class_accuracy(cm: dict[str, Any]) -> dict[str, dict[str, float | int]]:
    """Classification: per true class, the share predicted right (from a doc without background)."""
    counts = cm["counts"]
    out: dict[str, dict[str, float | int]] = {}
    for t, name in enumerate(cm["names"]):
        total = sum(row[t] for row in counts)
        out[name] = {"accuracy": counts[t][t] / total if total else 0.0, "support": total}
    return out


def pr_curve_doc(
    recall_grid: Sequence[float], precision_by_class: dict[str, Sequence[float]], iou: float
) -> dict[str, Any]:
    """Precision at `PR_POINTS` evenly spaced recall values, per class, at one IoU threshold."""
    n = len(recall_grid)
    idx = [round(i * (n - 1) / (PR_POINTS - 1)) for i in range(PR_POINTS)] if n else []
    return {
        "iou": iou,
        "recall": [round(float(recall_grid[i]), 4) for i in idx],
        "precision": {
            name: [round(float(values[i]), 4) for i in idx] for name, values in precision_by_class.items()
        },
    }


def summarise(docs: dict[str, Any], uris: dict[str, str]) -> dict[str, Any]:
    """The callback's `validation` field: headline numbers inline, full documents by URI."""
    summary: dict[str, Any] = {f"{name}_uri": uri for name, uri in uris.items()}
    per_class = docs.get("per_class", {}).get("classes", {})
    key = docs.get("per_class", {}).get("headline")
    if key:
        summary[f"per_class_{key}"] = {name: row.get(key) for name, row in per_class.items()}
    return summary
