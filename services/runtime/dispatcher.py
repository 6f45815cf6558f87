"""The one dispatcher: hands the next waiting job to the trainer gateway when it reports room.

Waiting costs nothing. A waiting job is a `queued` row and nothing else: no queue entry of its
own, no retry loop against a busy trainer, no log line per pass. While jobs wait the dispatcher
asks the gateway `GET /capacity` at most once per `VTP_DISPATCH_INTERVAL_S` (1 s), chooses with
services.domain.fleet.plan what fits (project priority, then submission time, within the
projects' quotas), and records for every other job what it waits for. With nothing waiting it
makes no trainer call at all and looks at the database every `VTP_DISPATCH_IDLE_S`, or at once
when woken (services.infra.queue.wake: a new job, a retry).

"Dispatching" covers only the hand-over: the job goes `dispatching`, `POST /jobs`, then `running`;
a 429 (the room was taken meanwhile) or no answer puts it straight back to `queued`. The hand-over
is idempotent per `job_id:attempt`, so a worker that dies mid-hand-over loses nothing: the
reconciler finds the silent `dispatching` job and puts it back in the queue.

One dispatcher runs per deployment: it holds a Redis lock that it renews every pass; a second
worker's dispatcher stands by until the lock expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable
from typing import Any, cast

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.domain import fleet, jobs, quotas, sweeps
from services.domain.models import Job, JobState, utcnow
from services.errors import DomainError
from services.infra import logs, metrics, storage
from services.infra.db import session_scope
from services.infra.queue import DISPATCH_LOCK, DISPATCH_WAKE, WAKE_ROOM, request_id_of
from services.infra.settings import Settings, get_settings
from services.infra.trainer_client import (
    CircuitBreakerError,
    TrainerBusy,
    TrainerClient,
    TrainerRejected,
    breaker,
)

log = logging.getLogger("vtp.dispatcher")
QUICK_LOOKS, QUICK_LOOK_S = 4, 0.1
UNREACHABLE = f"{fleet.THE_TRAINER} (not reachable right now)"
# What a trainer before v1.4 (no /capacity) is taken to have: room for one job, and its 429 says
# otherwise. One such offer per interval, never one per waiting job.
LEGACY_CAPACITY = fleet.Capacity(
    executor="local", nodes=[fleet.NodeCapacity(node_id="trainer", cpus_total=1, cpus_free=1)]
)


class Dispatcher:
    """Runs in the arq worker's event loop (`run`); `wake` makes it look at the queue now."""

    def __init__(self, redis: Redis, trainer: TrainerClient, settings: Settings | None = None) -> None:
        self.redis = redis
        self.trainer = trainer
        self.settings = settings or get_settings()
        self.me = f"{socket.gethostname()}:{os.getpid()}"
        self.capacity_calls = 0
        self._last_capacity_at = -1e9
        self._reachable = True
        # Quick looks left after an attempt ended: the slot frees when its process has exited,
        # a moment after the `finished` callback, so the first look may still see it taken.
        self._quick_looks = 0

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        interval, idle = self.settings.dispatch_interval_s, self.settings.dispatch_idle_s
        while True:
            try:
                waiting = await self.pass_once() if await self._hold_lock() else False
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad pass must not end dispatching for good
                log.exception("dispatcher pass failed")
                waiting = True
            if waiting and self._quick_looks:
                await self._sleep(QUICK_LOOK_S)
            else:
                self._quick_looks = 0
                await self._sleep(interval if waiting else idle)

    async def _sleep(self, timeout_s: float) -> None:
        """Until woken or `timeout_s` has passed (a Redis outage is a plain sleep)."""
        try:
            woken = await cast(Awaitable[Any], self.redis.blpop([DISPATCH_WAKE], timeout=timeout_s))
        except (RedisError, OSError):
            await asyncio.sleep(timeout_s)
            return
        if woken is not None and woken[1] == WAKE_ROOM.encode():
            # Room at the gateway: ask now (and a few times more, quickly), not at the next second.
            self._last_capacity_at, self._quick_looks = -1e9, QUICK_LOOKS

    async def _hold_lock(self) -> bool:
        """Take or renew the dispatcher lock; False while another dispatcher holds it."""
        ttl_ms = int(max(10.0, 3 * self.settings.dispatch_idle_s) * 1000)
        try:
            if await self.redis.set(DISPATCH_LOCK, self.me, nx=True, px=ttl_ms):
                return True
            holder = await self.redis.get(DISPATCH_LOCK)
            if holder is not None and holder.decode() == self.me:
                await self.redis.pexpire(DISPATCH_LOCK, ttl_ms)
                return True
        except (RedisError, OSError):
            pass  # without Redis there is no worker either (arq stops); wait for it
        return False

    async def release(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            holder = await self.redis.get(DISPATCH_LOCK)
            if holder is not None and holder.decode() == self.me:
                await self.redis.delete(DISPATCH_LOCK)

    # --- one pass -------------------------------------------------------------------------------

    async def pass_once(self) -> bool:
        """Dispatch what fits now; True while jobs still wait (so the next pass comes soon)."""
        with session_scope() as session:
            queue = jobs.waiting_queue(session)
            if not queue:
                return False
            rooms = quotas.project_rooms(session, {job.project_id for job, _ in queue})
        waiting = [job for job, _ in queue]
        capacity = await self._capacity()
        if capacity is None:
            chosen = fleet.Plan(waiting_for={job.job_id: UNREACHABLE for job in waiting})
        else:
            chosen = fleet.plan(waiting, capacity, rooms)
        handed = 0
        for job_id in chosen.dispatch:
            with logs.bound(job_id=job_id, request_id=await self._request_id(job_id)):
                outcome, why = await self._hand_over(job_id)
            if outcome == "dispatched":
                handed += 1
                continue
            if why:
                chosen.waiting_for[job_id] = why
            if outcome == "busy":
                # The gateway's view changed under us: the rest of this plan is stale too.
                for later in chosen.dispatch[chosen.dispatch.index(job_id) + 1 :]:
                    chosen.waiting_for.setdefault(later, why or fleet.THE_TRAINER)
                break
        self._record(chosen.waiting_for, {job.job_id: why for job, why in queue})
        if handed:
            self._quick_looks = 0  # the freed room is taken: back to the waiting pace
        return len(queue) > handed

    async def _capacity(self) -> fleet.Capacity | None:
        """The gateway's room, asked at most once per interval (quicker right after an attempt
        ended: at most QUICK_LOOKS more per ended attempt); None when it does not answer."""
        pace = self.settings.dispatch_interval_s
        if self._quick_looks:
            self._quick_looks -= 1
            pace = QUICK_LOOK_S
        wait = self._last_capacity_at + pace - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_capacity_at = time.monotonic()
        self.capacity_calls += 1
        try:
            body = await self.trainer.capacity()
        except (httpx.HTTPError, CircuitBreakerError, ValueError) as exc:
            metrics.trainer_error(exc)
            if self._reachable:
                log.warning("trainer not reachable for capacity (%s); jobs wait", type(exc).__name__)
            self._reachable = False
            return None
        if not self._reachable:
            log.warning("trainer reachable again")
        self._reachable = True
        return LEGACY_CAPACITY if body is None else fleet.Capacity.model_validate(body)

    def _record(self, waiting_for: dict[int, str], recorded: dict[int, str | None]) -> None:
        """Store each waiting job's reason where it changed (usually nowhere: no write per pass)."""
        changed = {job_id: why for job_id, why in waiting_for.items() if recorded.get(job_id) != why}
        if not changed:
            return
        with session_scope() as session:
            for job_id, why in changed.items():
                job = session.get(Job, job_id)
                if job is not None and job.state in jobs.QUEUE_STATES:
                    job.waiting_for = why[:200]
                    session.add(job)

    async def _request_id(self, job_id: int) -> str | None:
        """The id of the request that submitted the job (for the logs of every process)."""
        try:
            return await request_id_of(self.redis, job_id)
        except (RedisError, OSError):
            return None

    async def _hand_over(self, job_id: int) -> tuple[str, str]:
        """`dispatching` → POST /jobs → `running`; back to `queued` if the trainer has no room."""
        settings = self.settings
        with session_scope() as session:
            job = session.get(Job, job_id)
            if job is None or job.state not in jobs.QUEUE_STATES:
                return "skipped", ""  # cancelled meanwhile
            attempt = job.attempt
            logs.bind(attempt=attempt, project_id=job.project_id)
            if attempt == 1 and JobState(job.state) == JobState.queued:
                metrics.QUEUE_WAIT.observe(max(0.0, (utcnow() - job.created_at).total_seconds()))
            try:
                jobs.transition(session, job, JobState.dispatching, reason="handed to the trainer")
            except jobs.StateChanged:
                return "skipped", ""  # cancelled at this very moment
            job.waiting_for = None
            job.last_heartbeat_at = utcnow()  # the reconciler's silence clock starts at the hand-over
            try:
                dataset_uri = jobs.data_uri(session, job)
            except DomainError as exc:
                job.error_kind, job.error_message = "permanent", f"cannot dispatch: {exc.message}"
                jobs.transition(session, job, JobState.failed, reason=job.error_message)
                return "rejected", ""
            checkpoint = jobs.last_checkpoint_uri(job)
            spec = jobs.dispatch_spec(
                job,
                dataset_uri=dataset_uri,
                callback_url=f"{settings.api_base_url}/api/v1/trainer/callbacks/{job.id}",
                heartbeat_s=settings.heartbeat_interval_s,
                resume_from_uri=checkpoint if attempt > 1 and storage.exists(checkpoint) else None,
                mlflow_parent_run_id=sweeps.parent_run_of(session, job),
            )
        began, outcome = time.perf_counter(), "error"
        try:
            await self.trainer.start_job(spec, request_id=logs.current().get("request_id"))
            outcome = "accepted"
        except TrainerBusy as exc:
            outcome = "busy"
            why = exc.waiting_for or fleet.THE_TRAINER
            self._back_to_queue(job_id, attempt, f"trainer has no room: waiting for {why}")
            return "busy", why
        except (httpx.HTTPError, CircuitBreakerError) as exc:
            metrics.trainer_error(exc)
            # Maybe accepted, maybe not: offering the same attempt again is safe (idempotent).
            self._back_to_queue(job_id, attempt, f"trainer did not answer ({type(exc).__name__})")
            return "busy", UNREACHABLE
        except TrainerRejected as exc:
            outcome = "rejected"
            _fail(job_id, attempt, "permanent", str(exc))
            return "rejected", ""
        finally:
            metrics.DISPATCH_LATENCY.labels(outcome).observe(time.perf_counter() - began)
            metrics.BREAKER_OPEN.labels("trainer").set(1 if breaker().opened else 0)
        with session_scope() as session:
            job = session.get(Job, job_id)
            if job is not None and job.attempt == attempt and JobState(job.state) == JobState.dispatching:
                with contextlib.suppress(jobs.StateChanged):  # cancelled this instant: see below
                    jobs.transition(session, job, JobState.running, reason="trainer accepted")
                    job.last_heartbeat_at = utcnow()
        if self._cancelled_meanwhile(job_id):
            # The user cancelled during the hand-over; their request may have reached the trainer
            # before it knew the job. Stop the attempt it just accepted.
            log.info("job cancelled during the hand-over; stopping it on the trainer")
            with contextlib.suppress(httpx.HTTPError, CircuitBreakerError):  # the reconciler retries
                await self.trainer.cancel_job(job_id)
            return "skipped", ""
        log.info("job handed to the trainer")
        return "dispatched", ""

    @staticmethod
    def _cancelled_meanwhile(job_id: int) -> bool:
        with session_scope() as session:
            job = session.get(Job, job_id)
            return job is None or JobState(job.state) == JobState.cancelled

    @staticmethod
    def _back_to_queue(job_id: int, attempt: int, reason: str) -> None:
        with session_scope() as session:
            job = session.get(Job, job_id)
            if job is not None and job.attempt == attempt and JobState(job.state) == JobState.dispatching:
                with contextlib.suppress(jobs.StateChanged):  # cancelled meanwhile: stays so
                    jobs.transition(session, job, JobState.queued, reason=reason)


def _fail(job_id: int, attempt: int, kind: str, message: str) -> None:
    with session_scope() as session:
        job = session.get(Job, job_id)
        if (
            job is not None
            and job.attempt == attempt
            and jobs.can_transition(JobState(job.state), JobState.failed)
        ):
            with contextlib.suppress(jobs.StateChanged):  # cancelled meanwhile: stays so
                jobs.transition(session, job, JobState.failed, reason=message[:500])
                job.error_kind, job.error_message = kind, message[:2000]


async def start(ctx: dict[str, Any]) -> None:
    """arq on_startup: run the dispatcher beside the worker's tasks."""
    dispatcher = Dispatcher(ctx["redis"], TrainerClient.from_settings(keep_alive=True))
    ctx["dispatcher"] = dispatcher
    ctx["dispatcher_task"] = asyncio.create_task(dispatcher.run(), name="vtp-dispatcher")


async def stop(ctx: dict[str, Any]) -> None:
    """arq on_shutdown: stop between passes (a hand-over in flight is idempotent anyway)."""
    task: asyncio.Task[None] | None = ctx.get("dispatcher_task")
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    dispatcher: Dispatcher | None = ctx.get("dispatcher")
    if dispatcher is not None:
        await dispatcher.release()
        await dispatcher.trainer.aclose()
