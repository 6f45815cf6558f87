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
from typing import Any

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
from services.errors import Conflict, DomainError, NotFound
from services.infra import live, tracking
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
    """Parameter importances for the trials finished so far: those the worker's step saved with
    the study when the last trial finished (or saved here, once, when it has not yet)."""
    complete = sweeps.complete_count(trials)
    key = (id_of(sweep), complete)
    with _importance_lock:
        if key in _importance_cache:
            return _importance_cache[key]
    found = sweeps.saved_importances(sweep, complete) or sweeps.save_importances(sweep, trials)
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


@dataclass
class SweepView:
    """What the sweep page shows: the sweep with its trials, the viewer's role, whether it is theirs."""

    detail: SweepDetail
    role: str
    own: bool


def sweep_view(actor: Actor, *, sweep_id: int) -> SweepView:
    """The sweep page's read; the project comes from the sweep (outsiders get NotFound)."""
    with operation(actor, "sweep.read", target=f"sweep:{sweep_id}", record=Audit.refusals) as op:
        sweep = sweeps.get_sweep(op.session, sweep_id=sweep_id)
        try:
            role = op.authorize(Action.job_read, project_id=sweep.project_id)
        except NotFound as exc:
            raise NotFound(f"Sweep {sweep_id} does not exist", reason=exc.reason) from exc
        return SweepView(detail=_detail(op.session, sweep), role=role.value, own=sweep.created_by == op.me_id)


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
        if jobs.cancel(session, job, reason=reason) == "ask_trainer":
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
    home, request = await asyncio.to_thread(_best_request, actor, sweep_id, project_id)
    return (await job_actions.create(actor, project_id=home, request=request)).job


# --- the step the worker runs -------------------------------------------------------------------
#
# Optuna's storage writes through its own connections. On SQLite a write waits for every other
# writer, so the step never holds a write transaction of ours while Optuna writes: it reads what
# it needs, closes that session, talks to the study, then writes its decisions in a short session
# of its own. A step that dies between the two leaves nothing a later step cannot mend: a trial
# asked for but never given a job gets it from the next step; missing epochs are reported again.


@dataclass
class Step:
    """What a step decided that must happen after its commits."""

    stop: list[int] = field(default_factory=list)  # running trial jobs to stop through the trainer
    dispatch: list[tuple[int, int]] = field(default_factory=list)  # new trial jobs for the dispatcher
    ended: str | None = None  # the sweep's final state, when this step ended it
    run_id: str | None = None


@dataclass
class _TrialJob:
    """A trial's newest job as the step read it."""

    job_id: int
    number: int
    state: JobState
    pruned_epoch: int | None
    values: dict[int, float]  # epoch -> the objective
    reported: list[str]  # every metric name the job reported


def _read(sweep_id: int) -> tuple[Sweep | None, list[_TrialJob]]:
    with session_scope() as session:
        sweep = session.get(Sweep, sweep_id)
        if sweep is None:
            return None, []
        found = []
        for number, job in _newest_jobs(sweeps.trial_jobs(session, sweep_id=sweep_id)).items():
            points = jobs.metrics_for(session, job_id=id_of(job))
            found.append(
                _TrialJob(
                    job_id=id_of(job),
                    number=number,
                    state=JobState(job.state),
                    pruned_epoch=job.pruned_epoch,
                    values={
                        p.epoch: p.metrics[sweep.objective] for p in points if sweep.objective in p.metrics
                    },
                    reported=sorted({k for p in points for k in p.metrics}),
                )
            )
        return sweep, found


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


@dataclass
class _Decisions:
    prune: dict[int, tuple[int, str]] = field(default_factory=dict)  # job -> (epoch, reason)
    renumber: dict[int, int] = field(default_factory=dict)  # retried job -> the trial added for it
    failure: str = ""  # the sweep cannot go on


