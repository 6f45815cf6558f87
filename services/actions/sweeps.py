"""Sweeps as users act on them (create, list, read, cancel, train the best), and the step that
moves a sweep on, which the worker runs (services.runtime.worker.sweep_step).

Every trial is an ordinary job, made by the job rules (services.domain.jobs.new_job) within the
project's quotas: it shows in the jobs list and on the compare page, and can be cancelled,
retried or resumed like any other. The step runs in the worker after a trial's callback has been
committed, never in the web request: it reports the trial's new epochs to Optuna and asks the
pruner; a pruned trial's job is cancelled through the same path as a user's cancel (queued: at
once; running: the trainer is asked to stop) and keeps the epoch that decided it
(`Job.pruned_epoch`, shown as "pruned"). A finished trial's value (its best epoch's objective) is
told to the study, and new trials are asked for while fewer than `parallelism` run and trials
remain. Steps are idempotent and serialized per sweep (a Redis lock), and the worker's periodic
pass steps every running sweep, so a restarted worker continues where the last one stopped.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field

import httpx
import optuna
from optuna.trial import TrialState
from sqlmodel import Session

from services.actions import jobs as job_actions
from services.actions.core import Actor, Audit, operation
from services.domain import audit, jobs, quotas, sweeps
from services.domain.models import Job, JobState, Sweep, SweepState, User, id_of, utcnow
from services.domain.permissions import Action
from services.domain.schemas import JobCreate, JobPublic, SweepCreate, SweepDetail, SweepPublic, SweepTrial
from services.errors import Conflict, DomainError
from services.infra import tracking
from services.infra.db import session_scope
from services.infra.queue import enqueue_dispatch, enqueue_sweep_step
from services.infra.trainer_client import CircuitBreakerError, TrainerClient

log = logging.getLogger("vtp.sweeps")


# --- public shapes ------------------------------------------------------------------------------


def _public(sweep: Sweep, trials: list[optuna.trial.FrozenTrial], rows: list[Job]) -> SweepPublic:
    best = sweeps.best_trial(trials, sweep.direction)
    job_of = _newest_jobs(rows)
    best_job = job_of.get(best.number) if best is not None else None
    return SweepPublic(
        **sweep.model_dump(
            exclude={"created_by", "dataset_version_id", "study_name", "device", "resources"}, warnings=False
        ),
        dataset_version_id=sweep.dataset_version_id,
        trials_done=sum(1 for t in trials if t.state.is_finished()),
        trials_running=sum(1 for t in trials if t.state == TrialState.RUNNING),
        best_value=best.value if best is not None else None,
        best_job_id=best_job.id if best_job is not None else None,
    )


def _newest_jobs(rows: list[Job]) -> dict[int, Job]:
    """Trial number -> its newest job (a retried trial has several)."""
    found: dict[int, Job] = {}
    for job in rows:
        if job.sweep_trial is not None:
            found[job.sweep_trial] = job
    return found


_importance_cache: dict[tuple[int, int], tuple[dict[str, float], str]] = {}
_importance_lock = threading.Lock()


def _importances(sweep: Sweep, trials: list[optuna.trial.FrozenTrial]) -> tuple[dict[str, float], str]:
    """Parameter importances, computed once per number of finished trials (the page refreshes live)."""
    key = (id_of(sweep), sum(1 for t in trials if t.state == TrialState.COMPLETE))
    with _importance_lock:
        if key in _importance_cache:
            return _importance_cache[key]
    found = sweeps.importances(sweep, trials)
    with _importance_lock:
        _importance_cache[key] = found
    return found


def _detail(session: Session, sweep: Sweep) -> SweepDetail:
    trials = sweeps.trials_of(sweep)
    rows = sweeps.trial_jobs(session, sweep_id=id_of(sweep))
    job_of = _newest_jobs(rows)
    best = sweeps.best_trial(trials, sweep.direction)
    found = SweepDetail(**_public(sweep, trials, rows).model_dump())
    for trial in trials:
        job = job_of.get(trial.number)
        found.trials.append(
            SweepTrial(
                number=trial.number,
                state=trial.state.name,
                job_id=job.id if job is not None else None,
                job_state=job.state if job is not None else None,
                params=dict(trial.params),
                value=trial.value if trial.state == TrialState.COMPLETE else None,
                intermediate={int(k): float(v) for k, v in trial.intermediate_values.items()},
                pruned_epoch=job.pruned_epoch if job is not None else None,
            )
        )
    if best is not None:
        found.best_params = sweeps.trial_params(sweep.search_space, dict(best.params))
    found.importances, found.importance_note = _importances(sweep, trials)
    return found


# --- reads --------------------------------------------------------------------------------------


def sweep_list(actor: Actor, *, project_id: int) -> list[SweepPublic]:
    with operation(actor, "sweep.list", record=Audit.refusals) as op:
        op.authorize(Action.job_read, project_id=project_id)
        found = []
        for sweep in sweeps.list_sweeps(op.session, project_id=project_id):
            rows = sweeps.trial_jobs(op.session, sweep_id=id_of(sweep))
            found.append(_public(sweep, sweeps.trials_of(sweep), rows))
        return found


def sweep_detail(actor: Actor, *, sweep_id: int, project_id: int | None = None) -> SweepDetail:
    """One sweep with its trials; the project comes from the sweep when the caller names none
    (the sweep page), and an outsider gets the same NotFound as for a sweep that does not exist."""
    with operation(actor, "sweep.read", target=f"sweep:{sweep_id}", record=Audit.refusals) as op:
        sweep = sweeps.get_sweep(op.session, sweep_id=sweep_id, project_id=project_id)
        op.authorize(Action.job_read, project_id=sweep.project_id)
        return _detail(op.session, sweep)


# --- actions ------------------------------------------------------------------------------------


def _create(actor: Actor, project_id: int, request: SweepCreate) -> SweepPublic:
    with operation(actor, "sweep.create", target=f"project:{project_id}") as op:
        op.authorize(Action.job_create, project_id=project_id)
        sweep = sweeps.new_sweep(op.session, project_id=project_id, user=op.me, request=request)
        quotas.check_room_to_queue(op.session, project_id=project_id)
        op.target = f"sweep:{sweep.id}"
        op.detail = (
            f"{sweep.n_trials} trials, {sweep.sampler}/{sweep.pruner}, {sweep.direction} {sweep.objective}"
        )
        return _public(sweep, [], [])


async def create(actor: Actor, *, project_id: int, request: SweepCreate) -> SweepPublic:
    """Validate and save the sweep, then ask the worker for its first trials (after the commit)."""
    sweep = await asyncio.to_thread(_create, actor, project_id, request)
    await enqueue_sweep_step(sweep.id)
    return sweep


def _cancel(actor: Actor, project_id: int | None, sweep_id: int) -> tuple[SweepPublic, list[int]]:
    with operation(actor, "sweep.cancel", target=f"sweep:{sweep_id}") as op:
        sweep = sweeps.get_sweep(op.session, sweep_id=sweep_id, project_id=project_id)
        op.authorize(Action.job_cancel, project_id=sweep.project_id, owner_id=sweep.created_by)
        if sweep.state != SweepState.running:
            raise Conflict(f"Sweep {sweep_id} is already {sweep.state}; nothing to cancel")
        sweep.state = SweepState.cancelled
        sweep.finished_at = utcnow()
        sweep.message = f"cancelled by {op.me.username}"
        op.session.add(sweep)
        stop = _stop_trials(op.session, sweep, reason=f"sweep {sweep_id} cancelled by {op.me.username}")
        return _public(sweep, [], []), stop


def _stop_trials(session: Session, sweep: Sweep, *, reason: str) -> list[int]:
    """Cancel the sweep's waiting trial jobs at once; return the running ones for the trainer."""
    running: list[int] = []
    for job in sweeps.trial_jobs(session, sweep_id=id_of(sweep)):
        state = JobState(job.state)
        if state in jobs.QUEUE_STATES:
            jobs.transition(session, job, JobState.cancelled, reason=reason)
        elif state in jobs.ACTIVE:
            running.append(id_of(job))
    return running


