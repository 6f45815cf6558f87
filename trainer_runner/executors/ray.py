"""The `ray` executor: each attempt is a Ray Job on a Ray cluster (`TRAINER_RAY_ADDRESS`).

Everything goes through Ray's Job Submission API over plain REST on the dashboard (the same
calls `ray.job_submission.JobSubmissionClient` makes), so this server does not import Ray
and does not join the cluster:

- start: `POST /api/jobs/` with `submission_id = vtp:{job_id}:{attempt}` (a second start of the
  same attempt finds the job instead of submitting it twice), `entrypoint_num_gpus`,
  `entrypoint_num_cpus`, `entrypoint_memory` and the accelerator as a custom resource
  (`entrypoint_resources={"accelerator:A100": 0.001}`: any share of it pins the node type).
  The entrypoint is the job runner itself, `python -m trainer_runner.job --spec-from-env`.
- placement: Ray leaves a job it cannot place PENDING, and a pending job cannot be stopped, so
  nothing is submitted that does not fit a node now (`GET /capacity`, the fit rule, else 429).
  Free resources are each node's total (`GET /api/v0/nodes`) minus what this gateway's live
  jobs asked for: the cluster is the gateway's to fill (docs/fleet.md).
- status: from Ray. The runner's exit code tells its final state (`trainer_runner.job.EXIT_CODES`);
  anything else that ends the job (its node died, it was killed, someone stopped it) is `lost`,
  reported to the backend here, since the job cannot report it itself.
- cancel: a marker object in storage that the job polls (`TRAINER_CANCEL_POLL_S`); it stops at
  its next batch, uploads last.pt and reports `cancelled`: the graceful path of a local job.
  (Ray's own stop sends SIGTERM and SIGKILLs the job a few seconds later.)
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

import httpx
from botocore.exceptions import ClientError

from trainer_runner.executors.base import (
    Executor,
    ExecutorUnavailable,
    LostReporter,
    NoCapacity,
    Progress,
    StaleAttempt,
    effective_resources,
)
from trainer_runner.job import EXIT_CODES, SPEC_ENV, cancel_marker, progress_marker
from trainer_runner.logs import REQUEST_ID_ENV
from trainer_runner.lost import OOM_HINT
from trainer_runner.resources import cpus_needed, fits, waiting_for
from trainer_runner.schemas import (
    CallbackError,
    Capacity,
    JobState,
    JobStatus,
    NodeCapacity,
    Resources,
    StartJobRequest,
)
from trainer_runner.settings import TrainerSettings
from trainer_runner.storage import make_s3_client, upload_bytes

log = logging.getLogger(__name__)

ACCELERATOR_PREFIXES = ("accelerator:", "accelerator_type:")
LIVE = frozenset({"PENDING", "RUNNING"})
CANCEL_POLL_S = 2.0
_EXIT_STATES: dict[int, JobState] = {
    0: "succeeded",
    EXIT_CODES["failed"]: "failed",
    EXIT_CODES["cancelled"]: "cancelled",
}


def submission_id(job_id: str, attempt: int) -> str:
    """One Ray job per attempt, found again by name: this is what makes start idempotent."""
    return f"vtp:{job_id}:{attempt}"


@dataclass
class RayJob:
    """One attempt as Ray reports it (`GET /api/jobs/{submission_id}`)."""

    job_id: str
    attempt: int
    status: str
    message: str
    exit_code: int | None
    node_id: str | None
    resources: Resources

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> RayJob | None:
        meta = details.get("metadata") or {}
        if "vtp_job_id" not in meta or "vtp_attempt" not in meta:
            return None  # not one of ours
        return cls(
            job_id=meta["vtp_job_id"],
            attempt=int(meta["vtp_attempt"]),
            status=details["status"],
            message=details.get("message") or "",
            exit_code=details.get("driver_exit_code"),
            node_id=details.get("driver_node_id"),
            resources=Resources.model_validate_json(meta.get("vtp_resources", "{}")),
        )

    def outcome(self) -> tuple[JobState, CallbackError | None]:
        """(protocol state, error) of this attempt."""
        if self.status == "PENDING":
            return "accepted", None
        if self.status == "RUNNING":
            return "running", None
        if self.status in {"SUCCEEDED", "FAILED"} and self.exit_code in _EXIT_STATES:
            return _EXIT_STATES[self.exit_code], None  # the runner reported it (callback)
        return "failed", CallbackError(kind="lost", message=self.lost_message())

    def lost_message(self) -> str:
        if self.status == "STOPPED":
            return "the Ray job was stopped before the attempt reported a result"
        code = f" (exit code {self.exit_code})" if self.exit_code is not None else ""
        message = f"the Ray job ended without a result{code}: {self.message}"
        if self.exit_code == -9 or "memory" in self.message.lower():  # Ray's memory monitor says so
            message = f"{message} ({OOM_HINT}?)"
        return message[:2000]

    def status_model(self) -> JobStatus:
        state, error = self.outcome()
        return JobStatus(job_id=self.job_id, attempt=self.attempt, state=state, error=error)


class RayExecutor(Executor):
    """Attempts as Ray Jobs; the cluster is the record, this object only remembers callbacks."""

    name = "ray"

    def __init__(self, settings: TrainerSettings, client: httpx.Client | None = None) -> None:
        self.settings = settings
        self.http = client or httpx.Client(base_url=settings.ray_address.rstrip("/"), timeout=10)
        self._lock = threading.RLock()
        # Attempts started by this process and not yet final: their requests carry the callback
        # address, so a lost one can be reported.
        self._active: dict[str, StartJobRequest] = {}
        self._lost = LostReporter()
        self._s3: Any = None

    # -- the dashboard -----------------------------------------------------------------------
    def _get(self, path: str, **params: Any) -> Any:
        try:
            response = self.http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise ExecutorUnavailable(f"Ray dashboard at {self.settings.ray_address}: {exc}") from exc
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def _jobs(self) -> list[RayJob]:
        jobs = (RayJob.from_details(d) for d in self._get("/api/jobs/") or [])
        return [job for job in jobs if job is not None]

    def _nodes(self) -> list[dict[str, Any]]:
        body = self._get("/api/v0/nodes", detail="true", limit=10000)
        nodes: list[dict[str, Any]] = body["data"]["result"]["result"]
        return nodes

    # -- capacity ----------------------------------------------------------------------------
    def _capacity(self, jobs: list[RayJob]) -> list[NodeCapacity]:
        nodes: dict[str, NodeCapacity] = {}
        for node in self._nodes():
            total = node.get("resources_total") or {}
            if node.get("state") != "ALIVE" or not (total.get("CPU") or total.get("GPU")):
                continue  # dead, or a head that runs no jobs (`--num-cpus=0`)
            accelerator = next(
                (k.split(":", 1)[1] for k in total for p in ACCELERATOR_PREFIXES if k.startswith(p)), None
            )
            memory = total.get("memory")
            nodes[node["node_id"]] = NodeCapacity(
                node_id=node["node_id"],
                alive=True,
                cpus_total=float(total.get("CPU", 0)),
                cpus_free=float(total.get("CPU", 0)),
                gpus_total=int(total.get("GPU", 0)),
                gpus_free=int(total.get("GPU", 0)),
                accelerator=accelerator,
                memory_gb_free=round(memory / 2**30, 2) if memory else None,
            )
        # Live jobs take their share: placed ones on their node, pending ones where they fit.
        live = sorted((j for j in jobs if j.status in LIVE), key=lambda j: j.node_id is None)
        for job in live:
            placed = nodes.get(job.node_id or "")
            if placed is None:
                placed = next((n for n in nodes.values() if fits(job.resources, n)), None)
            if placed is not None:
                _take(placed, job.resources)
        return list(nodes.values())

    def capacity(self) -> Capacity:
        with self._lock:
            jobs = self._jobs()
            running = sum(j.status in LIVE for j in jobs)
            return Capacity(executor="ray", jobs_running=running, nodes=self._capacity(jobs))

    def running_count(self) -> int:
        try:
            return sum(j.status in LIVE for j in self._jobs())
        except ExecutorUnavailable:
            return 0

    # -- start, status, cancel ---------------------------------------------------------------
    def start(self, request: StartJobRequest, *, request_id: str | None = None) -> JobStatus:
        sid = submission_id(request.job_id, request.attempt)
        with self._lock:
            # One listing of the cluster's jobs answers both "is this attempt there already" (the
            # idempotent start) and what the live jobs hold: every dashboard call is part of the
            # hand-over's latency, so a start makes three (list, nodes, submit).
            jobs = self._jobs()
            mine = [j for j in jobs if j.job_id == request.job_id]
            known = next((j for j in mine if j.attempt == request.attempt), None)
            if known is not None:
                return known.status_model()
            newest = max(mine, key=lambda j: j.attempt, default=None)
            if newest is not None and newest.attempt > request.attempt:
                raise StaleAttempt(f"attempt {newest.attempt} of job {request.job_id} is newer")
            for old in mine:
                if old.status in LIVE:  # the backend gave up on it; it stops at its next batch
                    self._request_cancel(request.output_uri, old.attempt)
            resources = effective_resources(request)
            nodes = self._capacity(jobs)
            refused = waiting_for(resources, nodes)
            if refused is not None:
                raise NoCapacity(*refused)
            self._submit(sid, request, resources, request_id, nodes)
            self._active[sid] = request
            log.info("ray job submitted", extra={"job_id": request.job_id, "submission_id": sid})
            # Just submitted, so Ray holds it as PENDING: not asked again.
            return JobStatus(job_id=request.job_id, attempt=request.attempt, state="accepted")

    def _submit(
        self,
        sid: str,
        request: StartJobRequest,
        resources: Resources,
        request_id: str | None,
        nodes: list[NodeCapacity],
    ) -> None:
        env = {
            **self.settings.child_env(),
            REQUEST_ID_ENV: request_id or "",
            "TRAINER_CANCEL_POLL_S": str(CANCEL_POLL_S),
            SPEC_ENV: request.model_dump_json(),
        }
        body: dict[str, Any] = {
            "submission_id": sid,
            "entrypoint": f"{self.settings.ray_python} -m trainer_runner.job --spec-from-env",
            "runtime_env": {"env_vars": env},
            "metadata": {
                "vtp_job_id": request.job_id,
                "vtp_attempt": str(request.attempt),
                "vtp_resources": resources.model_dump_json(),
            },
            "entrypoint_num_cpus": resources.cpus,
        }
        if resources.gpus:
            body["entrypoint_num_gpus"] = resources.gpus
            # The cap of the fit rule: a GPU job never asks for more CPUs than its node has.
            node = next((n for n in nodes if fits(resources, n)), None)
            if node is not None:
                body["entrypoint_num_cpus"] = cpus_needed(resources, node)
        if resources.memory_gb:
            body["entrypoint_memory"] = int(resources.memory_gb * 2**30)
        if resources.accelerator:
            body["entrypoint_resources"] = {f"accelerator:{resources.accelerator}": 0.001}
        try:
            response = self.http.post("/api/jobs/", json=body)
        except httpx.HTTPError as exc:
            raise ExecutorUnavailable(f"Ray dashboard at {self.settings.ray_address}: {exc}") from exc
        if response.status_code >= 400 and "already exists" not in response.text:
            raise ExecutorUnavailable(f"Ray refused the job ({response.status_code}): {response.text[-500:]}")

    def status(self, job_id: str) -> JobStatus | None:
        mine = [j for j in self._jobs() if j.job_id == job_id]
        newest = max(mine, key=lambda j: j.attempt, default=None)
        return newest.status_model() if newest else None

    def cancel(self, job_id: str) -> JobStatus | None:
        with self._lock:
            mine = [j for j in self._jobs() if j.job_id == job_id]
            newest = max(mine, key=lambda j: j.attempt, default=None)
            if newest is None:
                return None
            request = self._active.get(submission_id(job_id, newest.attempt))
            if newest.status in LIVE and request is not None:
                self._request_cancel(request.output_uri, newest.attempt)
            elif newest.status in LIVE:  # started by an earlier gateway: no output address known
                self._stop(submission_id(job_id, newest.attempt))
            return newest.status_model()

    def _storage(self) -> Any:
        if self._s3 is None:
            self._s3 = make_s3_client(self.settings)
        return self._s3

    def _request_cancel(self, output_uri: str, attempt: int) -> None:
        marker = cancel_marker(output_uri, attempt)
        upload_bytes(self._storage(), b"", marker, "text/plain", budget_s=30)
        log.info("cancel requested", extra={"marker": str(marker)})

    def _stop(self, sid: str) -> None:
        """Ray's own stop: SIGTERM now, SIGKILL a few seconds later."""
        self.http.post(f"/api/jobs/{sid}/stop")

    def progress(self) -> list[Progress]:
        """A job on a Ray node cannot share files with this gateway: it writes its speed to a
        small object beside its cancel marker every epoch (`progress_marker`), read here."""
        with self._lock:
            active = list(self._active.values())
        found = []
        for request in active:
            marker = progress_marker(request.output_uri, request.attempt)
            try:
                body = self._storage().get_object(Bucket=marker.bucket, Key=marker.key)["Body"].read()
                record = json.loads(body)
            except (ClientError, ValueError):
                continue  # no epoch finished yet
            found.append(Progress.from_record(request.job_id, request.attempt, record))
        return [p for p in found if p is not None]

    # -- watching ----------------------------------------------------------------------------
    def poll(self) -> None:
        """Report attempts that ended without a result (dead node, killed job) as lost."""
        with self._lock:
            if not self._active:
                return
            by_sid = {submission_id(j.job_id, j.attempt): j for j in self._jobs()}
            for sid, request in list(self._active.items()):
                job = by_sid.get(sid)
                if job is None or job.status in LIVE:
                    continue
                del self._active[sid]
                state, error = job.outcome()
                if error is not None:
                    self._lost.report(request, error.message)
                log.info("ray job ended", extra={"submission_id": sid, "state": state})

    def shutdown(self) -> None:
        """Jobs keep running on the cluster; a new gateway finds them by submission id."""
        self._lost.join()
        self.http.close()


def _take(node: NodeCapacity, resources: Resources) -> None:
    node.gpus_free = max(node.gpus_free - resources.gpus, 0)
    node.cpus_free = max(node.cpus_free - cpus_needed(resources, node), 0.0)
    if node.memory_gb_free is not None and resources.memory_gb:
        node.memory_gb_free = max(node.memory_gb_free - resources.memory_gb, 0.0)


__all__ = ["RayExecutor", "RayJob", "submission_id"]
