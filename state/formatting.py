"""Pure helpers that turn public service shapes into the plain rows the pages render."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from components.project_card import Face, ProjectCardData
from services.domain.overview import ProjectOverview
from services.domain.schemas import DatasetVersionPublic, JobPublic
from state.page_helpers import plural

FINISHED_STATES = frozenset({"succeeded", "failed", "cancelled"})


def checkpoint_progress(checkpoint_epoch: int | None) -> str:
    """Which epoch a resumed job would continue after (1-based), or a dash before the first
    checkpoint is stored."""
    return "—" if checkpoint_epoch is None else f"epoch {checkpoint_epoch + 1} stored"


def epoch_progress(current_epoch: int | None, total_epochs: int | None) -> str:
    """'x/y' with x the epoch being trained or last finished, 1-based (callbacks count from 0)."""
    done = 0 if current_epoch is None else current_epoch + 1
    total = "?" if not total_epochs else str(total_epochs)
    if total_epochs:
        done = min(done, total_epochs)
    return f"{done}/{total}"


def format_time(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def dataset_row(version: DatasetVersionPublic) -> dict[str, str]:
    splits = " · ".join(f"{name} {count}" for name, count in sorted(version.split_counts.items()))
    return {
        "id": str(version.id),
        "name": version.name,
        "version": f"v{version.version}",
        "images": str(version.num_images),
        "classes": f"{len(version.classes)}: {', '.join(version.classes[:6])}"
        + ("…" if len(version.classes) > 6 else ""),
        "splits": splits or "—",
    }


def job_row(job: JobPublic) -> dict[str, str]:
    return {
        "id": str(job.id),
        "name": job.name,
        "state": job.state,
        "epoch": epoch_progress(job.current_epoch, job.total_epochs),
        "created": format_time(job.created_at),
        "href": f"/jobs/{job.id}",
    }


def artifact_rows(artifacts: dict[str, Any]) -> list[dict[str, str]]:
    return [{"name": str(k), "uri": str(v)} for k, v in sorted(artifacts.items())]


def parse_int(value: Any, *, name: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError as exc:
        raise ValueError(f"{name} must be a whole number") from exc


def project_card(project: ProjectOverview) -> ProjectCardData:
    """A project summary as the display text of its card on the projects home."""
    more = project.members - len(project.faces)
    return ProjectCardData(
        id=str(project.id),
        name=project.name,
        role=project.role,
        datasets=plural(project.datasets, "dataset"),
        running=f"{plural(project.jobs_running, 'job')} running"
        if project.jobs_running
        else "No jobs running",
        running_count=project.jobs_running,
        jobs=f"{plural(project.jobs_total, 'job')} in all",
        members=plural(project.members, "member"),
        more_members=f"+{more}" if more > 0 else "",
        faces=[Face(**face.model_dump()) for face in project.faces],
        last_activity=format_time(project.last_activity) or "—",
    )