async def _ask_trainer_to_stop(job_ids: list[int]) -> list[str]:
    """The trainer's half of a cancel (as services.actions.jobs.cancel does it): stop at the next
    batch; the job's final callback records `cancelled`. Returns what could not be reached."""
    problems = []
    client = TrainerClient.from_settings()
    for job_id in job_ids:
        try:
            await client.cancel_job(job_id)
        except (httpx.HTTPError, CircuitBreakerError) as exc:
            problems.append(f"job {job_id}: {exc}")
    return problems


async def cancel(actor: Actor, *, sweep_id: int, project_id: int | None = None) -> SweepPublic:
    """Stop asking for trials, cancel the waiting ones at once and ask the trainer to stop the
    running ones; no trial of the sweep is left queued. The worker's next step closes the study."""
    sweep, running = await asyncio.to_thread(_cancel, actor, project_id, sweep_id)
    problems = await _ask_trainer_to_stop(running)
    await enqueue_sweep_step(sweep.id)
    if problems:
        raise DomainError(
            "Sweep cancelled, but the trainer could not be asked to stop every running trial "
            f"({'; '.join(problems)}); the reconciler stops them when it reaches the trainer."
        )
    return sweep


def _best_request(actor: Actor, sweep_id: int, project_id: int | None) -> tuple[int, JobCreate]:
    with operation(actor, "sweep.read", target=f"sweep:{sweep_id}", record=Audit.refusals) as op:
        sweep = sweeps.get_sweep(op.session, sweep_id=sweep_id, project_id=project_id)
        op.authorize(Action.job_read, project_id=sweep.project_id)
        best = sweeps.best_trial(sweeps.trials_of(sweep), sweep.direction)
        if best is None:
            raise Conflict(f"Sweep {sweep_id} has no finished trial yet; there is no best to train")
        request = JobCreate(
            dataset_version_id=sweep.dataset_version_id,
            name=f"best of {sweep.name} (trial {best.number})"[:120],
            framework=sweep.framework,
            task=sweep.task,
            model=sweep.model,
            hyperparameters=sweeps.trial_params(sweep.search_space, dict(best.params)),
            device=sweep.device,
            resources=sweep.resources,  # type: ignore[arg-type]
        )
        return sweep.project_id, request