def _settle(
    sweep: Sweep, study: optuna.Study, trial: optuna.trial.FrozenTrial, job: _TrialJob, out: _Decisions
) -> None:
    """Bring one trial up to date with its job: new epochs, the pruner, the final value."""
    if trial.state == TrialState.RUNNING:
        fresh = {e: v for e, v in sorted(job.values.items()) if e not in trial.intermediate_values}
        live_trial = optuna.trial.Trial(study, trial._trial_id)
        for epoch, value in fresh.items():
            live_trial.report(value, epoch)
        if job.state not in jobs.FINISHED and fresh and live_trial.should_prune():
            epoch = max(fresh)
            study.tell(trial.number, state=TrialState.PRUNED)
            objective = f"{sweep.objective} {fresh[epoch]:.4g}"
            out.prune[job.job_id] = (epoch, f"pruned by sweep {sweep.id} at epoch {epoch} ({objective})")
            return
        if job.state == JobState.succeeded:
            best = sweeps.best_of(list(job.values.values()), sweep.direction)
            if best is None:
                study.tell(trial.number, state=TrialState.FAIL)
                out.failure = (
                    f"Trial {trial.number} (job {job.job_id}) never reported {sweep.objective!r}; it "
                    f"reported {job.reported}. Start a new sweep with one of those as the objective."
                )
            else:
                study.tell(trial.number, best)
        elif job.state in (JobState.failed, JobState.cancelled):
            pruned = job.pruned_epoch is not None
            study.tell(trial.number, state=TrialState.PRUNED if pruned else TrialState.FAIL)
    elif trial.state == TrialState.FAIL and job.state == JobState.succeeded:
        # A failed or cancelled trial that a user retried: its value joins the study as a new trial.
        best = sweeps.best_of(list(job.values.values()), sweep.direction)
        if best is None:
            return
        for existing in study.get_trials(deepcopy=False):
            if existing.user_attrs.get(sweeps.RETRY_ATTR) == job.job_id:
                out.renumber[job.job_id] = existing.number
                return
        study.add_trial(
            optuna.trial.create_trial(
                params=dict(trial.params),
                distributions=dict(trial.distributions),
                value=best,
                intermediate_values=job.values,
                user_attrs={sweeps.RETRY_ATTR: job.job_id},
            )
        )
        out.renumber[job.job_id] = study.get_trials(deepcopy=False)[-1].number


def _end(session: Session, sweep: Sweep, state: SweepState, message: str, step: Step) -> None:
    sweep.state = state
    sweep.finished_at = utcnow()
    sweep.message = message[:500]
    session.add(sweep)
    step.ended = state.value
    step.run_id = sweep.mlflow_run_id


def _apply(sweep_id: int, decisions: _Decisions, run_id: str | None, step: Step) -> bool:
    """Write what the study decided; False when the sweep is no longer running."""
    with session_scope() as session:
        sweep = session.get(Sweep, sweep_id)
        if sweep is None or sweep.state != SweepState.running:
            return False
        if run_id and not sweep.mlflow_run_id:
            sweep.mlflow_run_id = run_id
            session.add(sweep)
        for job_id, (epoch, reason) in decisions.prune.items():
            job = session.get(Job, job_id)
            if job is None:
                continue
            job.pruned_epoch = epoch
            session.add(job)
            if jobs.cancel(session, job, reason=reason) == "ask_trainer":
                step.stop.append(job_id)  # the same stop as a user's cancel: the trainer's next batch
            _record(session, sweep, "sweep.prune", f"job:{job_id}", reason)
        for job_id, number in decisions.renumber.items():
            job = session.get(Job, job_id)
            if job is not None:
                job.sweep_trial = number
                session.add(job)
        if decisions.failure:
            _end(session, sweep, SweepState.failed, decisions.failure, step)
            return False
        return True


