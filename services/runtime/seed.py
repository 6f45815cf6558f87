"""First-start data: a demo admin (random password, printed once, stored hashed) and a demo
project holding a small sample dataset, so a new user can train within a minute."""

from __future__ import annotations

import io
import secrets

from sqlmodel import Session, select

from services.domain import auth, datasets, projects
from services.domain.models import User
from services.infra.db import session_scope
from services.runtime import sample_data

DEMO_USER = "admin"
DEMO_PROJECT = "Demo project"


def seed_demo() -> str | None:
    """Create the demo data if there is no user yet. Returns the new password, else None."""
    with session_scope() as session:
        if session.exec(select(User)).first() is not None:
            return None
        password = secrets.token_urlsafe(12)
        user = auth.create_user(session, username=DEMO_USER, password=password, is_platform_admin=True)
        project = projects.create_project(
            session, owner=user, name=DEMO_PROJECT, description="Circles and squares, ready to train."
        )
        session.commit()
        assert project.id is not None and user.id is not None
        _sample_dataset(session, project_id=project.id, user_id=user.id)
        return password


def _sample_dataset(session: Session, *, project_id: int, user_id: int) -> None:
    data = sample_data.yolo_zip()
    datasets.create_dataset_from_zip(
        session,
        project_id=project_id,
        user_id=user_id,
        name="shapes (sample)",
        fileobj=io.BytesIO(data),
        filename="shapes.zip",
    )
