"""Migration 0016 (`job.dataset_version_id` nullable) on a database that holds jobs, with their
metrics, on SQLite (the table is rebuilt) and PostgreSQL: the upgrade keeps every row; a batch
run over an uploaded zip is then stored without a dataset version, listed and given a context; the
downgrade refuses while such a job exists, saying which, and restores NOT NULL once none does."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from sqlmodel import Session, delete, select

from alembic import command
from services.domain import auth, batch_inference, jobs, overview, projects
from services.domain.models import Dataset, DatasetVersion, Job, JobMetric, Project, User
from services.errors import InvalidInput
from services.infra.db import get_engine, session_scope
from services.runtime.cli import ROOT
from tests.utils import servers
from tests.utils.environ import environment

pytestmark = [pytest.mark.ops]


def _alembic(direction: str, revision: str) -> None:
    getattr(command, direction)(Config(str(ROOT / "alembic.ini")), revision)


@contextmanager
def _platform_database(kind: str, tmp_path: Path) -> Iterator[None]:
    """An empty database of `kind` (sqlite, postgresql), which the platform's settings point at."""
    (tmp_path / "data").mkdir()
    server = nullcontext(None) if kind == "sqlite" else servers.postgres()
    with server as url, environment({"VTP_DATA_DIR": str(tmp_path / "data"), "VTP_DATABASE_URL": url}):
        try:
            yield
        finally:
            get_engine().dispose()  # this database's engine, before the settings move on


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with _platform_database(request.param, tmp_path):
        yield request.param


def _job(project_id: int, user_id: int, version_id: int | None, name: str) -> Job:
    return Job(
        project_id=project_id,
        dataset_version_id=version_id,
        created_by=user_id,
        name=name,
        framework="ultralytics",
        task="detect",
        model="yolo11n.yaml",
        state="succeeded",
        callback_secret="s",
        kind="train" if version_id is not None else "batch_inference",
        inference={} if version_id is not None else {"source": "zip", "images_uri": "s3://b/x.zip"},
    )


def _nullable() -> bool:
    columns = sa.inspect(get_engine()).get_columns("job")
    return next(c for c in columns if c["name"] == "dataset_version_id")["nullable"]


def _trained_job(session: Session, name: str) -> tuple[Project, User, DatasetVersion, Job]:
    """An owner, their project, a dataset version and a job trained on it (flushed)."""
    user = auth.create_user(session, username=f"mig-{uuid.uuid4().hex[:8]}", password="a-long-password-1")
    project = projects.create_project(session, owner=user, name=name)
    dataset = Dataset(project_id=project.id, name="d", created_by=user.id)
    session.add(dataset)
    session.flush()
    version = DatasetVersion(dataset_id=dataset.id, version=1, format="yolo", task="detect", uri="s3://b/k/")
    session.add(version)
    session.flush()
    trained = _job(project.id, user.id, version.id, "trained")
    session.add(trained)
    session.flush()
    return project, user, version, trained


def test_upgrade_keeps_jobs_and_downgrade_refuses_jobs_without_a_version(database: str) -> None:
    _alembic("upgrade", "0009")
    with session_scope() as session:
        project, user, version, trained = _trained_job(session, "migration")
        # Rows that point at the job: rebuilding the table on SQLite must not trip over them.
        session.add(JobMetric(job_id=trained.id, epoch=0, metrics={"map50": 0.5}))
        ids = (project.id, user.id, version.id, trained.id)
    project_id, user_id, version_id, trained_id = ids
    assert not _nullable()

    _alembic("upgrade", "head")
    assert _nullable()
    with session_scope() as session:
        kept = session.get(Job, trained_id)
        assert kept is not None and kept.dataset_version_id == version_id and kept.name == "trained"
        assert len(session.exec(select(JobMetric).where(JobMetric.job_id == trained_id)).all()) == 1
        batch = _job(project_id, user_id, None, "uploaded weights over a zip")
        session.add(batch)
        session.flush()
        batch_id = batch.id
        listed = jobs.filter_jobs(session, project_id=project_id)
        assert {(j["id"], j["dataset_version_id"]) for j in listed} == {
            (trained_id, version_id),
            (batch_id, None),
        }
        contexts = overview.run_contexts(session, project_id=project_id, job_ids=[trained_id, batch_id])
        assert (contexts[trained_id].dataset, contexts[batch_id].dataset) == ("d v1", "uploaded images")

    with pytest.raises(RuntimeError, match=rf"1 job\(s\) have no dataset version .*: {batch_id}\); delete"):
        _alembic("downgrade", "0009")
    assert _nullable(), "a refused downgrade changed nothing"

    with session_scope() as session:
        session.exec(delete(Job).where(Job.id == batch_id))
    _alembic("downgrade", "0009")
    assert not _nullable()
    with session_scope() as session:
        assert session.get(Job, trained_id) is not None
    with pytest.raises(sa.exc.IntegrityError), session_scope() as session:
        session.add(_job(project_id, user_id, None, "no version"))
        session.flush()

    _alembic("upgrade", "head")  # and up again, to where the rest of the session expects it
    assert _nullable()


def test_a_zip_run_of_uploaded_weights_has_no_version_and_retries_with_its_zip(tmp_path: Path) -> None:
    """The domain rules around such a job, on the migrated schema: a zip run of uploaded weights
    gets no version, one of a job's weights keeps that job's; a retry keeps the zip; the
    dispatcher sends the zip's URI and builds nothing from a missing version."""
    with _platform_database("sqlite", tmp_path):
        _alembic("upgrade", "head")
        _zip_run_rules()


def _zip_run_rules() -> None:
    with session_scope() as session:
        project, user, version, trained = _trained_job(session, "zip runs")
        zip_uri = "s3://b/projects/1/inference/batches/x.zip"
        uploaded = batch_inference.ResolvedModel(
            uri="s3://b/w/best.pt",
            job=None,
            framework="ultralytics",
            task="detect",
            architecture="yolo11n.yaml",
        )
        run = batch_inference.new_batch_job(
            session, project_id=project.id, user=user, model=uploaded, ref="models/up/1", images_uri=zip_uri
        )
        assert (
            run.dataset_version_id is None and run.name == "Batch inference: models/up/1 on uploaded images"
        )
        from_job = dataclasses.replace(uploaded, job=trained)
        lineage = batch_inference.new_batch_job(
            session,
            project_id=project.id,
            user=user,
            model=from_job,
            ref=f"jobs/{trained.id}",
            images_uri=zip_uri,
        )
        assert lineage.dataset_version_id == version.id  # a trained model's data, as before
        with pytest.raises(InvalidInput, match="choose a dataset version or upload a zip"):
            batch_inference.new_batch_job(session, project_id=project.id, user=user, model=uploaded, ref="x")

        run.state = "failed"
        session.add(run)
        session.flush()
        again = jobs.retry(session, run, user, resume=False)
        session.add(again)
        session.flush()
        assert again.dataset_version_id is None and again.inference["images_uri"] == zip_uri
        assert jobs.data_uri(session, again) == zip_uri
        spec = jobs.dispatch_spec(again, dataset_uri=zip_uri, callback_url="http://x/cb", heartbeat_s=5)
        assert spec["dataset_uri"] == zip_uri and spec["kind"] == "batch_inference"
        assert jobs.data_uri(session, trained) == "s3://b/k/"
        broken = _job(project.id, user.id, None, "neither")
        broken.inference = {}
        with pytest.raises(InvalidInput, match="neither a dataset version nor a zip"):
            jobs.data_uri(session, broken)
