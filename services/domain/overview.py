"""The projects home's summaries: per project the user belongs to, the counts and faces on its card.

A fixed number of grouped queries for all of the user's projects together (not a query per
project), so the home page costs the same with one project or fifty.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlmodel import Session, col, func, select

from services.domain.models import Dataset, DatasetVersion, Job, JobState, Membership, Role, User
from services.domain.permissions import RANK
from services.domain.projects import projects_for

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
            .group_by(Dataset.project_id)
        ).all()
    )
    dataset_activity = dict(
        session.exec(
            select(Dataset.project_id, func.max(DatasetVersion.created_at))
            .join(DatasetVersion, col(DatasetVersion.dataset_id) == Dataset.id)
            .where(col(Dataset.project_id).in_(ids))
            .group_by(Dataset.project_id)
        ).all()
    )
    running = dict(
        session.exec(
            select(Job.project_id, func.count())
            .where(col(Job.project_id).in_(ids), col(Job.state).in_([s.value for s in ACTIVE_STATES]))
            .group_by(Job.project_id)
        ).all()
    )
    job_rows = session.exec(
        select(
            Job.project_id,
            func.count(),
            func.max(Job.created_at),
            func.max(Job.started_at),
            func.max(Job.finished_at),
        )
        .where(col(Job.project_id).in_(ids))
        .group_by(Job.project_id)
    ).all()
    jobs = {row[0]: row[1:] for row in job_rows}
    members: dict[int, list[MemberFace]] = {pid: [] for pid in ids}
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
        total, created, started, finished = jobs.get(project.id, (0, None, None, None))
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
                last_activity=_latest(
                    project.created_at, dataset_activity.get(project.id), created, started, finished
                ),
            )
        )
    return overviews
