"""A logged-in API client against real S3 (nanio), Redis and SQLite, and before/after counting."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import func, select

from services.domain.models import Dataset, DatasetVersion
from services.infra import storage
from services.infra.db import session_scope
from tests.datasets.factories import zip_bytes


@pytest.fixture(scope="module")
def client(backend: dict[str, str]) -> Iterator[TestClient]:
    from app.api.main import api
    from services.domain import auth, projects

    with session_scope() as session:
        user = auth.create_user(session, username=f"d{uuid.uuid4().hex[:8]}", password="correct-horse-1")
        projects.create_project(session, owner=user, name="Datasets")
        username = user.username
    with TestClient(api) as test_client:
        token = test_client.post(
            "/api/v1/auth/login", json={"username": username, "password": "correct-horse-1"}
        )
        test_client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        test_client.project_id = test_client.get("/api/v1/projects").json()[0]["id"]  # type: ignore[attr-defined]
        yield test_client


def state() -> tuple[int, int, list[str]]:
    """Dataset rows, version rows and every key in the bucket."""
    with session_scope() as session:
        datasets = session.exec(select(func.count()).select_from(Dataset)).one()
        versions = session.exec(select(func.count()).select_from(DatasetVersion)).one()
    return datasets, versions, sorted(storage.list_keys(""))


def upload(client: TestClient, data: bytes | dict[str, Any], name: str = "ds") -> Any:
    body = data if isinstance(data, bytes) else zip_bytes(data)
    return client.post(
        f"/api/v1/projects/{client.project_id}/datasets",  # type: ignore[attr-defined]
        data={"name": name},
        files={"file": (f"{name}.zip", body, "application/zip")},
    )


def base(client: TestClient, dataset_id: int) -> str:
    return f"/api/v1/projects/{client.project_id}/datasets/{dataset_id}"  # type: ignore[attr-defined]