def _room(sweep_id: int) -> bool:
    """Whether the project's quotas let one more trial queue; else the sweep says what it waits for."""
    with session_scope() as session:
        sweep = session.get(Sweep, sweep_id)
        if sweep is None or sweep.state != SweepState.running:
            return False
        try:
            gpus = int((sweep.resources or {}).get("gpus", 0))
            quotas.check_gpu_quota(session, project_id=sweep.project_id, gpus=gpus)
            quotas.check_room_to_queue(session, project_id=sweep.project_id)
        except Conflict as exc:
            sweep.message = f"Waiting to start more trials: {exc.message}"[:500]
            session.add(sweep)
            return False
        return True


def _create_trial_job(sweep_id: int, number: int, params: dict[str, Any], step: Step) -> bool:
    """The asked trial's job, through the job rules; False when the sweep stopped meanwhile."""
    with session_scope() as session:
        sweep = session.get(Sweep, sweep_id)
        if sweep is None or sweep.state != SweepState.running:
            return False
        creator = session.get(User, sweep.created_by)
        assert creator is not None, "a sweep's creator is a user"
        job = jobs.new_job(
            session,
            project_id=sweep.project_id,
            user=creator,
            dataset_version_id=sweep.dataset_version_id,
            name=f"{sweep.name} · trial {number}"[:120],
            framework=sweep.framework,
            task=sweep.task,
            model=sweep.model,
            hyperparameters=sweeps.trial_params(sweep.search_space, params),
            device=sweep.device,
            resources=sweep.resources,
        )
        job.sweep_id, job.sweep_trial = sweep.id, number
        session.add(job)
        session.flush()
        step.dispatch.append((id_of(job), job.attempt))
        _record(session, sweep, "sweep.trial", f"job:{job.id}", f"trial {number}: {params}")
        sweep.message = ""
        session.add(sweep)
        return True


def _ask(sweep: Sweep, study: optuna.Study, step: Step, *, jobs_active: bool) -> None:
    """New trials while fewer than `parallelism` run and trials remain; the end when none remain
    and no trial job is still stopping (a pruned trial's job ends a moment after its trial)."""
    sweep_id = id_of(sweep)
    while True:
        trials = study.get_trials(deepcopy=False)
        running = sum(1 for t in trials if t.state == TrialState.RUNNING)
        asked = sweeps.asked(trials)
        if asked >= sweep.n_trials and running == 0:
            if jobs_active:
                return  # the stopping job's final callback steps the sweep again
            with session_scope() as session:
                row = session.get(Sweep, sweep_id)
                if row is not None and row.state == SweepState.running:
                    _end(session, row, SweepState.finished, "", step)
            return
        if running >= sweep.parallelism or asked >= sweep.n_trials or not _room(sweep_id):
            return
        trial = study.ask(fixed_distributions=sweeps.distributions(sweep.search_space))
        if not _start_trial(sweep_id, study, trial.number, dict(trial.params), step):
            return


def _start_trial(sweep_id: int, study: optuna.Study, number: int, params: dict[str, Any], step: Step) -> bool:
    """Give an asked trial its job; a trial that cannot have one ends FAIL (and a refusal by the
    job rules ends the sweep, with the job's own message)."""
    try:
        created = _create_trial_job(sweep_id, number, params, step)
    except DomainError as exc:
        study.tell(number, state=TrialState.FAIL)
        with session_scope() as session:
            row = session.get(Sweep, sweep_id)
            if row is not None and row.state == SweepState.running:
                _end(session, row, SweepState.failed, f"Trial {number} could not start: {exc.message}", step)
        return False
    if not created:
        study.tell(number, state=TrialState.FAIL)
    return created


