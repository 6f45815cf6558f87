"""Fixtures for the security tests: the REST API in-process on real S3, Redis and SQLite, a cast of
users with every project role, and helpers to sign them in."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from services.infra.db import session_scope

PASSWORD = "correct-horse-battery-1"
ROLES = ("owner", "admin", "member", "viewer")


def _clear_security_caches() -> None:
    from services.domain import tokens
    from services.infra import ratelimit
    from services.infra.settings import get_settings

    get_settings.cache_clear()
    tokens.jwt_key.cache_clear()
    ratelimit.clear_caches()


@dataclass
class Cast:
    """Users by part they play; `project_id` is a project where each holds the role of the same name."""

    users: dict[str, int] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    personal_tokens: dict[str, str] = field(default_factory=dict)
    project_id: int = 0
    other_project_id: int = 0

    def bearer(self, part: str) -> dict[str, str]:
        if part == "anonymous":
            return {}
        return {"Authorization": f"Bearer {self.personal_tokens[part]}"}


def new_user(*, prefix: str = "u", platform_admin: bool = False) -> tuple[int, str]:
    from services.domain import auth

    with session_scope() as session:
        user = auth.create_user(
            session,
            username=f"{prefix}-{uuid.uuid4().hex[:8]}",
            password=PASSWORD,
            is_platform_admin=platform_admin,
        )
        return user.id, user.username


def make_project(cast: Cast, *, name: str = "P", extra: dict[str, str] | None = None) -> int:
    """A project where cast members hold the roles their part names (plus `extra` part -> role)."""
    from services.domain import projects
    from services.domain.models import Membership, Role, User

    with session_scope() as session:
        owner = session.get(User, cast.users["owner"])
        project = projects.create_project(session, owner=owner, name=name)
        roles = {part: part for part in ROLES if part != "owner"} | (extra or {})
        for part, role in roles.items():
            session.add(Membership(project_id=project.id, user_id=cast.users[part], role=Role(role)))
        return project.id


@pytest.fixture(scope="module")
def client(backend: dict[str, str]) -> Iterator[TestClient]:
    _clear_security_caches()
    from app.api.main import api

    with TestClient(api) as test_client:
        yield test_client
    _clear_security_caches()


@pytest.fixture(scope="module")
def cast(client: TestClient) -> Cast:
    from services.domain import tokens
    from services.domain.models import User

    cast = Cast()
    for part in (*ROLES, "outsider", "spare", "platform_admin"):
        cast.users[part], cast.names[part] = new_user(
            prefix=part[:5], platform_admin=part == "platform_admin"
        )
    with session_scope() as session:
        for part, user_id in cast.users.items():
            _row, secret = tokens.create_personal_token(
                session, user=session.get(User, user_id), name="matrix", expires_in_days=1
            )
            cast.personal_tokens[part] = secret
    cast.project_id = make_project(cast, extra={"spare": "member"})
    from services.domain import projects

    with session_scope() as session:
        other = projects.create_project(
            session, owner=session.get(User, cast.users["outsider"]), name="Other"
        )
        cast.other_project_id = other.id
    return cast


def login(client: TestClient, username: str, password: str = PASSWORD) -> dict:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()