async def train_best(actor: Actor, *, sweep_id: int, project_id: int | None = None) -> JobPublic:
    """A new ordinary job (outside the sweep) with the best trial's hyperparameters; the job's
    own action authorizes and audits it (`job.create`)."""
    project_id, request = await asyncio.to_thread(_best_request, actor, sweep_id, project_id)
    return (await job_actions.create(actor, project_id=project_id, request=request)).job


# --- the step the worker runs -------------------------------------------------------------------


@dataclass
class Step:
    """What a step decided that must happen after its commit."""

    stop: list[int] = field(default_factory=list)  # running trial jobs to stop through the trainer
    dispatch: list[tuple[int, int]] = field(default_factory=list)  # new trial jobs to wake the dispatcher for
    ended: str | None = None  # the sweep's final state, when this step ended it
    run_id: str | None = None


def _record(session: Session, sweep: Sweep, action: str, target: str, detail: str) -> None:
    """The audit row of something the sweep did on its creator's behalf."""
    audit.record(
        session,
        actor=None,
        actor_id=sweep.created_by,
        actor_name=f"sweep:{sweep.id}",
        action=action,
        target=target,
        project_id=sweep.project_id,
        detail=detail,
    )


def _settle(
    session: Session, sweep: Sweep, study: optuna.Study, trial: optuna.trial.FrozenTrial, job: Job, step: Step
) -> None:
    """Bring one trial up to date with its job: new epochs, pruning, the final value."""
    state = JobState(job.state)
    points = jobs.metrics_for(session, job_id=id_of(job))
    values = {p.epoch: p.metrics[sweep.objective] for p in points if sweep.objective in p.metrics}
    if trial.state == TrialState.RUNNING:
        fresh = {e: v for e, v in sorted(values.items()) if e not in trial.intermediate_values}
        live = optuna.trial.Trial(study, trial._trial_id)
        for epoch, value in fresh.items():
            live.report(value, epoch)
        if state not in jobs.FINISHED and fresh and live.should_prune():
            epoch = max(fresh)
            job.pruned_epoch = epoch
            session.add(job)
            study.tell(trial.number, state=TrialState.PRUNED)
            reason = f"pruned by sweep {sweep.id} at epoch {epoch} ({sweep.objective} {fresh[epoch]:.4g})"
            if state in jobs.QUEUE_STATES:
                jobs.transition(session, job, JobState.cancelled, reason=reason)
            else:
                step.stop.append(id_of(job))
            _record(session, sweep, "sweep.prune", f"job:{job.id}", reason)
            return
        if state == JobState.succeeded:
            best = sweeps.best_of(list(values.values()), sweep.direction)
            if best is None:
                study.tell(trial.number, state=TrialState.FAIL)
                reported = sorted({k for p in points for k in p.metrics})
                _end(
                    session,
                    sweep,
                    SweepState.failed,
                    f"Trial {trial.number} (job {job.id}) never reported {sweep.objective!r}; it reported "
                    f"{reported}. Start a new sweep with one of those as the objective.",
                    step,
                )
            else:
                study.tell(trial.number, best)
        elif state in (JobState.failed, JobState.cancelled):
            study.tell(
                trial.number, state=TrialState.PRUNED if job.pruned_epoch is not None else TrialState.FAIL
            )
    elif trial.state == TrialState.FAIL and state == JobState.succeeded:
        # A failed or cancelled trial that a user retried: its value joins the study as a new trial.
        best = sweeps.best_of(list(values.values()), sweep.direction)
        if best is None:
            return
        added = optuna.trial.create_trial(
            params=dict(trial.params),
            distributions=dict(trial.distributions),
            value=best,
            intermediate_values=values,
            user_attrs={sweeps.RETRY_ATTR: id_of(job)},
        )
        study.add_trial(added)
        job.sweep_trial = study.get_trials(deepcopy=False)[-1].number
        session.add(job)


