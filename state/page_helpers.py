"""Pure helpers shared by the page states (datasets, members, account, admin, jobs; unit-tested)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from typing import Any

from services.domain.models import Role
from services.domain.permissions import RANK, Action, needed_role
from services.errors import InvalidInput

# The one parser of project page addresses (/projects/<id>/..., /projects/<id>/datasets/<id>).
_PROJECT_PATH = re.compile(r"^/projects/(\d{1,18})(?:/|$)(?:datasets/(\d{1,18})(?:/|$))?")


def project_path_ids(path: str) -> tuple[int | None, int | None]:
    """(project id, dataset id) named by a /projects/<id>[/datasets/<id>] path; None where absent."""
    match = _PROJECT_PATH.match(path or "")
    if not match:
        return None, None
    project, dataset = match.groups()
    return int(project), (int(dataset) if dataset else None)


def project_from_path(path: str) -> int | None:
    """The project id of a /projects/<id>/... page address (None elsewhere)."""
    return project_path_ids(path)[0]


def role_allows(role: str, action: Action, *, own: bool = False) -> bool:
    """Whether `role` meets the action's minimum in services.domain.permissions (UI gating only); `own`:
    the target is the user's own (their job), where OWN_MINIMUM_ROLE may ask for less.

    The server decides again on every call (`authorize`); this only hides what it would refuse.
    """
    try:
        return RANK[Role(role)] >= RANK[needed_role(action, own=own)]
    except ValueError:
        return False


def human_bytes(size: int | float) -> str:
    value = float(max(0, size))
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover


def progress_percent(loaded: int | float, total: int | float) -> int:
    """0..100, never above 100 and 0 while the total is unknown."""
    if total <= 0:
        return 0
    return max(0, min(100, int(round(100 * loaded / total))))


def problem_rows(problems: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Report problems ({file, line, message}) -> table rows with the line as text ('' when none)."""
    return [
        {
            "file": str(p.get("file") or ""),
            "line": "" if p.get("line") in (None, 0) else str(p.get("line")),
            "message": str(p.get("message") or ""),
        }
        for p in problems
    ]


def data_uri(data: bytes, media_type: str = "image/jpeg") -> str:
    return f"data:{media_type};base64," + base64.b64encode(data).decode()


def split_text(split_counts: Mapping[str, int]) -> str:
    order = {"train": 0, "val": 1, "test": 2}
    parts = sorted(split_counts.items(), key=lambda kv: (order.get(kv[0], 9), kv[0]))
    return " · ".join(f"{name} {count}" for name, count in parts if count) or "—"


def parse_ratio(value: Any, *, name: str) -> float:
    """A split ratio typed as 0.8 or 80 (percent) -> 0..1; raises ValueError with a plain message."""
    text = str(value or "").strip().rstrip("%")
    try:
        number = float(text or "0")
    except ValueError as exc:
        raise ValueError(f"{name} must be a number such as 0.8 or 80") from exc
    if number > 1:
        number /= 100
    if not 0 <= number <= 1:
        raise ValueError(f"{name} must be between 0 and 1 (or 0 and 100 %)")
    return round(number, 4)


def quota_input(value: Any, *, field: str) -> int | None:
    """A quota typed in a form: empty -> None (no limit), a whole number -> int (the service checks
    the range); anything else -> InvalidInput naming `field`."""
    text = str(value if value is not None else "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError as exc:
        unit = "GPUs" if field == "max_gpus" else "jobs"
        raise InvalidInput(
            f"{field}: enter a whole number of {unit}, or leave it empty for no limit"
        ) from exc


def name_fields(message: str, labels: Mapping[str, str]) -> str:
    """A service message that starts with an API field name ("max_queued_jobs: ..."), with the
    label the page shows for that field instead."""
    field, sep, rest = message.partition(": ")
    return f"{labels[field]}: {rest}" if sep and field in labels else message


def plural(count: int, noun: str, plural_form: str = "") -> str:
    """'1 image', '3 images', '0 classes': the count with the noun in the right number."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural_form or (noun + 'es' if noun.endswith(('s', 'x', 'ch', 'sh')) else noun + 's')}"
