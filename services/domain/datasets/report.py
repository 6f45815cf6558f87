"""Validation findings: every problem in an upload, as (file, line, message) rows.

Errors reject the upload; warnings keep the dataset and are shown with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.errors import InvalidInput

MAX_LISTED = 1000  # rows kept per severity in a report; the counts stay exact


@dataclass
class Problem:
    file: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "message": self.message}


@dataclass
class Report:
    """Counts plus the problem table. `errors` make the upload fail; `warnings` do not."""

    format: str = ""
    task: str = ""
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def error(self, file: str, message: str, line: int | None = None) -> None:
        self.errors.append(Problem(file, message, line))

    def warn(self, file: str, message: str, line: int | None = None) -> None:
        self.warnings.append(Problem(file, message, line))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "task": self.task,
            "counts": {**self.counts, "errors": len(self.errors), "warnings": len(self.warnings)},
            "errors": [p.to_dict() for p in self.errors[:MAX_LISTED]],
            "warnings": [p.to_dict() for p in self.warnings[:MAX_LISTED]],
        }


class DatasetRejected(InvalidInput):
    """The upload has problems the user must fix; `problems` lists every one found."""

    def __init__(self, summary: str, problems: list[Problem] | None = None, report: Report | None = None):
        self.summary = summary
        self.problems = problems or []
        self.report = report
        shown = "; ".join(str(p) for p in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"{summary}{': ' + shown + more if shown else ''}")

    def to_dict(self) -> dict[str, Any]:
        """The 422 body: a sentence, then every problem as a row."""
        body: dict[str, Any] = {
            "detail": self.message,
            "problems": [p.to_dict() for p in self.problems[:MAX_LISTED]],
            "problem_count": len(self.problems),
        }
        if self.report is not None:
            body["report"] = self.report.to_dict()
        return body