def _end(session: Session, sweep: Sweep, state: SweepState, message: str, step: Step) -> None:
    sweep.state = state
    sweep.finished_at = utcnow()
    sweep.message = message[:500]
    session.add(sweep)
    step.ended = state.value
    step.run_id = sweep.mlflow_run_id


def _ask(session: Session, sweep: Sweep, study: optuna.Study, step: Step) -> None:
    """New trials while fewer than `parallelism` run and trials remain, within the quotas."""
    trials = study.get_trials(deepcopy=False)
    running = sum(1 for t in trials if t.state == TrialState.RUNNING)
    asked = sweeps.asked(trials)
    creator = session.get(User, sweep.created_by)
    assert creator is not None, "a sweep's creator is a user"
    space = sweep.search_space
    while running < sweep.parallelism and asked < sweep.n_trials:
        try:
            quotas.check_gpu_quota(
                session, project_id=sweep.project_id, gpus=int((sweep.resources or {}).get("gpus", 0))
            )
            quotas.check_room_to_queue(session, project_id=sweep.project_id)
        except Conflict as exc:
            sweep.message = f"Waiting to start more trials: {exc.message}"[:500]
            session.add(sweep)
            return
        trial = study.ask(fixed_distributions=sweeps.distributions(space))
        try:
            job = jobs.new_job(
                session,
                project_id=sweep.project_id,
                user=creator,
                dataset_version_id=sweep.dataset_version_id,
                name=f"{sweep.name} · trial {trial.number}"[:120],
                framework=sweep.framework,
                task=sweep.task,
                model=sweep.model,
                hyperparameters=sweeps.trial_params(space, dict(trial.params)),
                device=sweep.device,
                resources=sweep.resources,
            )
        except DomainError as exc:
            study.tell(trial.number, state=TrialState.FAIL)
            _end(
                session,
                sweep,
                SweepState.failed,
                f"Trial {trial.number} could not be created: {exc.message}",
                step,
            )
            return
        job.sweep_id, job.sweep_trial = sweep.id, trial.number
        session.add(job)
        session.flush()
        step.dispatch.append((id_of(job), job.attempt))
        _record(session, sweep, "sweep.trial", f"job:{job.id}", f"trial {trial.number}: {trial.params}")
        running += 1
        asked += 1
        sweep.message = ""
        session.add(sweep)
    if asked >= sweep.n_trials and running == 0:
        _end(session, sweep, SweepState.finished, "", step)


