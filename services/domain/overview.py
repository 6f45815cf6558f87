"""The projects home's summaries: per project the user belongs to, the counts and faces on its card.

A fixed number of grouped queries for all of the user's projects together (not a query per
project), so the home page costs the same with one project or fifty.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlmodel import Session, col, func, select

from services.domain.datasets import list_datasets, thumbnails
from services.domain.models import Dataset, DatasetVersion, Job, JobState, Membership, Role, User
from services.domain.permissions import RANK
from services.domain.projects import projects_for
from services.infra import storage

ACTIVE_STATES = (JobState.dispatching, JobState.running)
FACES = 5  # avatars shown per card; the rest are counted


class MemberFace(BaseModel):
    """What the one avatar component needs to draw a member."""

    username: str
    avatar_name: str
    badge_color: str
    role: str


class ProjectOverview(BaseModel):
    id: int
    name: str
    role: str
    datasets: int
    jobs_running: int
    jobs_total: int
    members: int
    faces: list[MemberFace]
    last_activity: datetime | None


def _latest(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def project_overviews(session: Session, *, user: User) -> list[ProjectOverview]:
    """One summary per project `user` is a member of (membership is the access check)."""
    projects = projects_for(session, user=user)
    ids = [p.id for p, _role in projects]
    if not ids:
        return []
    datasets = dict(
        session.exec(
            select(Dataset.project_id, func.count())
            .where(col(Dataset.project_id).in_(ids))
            .group_by(col(Dataset.project_id))
        ).all()
    )
    dataset_activity = dict(
        session.exec(
            select(Dataset.project_id, func.max(DatasetVersion.created_at))
            .join(DatasetVersion, col(DatasetVersion.dataset_id) == Dataset.id)
            .where(col(Dataset.project_id).in_(ids))
            .group_by(col(Dataset.project_id))
        ).all()
    )
    running = dict(
        session.exec(
            select(Job.project_id, func.count())
            .where(col(Job.project_id).in_(ids), col(Job.state).in_([s.value for s in ACTIVE_STATES]))
            .group_by(col(Job.project_id))
        ).all()
    )
    # A job's newest event is when it finished, else started, else was created.
    newest = func.coalesce(Job.finished_at, Job.started_at, Job.created_at)
    jobs: dict[int, tuple[int, datetime | None]] = {
        project_id: (count, latest)
        for project_id, count, latest in session.exec(
            select(col(Job.project_id), func.count(), func.max(newest))
            .where(col(Job.project_id).in_(ids))
            .group_by(col(Job.project_id))
        ).all()
    }
    members: dict[int, list[MemberFace]] = {pid: [] for pid in ids if pid is not None}
    for project_id, role, member in session.exec(
        select(Membership.project_id, Membership.role, User)
        .join(User, col(User.id) == Membership.user_id)
        .where(col(Membership.project_id).in_(ids), col(User.is_active).is_(True))
    ).all():
        members[project_id].append(
            MemberFace(
                username=member.username,
                avatar_name=member.avatar_name,
                badge_color=member.badge_color,
                role=str(role),
            )
        )
    overviews = []
    for project, role in projects:
        assert project.id is not None
        faces = sorted(members[project.id], key=lambda m: (-RANK[Role(m.role)], m.username))
        total, job_activity = jobs.get(project.id, (0, None))
        overviews.append(
            ProjectOverview(
                id=project.id,
                name=project.name,
                role=role.value,
                datasets=datasets.get(project.id, 0),
                jobs_running=running.get(project.id, 0),
                jobs_total=total,
                members=len(faces),
                faces=faces[:FACES],
                last_activity=_latest(project.created_at, dataset_activity.get(project.id), job_activity),
            )
        )
    return overviews


class RunContext(BaseModel):
    """What a run's card shows besides the run itself: its data and who launched it."""

    job_id: int
    dataset: str  # "shapes v2"
    owner: MemberFace


def run_contexts(session: Session, *, project_id: int, job_ids: list[int]) -> dict[int, RunContext]:
    """Dataset name/version and owner face of the project's runs `job_ids` (one query).

    The caller authorizes reading the project's jobs; runs of other projects are left out. A
    batch run over an uploaded zip has no dataset version: its data reads "uploaded images".
    """
    if not job_ids:
        return {}
    rows = session.exec(
        select(Job.id, Dataset.name, DatasetVersion.version, User)
        .outerjoin(DatasetVersion, col(DatasetVersion.id) == Job.dataset_version_id)
        .outerjoin(Dataset, col(Dataset.id) == DatasetVersion.dataset_id)
        .join(User, col(User.id) == Job.created_by)
        .where(Job.project_id == project_id, col(Job.id).in_(job_ids))
    ).all()
    return {
        job_id: RunContext(
            job_id=job_id,
            dataset=f"{name} v{version}" if version is not None else "uploaded images",
            owner=MemberFace(
                username=owner.username, avatar_name=owner.avatar_name, badge_color=owner.badge_color, role=""
            ),
        )
        for job_id, name, version, owner in rows
        if job_id is not None
    }


class PreviewImage(BaseModel):
    """One thumbnail of a dataset preview, drawn with its boxes as the gallery draws them."""

    path: str
    caption: str  # "circle, square · 2 objects"
    jpeg: bytes


class DatasetPreview(BaseModel):
    dataset_id: int
    name: str
    version: int
    task: str
    num_images: int
    classes: list[str]
    images: list[PreviewImage]


PREVIEW_DATASETS = 12  # newest datasets previewed on one page; the list below names them all
PREVIEW_IMAGES = 4


def dataset_previews(
    session: Session, *, project_id: int, images: int = PREVIEW_IMAGES, limit: int = PREVIEW_DATASETS
) -> list[DatasetPreview]:
    """The first `images` thumbnails of each dataset's latest version (the caller authorizes).

    Thumbnails come from services.domain.datasets.thumbnails, the gallery's own renderer, so a
    preview and the gallery draw the same boxes in the same class colours.
    """
    previews = []
    for dataset, version in list_datasets(session, project_id=project_id)[:limit]:
        _count, items = thumbnails.gallery_page(version, limit=images) if version.num_images else (0, [])
        shown = [
            PreviewImage(
                path=item["path"],
                caption=(", ".join(item["classes"]) or "no objects")
                + f" · {item['num_objects']} object{'' if item['num_objects'] == 1 else 's'}",
                jpeg=storage.get_bytes(item["thumbnail_uri"]),
            )
            for item in items
        ]
        assert dataset.id is not None
        previews.append(
            DatasetPreview(
                dataset_id=dataset.id,
                name=dataset.name,
                version=version.version,
                task=version.task,
                num_images=version.num_images,
                classes=list(version.classes),
                images=shown,
            )
        )
    return previews
