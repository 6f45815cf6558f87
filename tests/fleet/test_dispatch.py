"""The one dispatcher against the whole stack (`vtp up`, the real trainer with one CPU slot, real
Redis, S3 and training): queue order, waiting that costs nothing, a job nobody can place, and a
killed job process resumed from its checkpoint.

A counting proxy sits between the backend and the trainer, so the tests see every request the
backend makes of it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from playwright.sync_api import Browser

from tests.fleet.proxy import Seen, counting_proxy
from tests.utils.browser import VIEWPORT, sign_in
from tests.utils.servers import free_port
from tests.utils.stack import Api, StackProcess

pytestmark = pytest.mark.fleet
# The 100 waiting jobs. It watches them wait for two minutes and then runs every one;
# here they wait for WINDOW_S and RUN_TO_END of them run (bench/dispatch_wait.py does the rest).
WAITING_JOBS = 100
WINDOW_S = 30.0
RUN_TO_END = 3


class Fleet:
    def __init__(self, stack: StackProcess, seen: Seen) -> None:
        self.stack, self.seen = stack, seen
        self.api = Api(stack.api_url, stack.username, stack.password)
        self.project = self.api.project_id()
        self.version = self.api.datasets(self.project)[0]["id"]

    def submit(
        self, epochs: int = 1, resources: dict[str, Any] | None = None, **hyper: Any
    ) -> dict[str, Any]:
        body = {
            "dataset_version_id": self.version,
            "hyperparameters": {"imgsz": 64, "batch": 16, "epochs": epochs, **hyper},
            "resources": resources or {},
        }
        response = self.api.http.post(f"/projects/{self.project}/jobs", json=body)
        return response.raise_for_status().json()

    def job(self, job_id: int) -> dict[str, Any]:
        return self.api.job(self.project, job_id)

    def wait(self, job_id: int, until: Any, timeout_s: float = 300, what: str = "") -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while not until(job := self.job(job_id)):
            assert time.monotonic() < deadline, f"job {job_id}: {what or 'condition'} not reached: {job}"
            time.sleep(0.3)
        return job

    def finished(self, job_id: int, timeout_s: float = 400) -> dict[str, Any]:
        return self.api.wait_finished(self.project, job_id, timeout_s=timeout_s)

    def moves(self, job_id: int) -> list[tuple[str, str]]:
        return [(e["from"], e["to"]) for e in self.stack.callbacks(job_id, {"state"}) if e.get("from")]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, output_dir: Path) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    stack = StackProcess(
        data_dir=root / "data",
        trainer_dir=root / "trainer",
        log_path=output_dir / "stack-fleet.log",
        # One CPU slot: one job trains at a time and the rest wait. A checkpoint every epoch so a
        # killed attempt has one to resume from.
        # The module's REST client signs in once and outlives the default 15-minute access token.
        extra_env={
            "TRAINER_CPU_SLOTS": "1",
            "TRAINER_CHECKPOINT_INTERVAL_S": "0",
            "VTP_JWT_ACCESS_TTL_S": "7200",
        },
    )
    stack.env()  # picks the ports
    proxy_port = free_port()
    with counting_proxy(proxy_port, f"http://127.0.0.1:{stack.ports['trainer']}") as seen:
        stack.extra_env["VTP_TRAINER_URL"] = f"http://127.0.0.1:{proxy_port}"
        stack.start()
        try:
            yield Fleet(stack, seen)
        finally:
            stack.stop()


def _pids(marker: bytes, needle: bytes) -> list[int]:
    """Processes with `marker` in their command line and `needle` in their command line or
    environment (a port or data dir: only this test's stack is touched)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if marker in cmdline and (needle in cmdline or needle in environ):
            found.append(int(pid))
    return found


def _send(fleet: Fleet, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST as a user would, taking the API's 503 ("busy, retry after") as the user's client does."""
    for _ in range(20):
        response = fleet.api.http.post(f"/projects/{fleet.project}{path}", json=body)
        if response.status_code != 503:
            return response.raise_for_status().json()
        time.sleep(float(response.headers.get("Retry-After", "1")))
    raise AssertionError(f"POST {path}: the API stayed busy: {response.text}")


def _submit_many(fleet: Fleet, count: int) -> list[dict[str, Any]]:
    """`count` one-epoch jobs, a few at a time (what a script submitting a batch does)."""
    body = {"dataset_version_id": fleet.version, "hyperparameters": {"imgsz": 64, "batch": 16, "epochs": 1}}
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda _: _send(fleet, "/jobs", body), range(count)))


def _cancel_many(fleet: Fleet, job_ids: list[int]) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda job_id: _send(fleet, f"/jobs/{job_id}/cancel"), job_ids))


def _queue_entries(queue: redis.Redis) -> int:
    """What Redis holds for the job queue: arq's queue and the dispatcher's wake-up list. arq's own
    cron runs (the housekeeping) and notification deliveries pass through arq's queue too; jobs
    must not."""
    held = [m for m in queue.zrange("vtp:queue", 0, -1) if not m.startswith((b"cron:", b"vtp:notify:"))]
    return len(held) + int(queue.llen("vtp:dispatch:wake"))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Real training on a shared 2-core machine: a one-epoch job takes 15-60 s, the stack about two
# minutes to start (counted against the first test).
@pytest.mark.timeout(1200)
def test_five_jobs_submitted_in_order_start_in_order(fleet: Fleet) -> None:
    submitted = [fleet.submit() for _ in range(5)]
    finals = [fleet.finished(j["id"]) for j in submitted]
    assert [f["state"] for f in finals] == ["succeeded"] * 5, finals
    started = [f["started_at"] for f in finals]
    assert started == sorted(started), started
    # Each waited as `queued` and was handed over once: no long "dispatching", no second offer.
    for job in finals:
        assert fleet.moves(job["id"]).count(("queued", "dispatching")) == 1, fleet.moves(job["id"])
    # For the record (timing is the benchmarks' business): one job's end to the next one's hand-over.
    gaps = [
        (datetime.fromisoformat(b["started_at"]) - datetime.fromisoformat(a["finished_at"])).total_seconds()
        for a, b in zip(finals, finals[1:], strict=False)
    ]
    print("\nfinished -> next started (s):", " ".join(f"{g:.2f}" for g in gaps))


@pytest.mark.timeout(600)
def test_a_job_cancelled_during_its_hand_over_never_trains_on(fleet: Fleet) -> None:
    """Cancel while the dispatcher is handing the job to the trainer: the job is cancelled at
    once, and the attempt the trainer accepts a moment later is stopped (before, the database
    said cancelled while the trainer trained the job to the end, holding the only slot)."""
    fleet.seen.hand_overs.clear()
    try:
        job = fleet.submit(epochs=50)
        fleet.wait(job["id"], lambda j: j["state"] == "dispatching", timeout_s=120, what="hand-over")
        cancelled = fleet.api.http.post(f"/projects/{fleet.project}/jobs/{job['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert fleet.job(job["id"])["state"] == "cancelled"  # at once, not after the trainer
    finally:
        fleet.seen.hand_overs.set()
    trainer = f"http://127.0.0.1:{fleet.stack.ports['trainer']}"
    deadline = time.monotonic() + 180
    while True:
        answer = httpx.get(f"{trainer}/jobs/{job['id']}", timeout=10)
        if answer.status_code == 200 and answer.json()["state"] in {"cancelled", "failed", "succeeded"}:
            break
        assert time.monotonic() < deadline, f"the trainer still runs the cancelled job: {answer.text}"
        time.sleep(0.5)
    assert answer.json()["state"] == "cancelled", answer.json()
    final = fleet.job(job["id"])
    assert final["state"] == "cancelled", final
    # The slot is free again: the next job runs.
    assert fleet.finished(fleet.submit()["id"])["state"] == "succeeded"


@pytest.mark.timeout(900)
def test_a_job_asking_for_an_accelerator_nobody_has_stays_queued_and_says_why(
    fleet: Fleet, browser: Browser, output_dir: Path
) -> None:
    job = fleet.submit(resources={"gpus": 1, "accelerator": "H100"})
    posts = fleet.seen.count("POST", "/jobs")
    waiting = fleet.wait(job["id"], lambda j: j["waiting_for"], timeout_s=30, what="a waiting reason")
    assert waiting["state"] == "queued" and waiting["queue_position"] == 1
    assert waiting["waiting_for"] == "1 GPU (H100); no node in the fleet has H100"
    assert waiting["resources"] == {"gpus": 1, "accelerator": "H100"}
    listed = next(
        j for j in fleet.api.http.get(f"/projects/{fleet.project}/jobs").json() if j["id"] == job["id"]
    )
    assert (listed["queue_position"], listed["waiting_for"]) == (1, waiting["waiting_for"])

    page = browser.new_page(viewport=VIEWPORT)
    try:
        sign_in(page, fleet.stack, f"/jobs/{job['id']}")
        page.wait_for_selector("#job-queue")
        shown = page.inner_text("#job-queue")
        page.screenshot(path=str(output_dir / "fleet-job-waiting-for-h100.png"), full_page=True)
    finally:
        page.close()
    assert shown == "Queued · position 1 · waiting for 1 GPU (H100); no node in the fleet has H100"

    # The train form shows what the fleet has free, and checks the resources asked for.
    page = browser.new_page(viewport=VIEWPORT)
    try:
        sign_in(page, fleet.stack, f"/projects/{fleet.project}/train")
        page.wait_for_selector("#fleet-free")
        free = page.inner_text("#fleet-free")
        page.wait_for_selector("#start-training:not([disabled])")
        page.fill("#resources-gpus", "1.5")
        page.click("#start-training")
        page.wait_for_selector("#resources-gpus-error")
        refused = page.inner_text("#resources-gpus-error")
        page.screenshot(path=str(output_dir / "fleet-train-form.png"), full_page=True)
    finally:
        page.close()
    assert free == "1 node (local) · no GPUs · 1/1 CPUs free", free
    assert refused == "resources.gpus: enter a whole number of GPUs, or leave it empty"

    time.sleep(3)
    assert fleet.job(job["id"])["state"] == "queued"
    assert fleet.seen.count("POST", "/jobs") == posts, "a job that cannot be placed was offered anyway"
    cancelled = fleet.api.http.post(f"/projects/{fleet.project}/jobs/{job['id']}/cancel").raise_for_status()
    assert cancelled.json()["state"] == "cancelled"


@pytest.mark.timeout(1200)
def test_waiting_costs_nothing_and_every_job_runs_once(fleet: Fleet) -> None:
    """The issue's 100 jobs behind a busy trainer. Waiting is watched for WINDOW_S (the issue's
    two minutes are bench/dispatch_wait.py's); then the first RUN_TO_END run to the end in queue
    order and the rest are cancelled. "Runs exactly once" is checked for all 100: each was handed
    to the trainer once (the ones that ran) or never (the ones cancelled while waiting), by the
    database's moves, the trainer's callbacks, its scratch directories and its own job table."""
    stack = fleet.stack
    blocker = fleet.submit(epochs=500)  # cancelled below: it only holds the one slot meanwhile
    fleet.wait(
        blocker["id"], lambda j: j["state"] == "running" and j["current_epoch"] is not None, what="running"
    )
    waiting = sorted(_submit_many(fleet, WAITING_JOBS), key=lambda j: j["id"])
    assert len({j["id"] for j in waiting}) == WAITING_JOBS

    def queued() -> list[dict[str, Any]]:
        listed = fleet.api.http.get(f"/projects/{fleet.project}/jobs", params={"state": "queued"})
        return sorted(listed.raise_for_status().json(), key=lambda j: j["queue_position"])

    # Bounded wait until the dispatcher has looked at every waiting job once.
    deadline = time.monotonic() + 60
    shown = queued()
    while not all(j["waiting_for"] for j in shown):
        assert time.monotonic() < deadline, [j for j in shown if not j["waiting_for"]][:3]
        time.sleep(0.5)
        shown = queued()
    assert {j["id"] for j in shown} == {j["id"] for j in waiting}
    assert [j["queue_position"] for j in shown] == list(range(1, WAITING_JOBS + 1))
    assert {j["waiting_for"] for j in shown} == {"the trainer"}
    in_order = [j["id"] for j in shown]

    worker = _pids(b"services.runtime.worker.WorkerSettings", f"VTP_DATA_DIR={stack.data_dir}".encode())
    assert len(worker) == 1
    queue = redis.Redis(port=stack.ports["redis"])
    lines_before, cpu_before = len(stack.lines), _cpu_seconds(worker[0])
    start = time.monotonic()
    entries: list[int] = []
    while time.monotonic() - start < WINDOW_S:
        entries.append(_queue_entries(queue))
        time.sleep(1)
    end = time.monotonic()
    cpu_share = (_cpu_seconds(worker[0]) - cpu_before) / (end - start)
    asked = fleet.seen.count("GET", "/capacity", since=start, until=end)
    offered = fleet.seen.count("POST", "/jobs", since=start, until=end)
    worker_lines = [line for line in stack.lines[lines_before:] if line.startswith("[worker]")]
    print(
        f"\nwaiting: {WAITING_JOBS} jobs for {end - start:.0f}s: "
        f"GET /capacity {asked / (end - start):.2f}/s, "
        f"POST /jobs {offered}, worker CPU {100 * cpu_share:.2f}% of a core, "
        f"{len(worker_lines)} worker log lines, queue entries max {max(entries)}"
    )
    assert fleet.job(blocker["id"])["state"] == "running", "the blocker finished inside the window"
    # About one capacity request a second, none per waiting job, and no offer to a full trainer.
    assert 0.5 * WINDOW_S <= asked <= 1.2 * WINDOW_S + 2, asked
    assert offered == 0
    # Waiting jobs hold no queue entries at all (the wake-up list holds at most one).
    assert max(entries) <= 1, entries
    assert not any(f"job {j}" in line for line in worker_lines for j in in_order), worker_lines
    # Nothing but the fixed-schedule housekeeping logs while jobs wait: arq's start and end line of
    # each cron run (the reconciler and the sweeps' every 10 s, unsent notifications every 30 s),
    # however many jobs wait.
    housekeeping = [line for line in worker_lines if "cron:" in line]
    assert [line for line in worker_lines if "cron:" not in line] == [], worker_lines
    assert len(housekeeping) <= 2 * (2 * (WINDOW_S / 10 + 1) + WINDOW_S / 30 + 1), housekeeping
    assert cpu_share < 0.02, f"worker used {100 * cpu_share:.1f}% of a core while jobs waited"

    # The first few run to the end, in queue order; the rest are cancelled while they wait (before
    # the blocker goes, so none of them can be handed over meanwhile).
    runs, dropped = in_order[:RUN_TO_END], in_order[RUN_TO_END:]
    cancelled = _cancel_many(fleet, dropped)
    assert {c["state"] for c in cancelled} == {"cancelled"}, cancelled
    fleet.api.http.post(f"/projects/{fleet.project}/jobs/{blocker['id']}/cancel").raise_for_status()
    finals = [fleet.finished(job_id) for job_id in runs]
    assert [f["state"] for f in finals] == ["succeeded"] * RUN_TO_END, finals
    assert [f["started_at"] for f in finals] == sorted(f["started_at"] for f in finals)
    for final in finals:
        assert final["attempt"] == 1
        assert fleet.moves(final["id"]).count(("queued", "dispatching")) == 1, fleet.moves(final["id"])
        assert len([e for e in stack.callbacks(final["id"], {"started"}) if e.get("attempt") == 1]) == 1
    for job_id in dropped:
        assert fleet.job(job_id)["state"] == "cancelled"
        assert fleet.moves(job_id) == [("queued", "cancelled")], (job_id, fleet.moves(job_id))
        assert stack.callbacks(job_id, {"started", "epoch", "finished"}) == [], job_id
    # The trainer's side: one scratch directory (attempt 1) for each job that ran, none for the
    # others, and the trainer never heard of a cancelled one.
    ran: dict[str, list[str]] = {}
    for d in (stack.trainer_dir / "scratch" / "jobs").iterdir():
        if d.is_dir():
            ran.setdefault(d.name.split("-")[0], []).append(d.name)
    for job_id in runs:
        assert ran.get(str(job_id)) == [f"{job_id}-1"], ran.get(str(job_id))
    assert not [ran[str(j)] for j in dropped if str(j) in ran]
    trainer = httpx.Client(base_url=f"http://127.0.0.1:{stack.ports['trainer']}", timeout=30)
    with trainer:
        assert {trainer.get(f"/jobs/{j}").status_code for j in dropped} == {404}
    # Nothing of any of them is left in the queue.
    assert _queue_entries(queue) <= 1


@pytest.mark.timeout(1200)
def test_a_killed_job_process_resumes_from_its_checkpoint(fleet: Fleet) -> None:
    stack = fleet.stack
    epochs = 4
    job = fleet.submit(epochs=epochs, imgsz=96)
    fleet.wait(job["id"], lambda j: len(j["metrics"]) >= 2, what="epoch 2")
    port = f"TRAINER_PORT={stack.ports['trainer']}".encode()
    victims = _pids(b"trainer_runner.job", port)
    server = [p for p in _pids(b"trainer_runner", port) if p not in victims]
    assert len(victims) == 1 and server, (victims, server)
    os.kill(victims[0], signal.SIGKILL)
    killed_at = time.monotonic()

    final = fleet.finished(job["id"])
    print(
        f"\nfault=job process SIGKILL mid-epoch outcome={final['state']} attempt={final['attempt']} "
        f"time_to_recover={time.monotonic() - killed_at:.1f}s"
    )
    assert final["state"] == "succeeded", final
    assert final["attempt"] == 2
    assert [m["epoch"] for m in final["metrics"]] == list(range(epochs))
    second = [e["epoch"] for e in stack.callbacks(job["id"], {"epoch"}) if e["attempt"] == 2]
    assert second and min(second) >= 2 and second == list(range(min(second), epochs)), second
    reasons = [e["reason"] for e in stack.callbacks(job["id"], {"state"}) if e.get("to") == "retrying"]
    assert len(reasons) == 1 and "attempt 1 lost: job process killed by SIGKILL" in reasons[0], reasons
    # The trainer service itself was never touched.
    assert all(Path(f"/proc/{p}").exists() for p in server)