def _open_parent_run(sweep: Sweep) -> None:
    """The sweep's MLflow run, made on its first step; trials dispatched before MLflow answered
    simply log without a parent."""
    if sweep.mlflow_run_id:
        return
    params = {"objective": sweep.objective, "direction": sweep.direction, "n_trials": str(sweep.n_trials)}
    params |= {"sampler": sweep.sampler, "pruner": sweep.pruner, "parallelism": str(sweep.parallelism)}
    params |= {f"space.{k}": str(v) for k, v in sweep.search_space.items()}
    try:
        sweep.mlflow_run_id = tracking.start_parent_run(
            experiment=f"project-{sweep.project_id}",
            run_name=f"sweep-{sweep.id}",
            params=params,
            tags={"vtp_sweep_id": str(sweep.id)},
        )
    except tracking.MlflowUnavailable as exc:
        log.warning("sweep %s: MLflow run not opened yet (%s)", sweep.id, exc)


def _step(sweep_id: int) -> Step:
    step = Step()
    with session_scope() as session:
        sweep = session.get(Sweep, sweep_id)
        if sweep is None:
            return step
        if sweep.state == SweepState.cancelled:
            # A cancel's leftovers: trials a step asked for while the cancel committed.
            step.stop = _stop_trials(session, sweep, reason=f"sweep {sweep_id} cancelled")
            _close_running_trials(sweep)
            return step
        if sweep.state != SweepState.running:
            return step
        _open_parent_run(sweep)
        session.add(sweep)
        max_epochs = 1
        if sweep.pruner == "hyperband":
            from services.domain import catalog

            specs = catalog.get_catalog().hyperparameters(sweep.framework, sweep.task)
            max_epochs = sweeps.epochs_of(sweep.search_space, specs)
        study = sweeps.study_of(sweep, max_epochs=max_epochs)
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        job_of = _newest_jobs(sweeps.trial_jobs(session, sweep_id=sweep_id))
        for number, job in job_of.items():
            if number in trials:
                _settle(session, sweep, study, trials[number], job, step)
        for number, trial in trials.items():
            if trial.state == TrialState.RUNNING and number not in job_of:
                # Asked, but its job was never committed (the step died in between).
                study.tell(number, state=TrialState.FAIL)
        if sweep.state == SweepState.running:
            _ask(session, sweep, study, step)
        if step.ended == SweepState.finished.value:
            best = sweeps.best_trial(study.get_trials(deepcopy=False), sweep.direction)
            if best is not None and best.value is not None and sweep.mlflow_run_id:
                try:
                    tracking.log_best(
                        sweep.mlflow_run_id,
                        name=f"best_{sweep.objective}",
                        value=best.value,
                        step=best.number,
                    )
                except tracking.MlflowUnavailable as exc:
                    log.warning("sweep %s: best value not logged to MLflow (%s)", sweep_id, exc)
    return step


def _close_running_trials(sweep: Sweep) -> None:
    """A cancelled sweep's trials that were still running end as failed in the study."""
    store = sweeps.storage()
    for trial in sweeps.trials_of(sweep):
        if trial.state == TrialState.RUNNING:
            store.set_trial_state_values(trial._trial_id, TrialState.FAIL)


async def advance(sweep_id: int) -> Step:
    """One step of the sweep (in a thread), then its side effects after the commit: stop pruned
    trials through the trainer, wake the dispatcher for new ones, close the MLflow run."""
    step = await asyncio.to_thread(_step, sweep_id)
    problems = await _ask_trainer_to_stop(step.stop)
    for problem in problems:
        log.warning("sweep %s: could not stop a trial (%s)", sweep_id, problem)
    for job_id, attempt in step.dispatch:
        await enqueue_dispatch(job_id, attempt)
    if step.ended and step.run_id:
        try:
            await asyncio.to_thread(tracking.end_run, step.run_id, step.ended)
        except tracking.MlflowUnavailable as exc:
            log.warning("sweep %s: MLflow run not closed (%s)", sweep_id, exc)
    return step


def running_sweeps() -> list[int]:
    with session_scope() as session:
        return sweeps.active_sweep_ids(session)
