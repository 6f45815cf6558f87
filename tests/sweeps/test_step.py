"""The worker's sweep step against a real database, Optuna study and trainer catalogue (no
training): a trial asked for by a step that died before its job was saved gets its job."""

from __future__ import annotations

import uuid

import optuna
import pytest
from sqlmodel import select

from services.actions import sweeps as sweep_actions
from services.domain import sweeps
from services.domain.models import Dataset, DatasetVersion, Job, Project, Sweep, User
from services.infra.db import session_scope

pytestmark = [pytest.mark.sweeps, pytest.mark.usefixtures("backend")]


def _sweep() -> Sweep:
    with session_scope() as session:
        user = User(username=f"stepper-{uuid.uuid4().hex[:6]}", password_hash="x", avatar_name="S")
        project = Project(name="p")
        session.add_all([user, project])
        session.flush()
        dataset = Dataset(project_id=project.id, name="d", created_by=user.id)
        session.add(dataset)
        session.flush()
        version = DatasetVersion(
            dataset_id=dataset.id, version=1, format="yolo", task="detect", uri="s3://vtp/x/", classes=["a"]
        )
        session.add(version)
        session.flush()
        sweep = Sweep(
            project_id=project.id,
            dataset_version_id=version.id,
            created_by=user.id,
            name="s",
            framework="ultralytics",
            task="detect",
            model="yolo11n.yaml",
            search_space={
                "lr0": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
                "epochs": {"type": "fixed", "value": 1},
            },
            objective="map50",
            n_trials=2,
            parallelism=1,
            pruner="none",
            seed=1,
        )
        session.add(sweep)
        session.flush()
        sweep.study_name = sweeps.study_name(sweep.id or 0)
        return sweep


def test_an_orphaned_trial_gets_its_job_and_no_extra_trial_is_asked() -> None:
    sweep = _sweep()
    study = sweeps.study_of(sweep)
    orphan = study.ask(fixed_distributions=sweeps.distributions(sweep.search_space))  # its step "died"
    step = sweep_actions._step(sweep.id or 0)
    with session_scope() as session:
        jobs = list(session.exec(select(Job).where(Job.sweep_id == sweep.id)).all())
        assert [(j.sweep_trial, j.state, j.hyperparameters["lr0"]) for j in jobs] == [
            (orphan.number, "queued", orphan.params["lr0"])
        ]
        assert jobs[0].hyperparameters["epochs"] == 1
        assert step.dispatch == [(jobs[0].id, 1)]
    trials = sweeps.trials_of(sweep)
    assert [t.state for t in trials] == [optuna.trial.TrialState.RUNNING]  # parallelism 1: no second
    again = sweep_actions._step(sweep.id or 0)  # idempotent: nothing new to do
    assert again.dispatch == [] and len(sweeps.trials_of(sweep)) == 1


def test_importances_are_saved_with_the_study_once_per_finished_trial() -> None:
    sweep = _sweep()
    with session_scope() as session:
        row = session.get(Sweep, sweep.id)
        assert row is not None
        row.search_space = {**row.search_space, "momentum": {"type": "float", "low": 0.6, "high": 0.95}}
        session.add(row)
        sweep = row
    study = sweeps.study_of(sweep)
    distributions = sweeps.distributions(sweep.search_space)
    for n in range(4):
        params = {"lr0": 0.001 * 3**n, "momentum": 0.6 + 0.08 * n}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=0.1 * n))
    assert sweeps.saved_importances(sweep, 4) is None  # nothing saved yet
    sweep_actions._step(sweep.id or 0)  # the worker's step saves them for the 4 finished trials
    saved = sweeps.saved_importances(sweep, 4)
    assert saved is not None and set(saved[0]) == {"lr0", "momentum"} and saved[1] == ""
    assert saved == sweeps.importances(sweep, sweeps.trials_of(sweep))
    assert sweeps.saved_importances(sweep, 5) is None  # stale once another trial finishes
    with session_scope() as session:
        detail = sweep_actions._detail(session, sweep)
    assert (detail.importances, detail.importance_note) == saved
