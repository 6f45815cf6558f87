"""The fleet under load: 12 short jobs on (a) one local trainer slot and (b) a local Ray cluster
of three one-slot nodes (not a timed test).

Each job is a real training (detection, 1 epoch, 64 px, 12 images, one torch thread) through the
real trainer service, with a real S3 server (nanio) and a callback receiver. A small dispatcher
plays the backend's part: it keeps the queue in order and starts the next job as soon as
`GET /capacity` shows room (polled every 50 ms), never retrying a busy trainer.

Printed per executor, and `--repeat N` times:
- makespan (first start -> last `finished`) against the ideal: the sum of the job times
  divided by the slots, a job's time being how long it held its slot (202 -> `finished`
  callback: Python start-up, imports, dataset download and training). The ratio shows what
  dispatching costs; the training alone (`started` -> `finished`) is printed beside it;
- dispatch latency, p50/p95: from the moment the dispatcher saw room (or began) to the moment
  a process runs the attempt on its node. Local: the trainer starts the job process (or hands
  the spec to its warm one) before it answers 202, so that is the 202. Ray: Ray has started the
  job's entrypoint (the Ray Job is RUNNING; `GET /jobs/{id}` polled every 25 ms). Targets: p95
  < 300 ms local, < 3 s Ray. Also: hand-over (room -> 202) and start-up (launched -> `started`
  callback: Python, imports, dataset download; the same code under both executors, and where a
  local job's own `running` status is written, which is why that status is not the measure);
- node utilisation: busy seconds (202 -> `finished`) over available seconds (slots x makespan).

    python bench/fleet.py [--jobs 12] [--repeat 2] [--executors local,ray]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.trainer.conftest import BUCKET, S3Server, upload_synthetic_dataset  # noqa: E402
from tests.utils import servers  # noqa: E402
from tests.utils.ray_cluster import RayCluster  # noqa: E402

SECRET = "bench-callback-secret"
POLL_S = 0.025


@dataclass
class Receiver:
    """Records the time each callback arrived; signatures are the tests' business, not this one's."""

    url: str = ""
    times: dict[tuple[str, str], float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def at(self, job_id: str, type_: str) -> float | None:
        with self.lock:
            return self.times.get((job_id, type_))


@contextmanager
def receiver() -> Iterator[Receiver]:
    port = servers.free_port()
    rec = Receiver(url=f"http://127.0.0.1:{port}/callbacks")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            event = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with rec.lock:
                rec.times.setdefault((event["job_id"], event["type"]), time.monotonic())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def trainer_service(work: Path, s3_url: str, env: dict[str, str]) -> Iterator[str]:
    full = {
        "TRAINER_S3_ENDPOINT_URL": s3_url,
        "TRAINER_S3_ACCESS_KEY": servers.S3_KEYS[0],
        "TRAINER_S3_SECRET_KEY": servers.S3_KEYS[1],
        "TRAINER_MLFLOW_TRACKING_URI": "",
        "TRAINER_TORCH_THREADS": "1",
        "TRAINER_RETRY_AFTER_S": "1",
        "PYTHONPATH": str(ROOT),
        **env,
    }
    with servers.trainer(work, full) as url:
        yield url


@dataclass
class Run:
    job_id: str
    ready: float = 0.0  # the dispatcher saw room for it (or the run began)
    accepted: float = 0.0  # 202
    running: float = 0.0  # the executor said running
    node: str = "local"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(round(q * (len(ordered) - 1))), len(ordered) - 1)]


def run_jobs(
    url: str, rec: Receiver, dataset_uri: str, n_jobs: int, tag: str, launched_by_202: bool
) -> dict[str, Any]:
    client = httpx.Client(base_url=url, timeout=30)
    queue = [f"{tag}-{i:02d}" for i in range(n_jobs)]
    runs: dict[str, Run] = {}
    pending_running: list[Run] = []
    began = time.monotonic()
    ready_since = began

    def watch_running() -> None:
        for item in list(pending_running):
            state = client.get(f"/jobs/{item.job_id}").json()["state"]
            if state != "accepted":
                item.running = time.monotonic()
                pending_running.remove(item)

    while queue or pending_running:
        watch_running()
        if not queue:
            time.sleep(POLL_S)
            continue
        nodes = client.get("/capacity").json()["nodes"]
        if not any(n["alive"] and n["cpus_free"] >= 1 for n in nodes):
            ready_since = 0.0
            time.sleep(POLL_S)
            continue
        ready_since = ready_since or time.monotonic()
        job_id = queue[0]
        request = {
            "job_id": job_id,
            "framework": "ultralytics",
            "task": "detect",
            "model": "yolo11n.yaml",
            "hyperparameters": {"epochs": 1, "imgsz": 64, "batch": 8, "seed": 0, "mosaic": 0.0},
            "device": "cpu",
            "dataset_uri": dataset_uri,
            "output_uri": f"s3://{BUCKET}/bench/{job_id}/",
            "callback_url": rec.url,
            "callback_secret": SECRET,
            "heartbeat_interval_s": 5.0,
            "resources": {"cpus": 1},
        }
        response = client.post("/jobs", json=request)
        if response.status_code == 429:  # the capacity was stale by a moment: look again
            time.sleep(POLL_S)
            continue
        response.raise_for_status()
        item = Run(job_id, ready=ready_since, accepted=time.monotonic())
        runs[job_id] = item
        if launched_by_202:
            item.running = item.accepted
        else:
            pending_running.append(item)
        queue.pop(0)
        ready_since = time.monotonic()  # room for the next one is checked at once

    deadline = time.monotonic() + 900
    while any(rec.at(j, "finished") is None for j in runs) and time.monotonic() < deadline:
        time.sleep(0.2)
    client.close()
    return {"began": began, "runs": runs}


def ray_nodes(cluster: RayCluster, runs: dict[str, Run]) -> None:
    from trainer_runner.executors.ray import submission_id

    for item in runs.values():
        details = httpx.get(f"{cluster.dashboard_url}/api/jobs/{submission_id(item.job_id, 1)}").json()
        item.node = details.get("driver_node_id") or "?"


def report(name: str, slots: int, result: dict[str, Any], rec: Receiver) -> dict[str, float]:
    runs: dict[str, Run] = result["runs"]
    finished = {j: rec.at(j, "finished") or float("nan") for j in runs}
    started = {j: rec.at(j, "started") or float("nan") for j in runs}
    makespan = max(finished.values()) - result["began"]
    job_times = [finished[j] - r.accepted for j, r in runs.items()]
    training = [finished[j] - started[j] for j in runs]
    ideal = sum(job_times) / slots
    dispatch = [r.running - r.ready for r in runs.values()]
    handover = [r.accepted - r.ready for r in runs.values()]
    startup = [started[j] - r.running for j, r in runs.items()]
    to_started = [started[j] - r.ready for j, r in runs.items()]
    busy: dict[str, float] = {}
    for j, r in runs.items():
        busy[r.node] = busy.get(r.node, 0.0) + finished[j] - r.accepted
    print(f"\n== {name}: {len(runs)} jobs on {slots} slot(s)")
    print(f"makespan {makespan:6.1f} s   ideal {ideal:6.1f} s   ratio {makespan / ideal:4.2f}")
    print(
        f"job time (202 -> finished) mean {statistics.mean(job_times):5.1f} s, "
        f"of which training (started -> finished) {statistics.mean(training):5.1f} s"
    )
    print(
        f"dispatch (room -> launched) p50 {1000 * percentile(dispatch, 0.5):6.0f} ms   "
        f"p95 {1000 * percentile(dispatch, 0.95):6.0f} ms"
    )
    print(
        f"  hand-over (room -> 202)   p50 {1000 * percentile(handover, 0.5):6.0f} ms   "
        f"p95 {1000 * percentile(handover, 0.95):6.0f} ms"
    )
    p50, p95 = percentile(startup, 0.5), percentile(startup, 0.95)
    print(f"  start-up (launched -> started) p50 {p50:6.1f} s    p95 {p95:6.1f} s")
    p50, p95 = percentile(to_started, 0.5), percentile(to_started, 0.95)
    print(f"room -> started (all of it) p50 {p50:6.1f} s    p95 {p95:6.1f} s")
    per_node = {node[:8]: b / makespan for node, b in sorted(busy.items())}
    print("node utilisation " + "  ".join(f"{n}: {u:.0%}" for n, u in per_node.items()))
    return {
        "makespan_ratio": makespan / ideal,
        "dispatch_p50_ms": 1000 * percentile(dispatch, 0.5),
        "dispatch_p95_ms": 1000 * percentile(dispatch, 0.95),
        "startup_p95_s": percentile(startup, 0.95),
        "utilisation": statistics.mean(per_node.values()) * len(per_node) / slots,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--executors", default="local,ray")
    args = parser.parse_args()
    # `timeout` and CI stop a benchmark with SIGTERM: run the `finally`s that stop what it started.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    executors = args.executors.split(",")
    summary: dict[str, list[dict[str, float]]] = {name: [] for name in executors}

    with tempfile.TemporaryDirectory(prefix="vtp-fleet-bench-") as tmp, receiver() as rec:
        work = Path(tmp)
        with servers.nanio(work / "s3") as s3_url:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                endpoint_url=s3_url,
                aws_access_key_id=servers.S3_KEYS[0],
                aws_secret_access_key=servers.S3_KEYS[1],
                region_name="us-east-1",
                config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
            )
            client.create_bucket(Bucket=BUCKET)
            dataset_uri = upload_synthetic_dataset(S3Server(s3_url, client), "bench/dataset/v1")
            for round_ in range(args.repeat):
                if "local" in executors:
                    env = {"TRAINER_EXECUTOR": "local", "TRAINER_CPU_SLOTS": "1"}
                    with trainer_service(work / f"local-{round_}", s3_url, env) as url:
                        result = run_jobs(url, rec, dataset_uri, args.jobs, f"local{round_}", True)
                    summary["local"].append(report("local, one slot", 1, result, rec))
                if "ray" in executors:
                    cluster = RayCluster(log_dir=work / f"ray-{round_}")
                    try:
                        cluster.start()
                        for name in "abc":
                            cluster.add_node(name, cpus=1)
                        env = {
                            "TRAINER_EXECUTOR": "ray",
                            "TRAINER_RAY_ADDRESS": cluster.dashboard_url,
                            "TRAINER_RAY_PYTHON": sys.executable,
                        }
                        with trainer_service(work / f"ray-{round_}", s3_url, env) as url:
                            result = run_jobs(url, rec, dataset_uri, args.jobs, f"ray{round_}", False)
                        ray_nodes(cluster, result["runs"])
                        summary["ray"].append(report("Ray, three one-slot nodes", 3, result, rec))
                    finally:
                        cluster.stop()

    print("\n== summary over", args.repeat, "run(s): min .. max")
    for name, rows in summary.items():
        if not rows:
            continue
        for key in rows[0]:
            values = [row[key] for row in rows]
            print(f"{name:6s} {key:16s} {min(values):8.2f} .. {max(values):8.2f}")


if __name__ == "__main__":
    main()