def _open_parent_run(sweep: Sweep) -> str | None:
    """The sweep's MLflow run, made on its first step; trials dispatched before MLflow answered
    simply log without a parent."""
    if sweep.mlflow_run_id:
        return sweep.mlflow_run_id
    params = {"objective": sweep.objective, "direction": sweep.direction, "n_trials": str(sweep.n_trials)}
    params |= {"sampler": sweep.sampler, "pruner": sweep.pruner, "parallelism": str(sweep.parallelism)}
    params |= {f"space.{k}": str(v) for k, v in sweep.search_space.items()}
    try:
        return tracking.start_parent_run(
            experiment=f"project-{sweep.project_id}",
            run_name=f"sweep-{sweep.id}",
            params=params,
            tags={"vtp_sweep_id": str(sweep.id)},
        )
    except tracking.MlflowUnavailable as exc:
        log.warning("sweep %s: MLflow run not opened yet (%s)", sweep.id, exc)
        return None


def _max_epochs(sweep: Sweep) -> int:
    if sweep.pruner != "hyperband":
        return 1
    from services.domain import catalog

    specs = catalog.get_catalog().hyperparameters(sweep.framework, sweep.task)
    return sweeps.epochs_of(sweep.search_space, specs)


def _step(sweep_id: int) -> Step:
    step = Step()
    sweep, trial_jobs = _read(sweep_id)
    if sweep is None:
        return step
    if sweep.state == SweepState.cancelled:
        # A cancel's leftovers: trials a step asked for while the cancel committed.
        _close_running_trials(sweep)
        with session_scope() as session:
            row = session.get(Sweep, sweep_id)
            assert row is not None
            step.stop = _stop_trials(session, row, reason=f"sweep {sweep_id} cancelled")
        return step
    if sweep.state != SweepState.running:
        return step
    run_id = _open_parent_run(sweep)
    study = sweeps.study_of(sweep, max_epochs=_max_epochs(sweep))
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    decisions = _Decisions()
    for job in trial_jobs:
        if job.number in trials:
            _settle(sweep, study, trials[job.number], job, decisions)
    _save_importances(sweep, study, list(trials.values()), trial_jobs, decisions)
    with_jobs = {job.number for job in trial_jobs}
    # Asked, but the step that asked died before its job was committed: give it its job now.
    orphans = [t for n, t in trials.items() if t.state == TrialState.RUNNING and n not in with_jobs]
    if not _apply(sweep_id, decisions, run_id, step):
        return step
    sweep.mlflow_run_id = sweep.mlflow_run_id or run_id
    for orphan in orphans:
        if not _start_trial(sweep_id, study, orphan.number, dict(orphan.params), step):
            return step
    _ask(sweep, study, step, jobs_active=any(j.state not in jobs.FINISHED for j in trial_jobs))
    if step.ended == SweepState.finished.value and step.run_id:
        best = sweeps.best_trial(study.get_trials(deepcopy=False), sweep.direction)
        if best is not None and best.value is not None:
            try:
                tracking.log_best(
                    step.run_id, name=f"best_{sweep.objective}", value=best.value, step=best.number
                )
            except tracking.MlflowUnavailable as exc:
                log.warning("sweep %s: best value not logged to MLflow (%s)", sweep_id, exc)
    return step


def _save_importances(
    sweep: Sweep,
    study: optuna.Study,
    before: list[optuna.trial.FrozenTrial],
    trial_jobs: list[_TrialJob],
    decisions: _Decisions,
) -> None:
    """Importances for the trials finished so far, saved with the study before the page hears
    of a newly finished one. The study is read again only when this step finished a trial (or
    none are saved yet), not on each epoch's step."""
    states = {t.number: t.state for t in before}
    finished_now = decisions.renumber or any(
        j.state == JobState.succeeded and states.get(j.number) == TrialState.RUNNING for j in trial_jobs
    )
    if not finished_now and sweeps.saved_importances(sweep, sweeps.complete_count(before)) is not None:
        return
    settled = study.get_trials(deepcopy=False)
    if sweeps.saved_importances(sweep, sweeps.complete_count(settled)) is None:
        sweeps.save_importances(sweep, settled)


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
    # The study's own writes (intermediate values, told trials) bypass our session's notices.
    live.publish([live.sweep_channel(sweep_id)])
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
