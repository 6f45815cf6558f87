"""The platform's overhead on a training job, end to end (not a timed test).

Starts the whole stack as `make up` does (`vtp up`: web + REST API, worker, Redis, S3 server,
MLflow, trainer) and alternates, `--repeat` times:
  (a) direct: the same training with plain Ultralytics in a fresh process, on the same unpacked
      dataset (the demo project's sample), with the job's thread setting; wall time from
      before the import to `train()` returning;
  (b) platform: `POST /api/v1/projects/{id}/jobs` with the same model and hyperparameters,
      polled until finished; wall time from the job's `created_at` to its `finished_at`.
It prints each pair, where the difference goes, and the median ratio b/a:
  - queue->start: job created -> its job process logged "job started" ((a) has none);
  - start-up: process start (or, for (a), launch) -> the training loop starts;
  - epochs: median and sum of Ultralytics' per-epoch times (results.csv);
  - end: the last epoch done -> finished (final evaluation, predictions, uploads, callbacks).
The 1-minute load average is printed with every run: on a shared machine the figures are only
comparable side by side, which is why (a) and (b) alternate. Usage:

    python bench/platform_overhead.py --repeat 3              # the 2-minute job (30 epochs)
    python bench/platform_overhead.py --repeat 3 --epochs 5   # the "20-second job"
    python bench/platform_overhead.py --profile /tmp/prof     # py-spy + per-thread CPU of (b)
    TRAINER_WARM_JOB_PROCESS=false python bench/platform_overhead.py   # every job started cold

`vtp up` passes the caller's TRAINER_* variables to the trainer, so a trainer setting can be
compared this way. With the warm job process (the default on a trainer without GPUs) the job's
process started, and imported torch and Ultralytics, before the job was submitted: its CPU
figure includes that warm-up; its "start-up" does not.

Targets (issue 18): median ratio <= 1.03 at 30 epochs, <= 1.05 at 5 epochs, on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.utils.stack import Api, StackProcess  # noqa: E402

# The job's own code path for the import: same offline settings, same thread setting.
DIRECT = """
import time
launched = time.time()
import json, sys
from pathlib import Path
from trainer_runner.plugins.yolo import import_ultralytics
spec = json.loads(sys.argv[1])
YOLO = import_ultralytics(Path(spec["config_dir"]), spec["threads"])
model = YOLO(spec["model"], task="detect")
started = {}
model.add_callback("on_train_start", lambda trainer: started.setdefault("t", time.time()))
model.train(
    data=spec["data"], device="cpu", workers=0, pretrained=False, amp=False, plots=False,
    project=spec["project"], name=spec["name"], exist_ok=True, **spec["hyper"])
print(json.dumps({"launched": launched, "train_start": started["t"], "train_end": time.time()}))
"""


@dataclass
class Run:
    """One training's wall-clock phases, in seconds."""

    total: float
    queue: float  # created -> job process started ((a): 0)
    startup: float  # process start -> training loop starts
    epochs: list[float]  # per-epoch durations (results.csv)
    end: float  # last epoch done -> finished
    load: float  # 1-minute load average when the run ended
    map50: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


def load_average() -> float:
    return os.getloadavg()[0]


def epoch_times(results_csv: str) -> list[float]:
    """Ultralytics' results.csv `time` column: seconds since the training loop started."""
    rows = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(io.StringIO(results_csv))]
    return [float(r["time"]) for r in rows]


def durations(times: list[float]) -> list[float]:
    return [times[0]] + [b - a for a, b in zip(times, times[1:], strict=False)]


def map50_of(results_csv: str) -> float | None:
    rows = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(io.StringIO(results_csv))]
    value = rows[-1].get("metrics/mAP50(B)") if rows else None
    return float(value) if value else None


def utc_seconds(stamp: str) -> float:
    """An API or log timestamp (naive means UTC) as epoch seconds."""
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class JobWatch:
    """Finds the job process of (b) (a child of the trainer) and samples its threads' CPU time
    from /proc; with `profile_dir`, records it with py-spy as well."""

    def __init__(self, profile_dir: Path | None, name: str, scratch: Path) -> None:
        self.profile_dir = profile_dir
        self.scratch = str(scratch).encode()  # only this stack's job, not another one's
        self.name = name
        self.threads: dict[str, float] = {}
        self.process_cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _find(self) -> int | None:
        """A job process of this stack: started for its job, or warm and handed it (its
        command line names no spec then, but it runs in the stack's scratch folder)."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                cwd = os.readlink(entry / "cwd").encode()
            except OSError:
                continue
            if b"trainer_runner.job" in cmdline and cwd.startswith(self.scratch):
                return int(entry.name)
        return None

    def _sample(self, pid: int) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        threads: dict[str, float] = {}
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
            threads[f"{comm}/{task.name}"] = cpu
        if threads:
            self.threads = threads
            self.process_cpu = sum(threads.values())

    def _run(self) -> None:
        pid = None
        while pid is None and not self._stop.wait(0.2):
            pid = self._find()
        if pid is None:
            return
        spy = None
        if self.profile_dir is not None:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            py_spy = Path(sys.executable).parent / "py-spy"
            out = self.profile_dir / f"{self.name}.txt"
            spy = subprocess.Popen(
                [str(py_spy), "record", "--nonblocking", "--pid", str(pid), "--threads", "--idle"]
                + ["--format", "raw"]
                + ["--rate", "50", "-o", str(out)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        while not self._stop.is_set() and Path(f"/proc/{pid}").exists():
            try:
                self._sample(pid)
            except OSError:
                break
            self._stop.wait(0.5)
        if spy is not None:
            spy.wait(30)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(40)


def process_tree_cpu(root_pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of every live descendant of `root_pid`, by a short name."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    stats: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        words = [a.decode(errors="replace") for a in argv if a]
        name = next(
            (w.split("/")[-1] for w in words[1:] if not w.startswith("-")), words[0] if words else "?"
        )
        if "-m" in words:
            name = words[words.index("-m") + 1]
        stats[pid] = (f"{name}[{pid}]", (int(fields[11]) + int(fields[12])) / tick)

    def under_root(pid: int) -> bool:
        while pid > 1:
            if pid == root_pid:
                return True
            pid = parents.get(pid, 0)
        return False

    return {name: cpu for pid, (name, cpu) in stats.items() if under_root(pid)}


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so `kill` stops the stack too (the `finally` below)


def settle(root_pid: int, idle_share: float = 0.1, window_s: float = 2.0, limit_s: float = 90.0) -> float:
    """Wait until the stack is idle (its processes together under `idle_share` of a core over
    `window_s`): the finished job's process exiting, the next warm job process done importing.
    Otherwise that work would land on the next run, whichever it is. Returns the seconds waited."""
    started = time.monotonic()
    before = sum(process_tree_cpu(root_pid).values())
    while time.monotonic() - started < limit_s:
        time.sleep(window_s)
        now = sum(process_tree_cpu(root_pid).values())
        if now - before < idle_share * window_s:
            break
        before = now
    return time.monotonic() - started


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupted)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--model", default="yolo11n.yaml")
    parser.add_argument("--repeat", type=int, default=1, help="alternate (a) and (b) N times")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy output folder for (b)")
    parser.add_argument("--platform-only", action="store_true", help="skip (a): for profiling")
    parser.add_argument(
        "--hyper",
        default="{}",
        help="extra JSON hyperparameters for both runs, e.g. '{\"plots\": true}'",
    )
    args = parser.parse_args()

    import boto3
    from botocore.config import Config

    from trainer_runner.dataset import prepare_dataset
    from trainer_runner.settings import TrainerSettings
    from trainer_runner.storage import parse_s3_uri

    hyper = {"epochs": args.epochs, "imgsz": args.imgsz, "batch": 16, "seed": 0, "mosaic": 0.0}
    hyper.update(json.loads(args.hyper))
    base = Path(tempfile.mkdtemp(prefix="vtp-platform-bench-"))
    # As `make up`: no test settings (the stack's heartbeat interval etc. stay at their defaults).
    # As `make up`: the test fixture's settings go back to the defaults (5-second heartbeat,
    # no e-mail).
    stack = StackProcess(
        data_dir=base / "data",
        trainer_dir=base / "trainer",
        log_path=base / "stack.log",
        extra_env={
            "VTP_HEARTBEAT_INTERVAL_S": "5",
            "VTP_SMTP_HOST": "",
            "VTP_SMTP_STARTTLS": "true",
            "VTP_NOTIFY_RETRY_BASE_S": "10",
        },
    )
    print(f"stack starting (load {load_average():.2f}); logs in {base}", flush=True)
    stack.start()
    try:
        api = Api(stack.api_url, stack.username, stack.password)
        project_id = api.project_id()
        version = next(v for v in api.datasets(project_id) if v["name"] == "shapes (sample)")
        version_id, dataset_uri = version["id"], version["uri"]
        from services.infra.settings import Settings

        settings = Settings()
        s3 = boto3.client(
            "s3",
            endpoint_url=stack.s3_url,
            aws_access_key_id=settings.s3_access_key,
            aws_secret_access_key=settings.s3_secret_key,
            region_name=settings.s3_region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        local = prepare_dataset(s3, parse_s3_uri(dataset_uri), base / "direct-data", "detect")
        # The job's thread setting: TRAINER_TORCH_THREADS as the stack passes it (0 = every core).
        threads = TrainerSettings().resolved_torch_threads()
        print(f"dataset {dataset_uri} ({local.counts}), torch threads {threads}", flush=True)

        def direct(i: int) -> Run:
            spec = {
                "config_dir": str(base / "ucfg"),
                "threads": threads,
                "model": args.model,
                "hyper": hyper,
                "data": str(local.data_yaml),
                "project": str(base / "runs"),
                "name": f"direct-{i}",
            }
            before = time.time()
            done = subprocess.run(
                [sys.executable, "-c", DIRECT, json.dumps(spec)],
                check=True,
                cwd=base,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                capture_output=True,
                text=True,
            )
            marks = json.loads(done.stdout.strip().splitlines()[-1])
            body = (base / "runs" / f"direct-{i}" / "results.csv").read_text()
            times = epoch_times(body)
            start, train_start, end = before, marks["train_start"], marks["train_end"]
            return Run(
                total=end - start,
                queue=0.0,
                startup=train_start - start,
                epochs=durations(times),
                end=end - (train_start + times[-1]),
                load=load_average(),
                map50=map50_of(body),
            )

        def platform(i: int) -> Run:
            watch = JobWatch(args.profile, f"job-{i}", stack.trainer_dir)
            assert stack.process is not None
            stack_before = process_tree_cpu(stack.process.pid)
            body = {"dataset_version_id": version_id, "model": args.model, "hyperparameters": hyper}
            job = api.http.post(f"/projects/{project_id}/jobs", json=body).raise_for_status().json()
            job = api.wait_finished(project_id, job["id"], timeout_s=3600)
            stack_after = process_tree_cpu(stack.process.pid)
            watch.stop()
            if job["state"] != "succeeded":
                raise RuntimeError(f"job {job['id']} {job['state']}: {job.get('error_message')}")
            created, finished = utc_seconds(job["created_at"]), utc_seconds(job["finished_at"])
            log_lines = _read(s3, job["artifacts"]["log"]).splitlines()
            entries = [json.loads(line) for line in log_lines if line.startswith("{")]
            process_start = next(utc_seconds(e["ts"]) for e in entries if e["message"] == "job started")
            first_epoch = next(
                utc_seconds(e["ts"])
                for e in entries
                if e["message"] == "epoch finished" and e.get("epoch") == 0
            )
            results = _read(s3, job["artifacts"]["results_csv"])
            times = epoch_times(results)
            train_start = first_epoch - times[0]
            run = Run(
                total=finished - created,
                queue=process_start - created,
                startup=train_start - process_start,
                epochs=durations(times),
                end=finished - (train_start + times[-1]),
                load=load_average(),
                map50=map50_of(results),
            )
            run.extra = {"job_process_cpu_s": watch.process_cpu}
            # Everything else of the stack while the job ran (the job process itself excluded).
            others = {
                name: stack_after[name] - stack_before.get(name, 0.0)
                for name in stack_after
                if "trainer_runner.job" not in name
            }
            run.extra["stack_cpu_s"] = sum(others.values())
            print(f"  stack services' CPU during the job: {run.extra['stack_cpu_s']:.1f} s")
            for name, cpu in sorted(others.items(), key=lambda kv: -kv[1])[:8]:
                print(f"    {name:40s} {cpu:7.2f} s")
            if watch.threads:
                print("  job process CPU by thread (s):")
                for name, cpu in sorted(watch.threads.items(), key=lambda kv: -kv[1])[:12]:
                    print(f"    {name:32s} {cpu:8.2f}")
            return run

        if args.platform_only:
            for i in range(args.repeat):
                assert stack.process is not None
                settle(stack.process.pid)
                run = platform(i)
                print(
                    f"platform run {i}: total {run.total:.2f} s, queue {run.queue:.2f} s, start-up "
                    f"{run.startup:.2f} s, epochs {sum(run.epochs):.2f} s (median "
                    f"{statistics.median(run.epochs):.3f} s), end {run.end:.2f} s, load {run.load:.2f}"
                )
            return 0
        assert stack.process is not None
        pairs: list[tuple[Run, Run]] = []
        for i in range(args.repeat):
            settle(stack.process.pid)
            a = direct(i)
            settle(stack.process.pid)
            b = platform(i)
            pairs.append((a, b))
            report(i, a, b)
        ratios = [b.total / a.total for a, b in pairs]
        print(f"\nconfig: {args.model}, hyperparameters {hyper}, threads {threads}, {os.cpu_count()} cores")
        print(f"ratios b/a: {', '.join(f'{r:.3f}' for r in ratios)}")
        med_a = statistics.median(a.total for a, _ in pairs)
        med_b = statistics.median(b.total for _, b in pairs)
        print(f"direct totals  : {', '.join(f'{a.total:.1f}' for a, _ in pairs)} s (median {med_a:.1f})")
        print(f"platform totals: {', '.join(f'{b.total:.1f}' for _, b in pairs)} s (median {med_b:.1f})")
        print(f"median ratio b/a: {statistics.median(ratios):.3f}  (median over median {med_b / med_a:.3f})")
        loads = ", ".join(f"{r.load:.2f}" for p in pairs for r in p)
        print(f"load average (1 min) at the end of each run (a, b, a, b, ...): {loads}")
    finally:
        stack.stop()
    return 0


def _read(s3: object, uri: str) -> str:
    from trainer_runner.storage import parse_s3_uri

    where = parse_s3_uri(uri)
    return s3.get_object(Bucket=where.bucket, Key=where.key)["Body"].read().decode()  # type: ignore[attr-defined]


def report(i: int, a: Run, b: Run) -> None:
    med_a, med_b = statistics.median(a.epochs), statistics.median(b.epochs)
    print(f"\nrun {i}: {len(a.epochs)} epochs             direct     platform   difference")
    for name, x, y in (
        ("queue -> start", a.queue, b.queue),
        ("start-up (to first epoch)", a.startup, b.startup),
        ("epochs (sum)", sum(a.epochs), sum(b.epochs)),
        ("end (after the last epoch)", a.end, b.end),
        ("total", a.total, b.total),
    ):
        print(f"  {name:27s} {x:8.2f} s {y:10.2f} s {y - x:+10.2f} s")
    print(f"  median epoch                {med_a:8.3f} s {med_b:10.3f} s   x{med_b / med_a:.3f}")
    nan = float("nan")
    map_a, map_b = nan if a.map50 is None else a.map50, nan if b.map50 is None else b.map50
    print(f"  map50 (last epoch)          {map_a:8.4f}   {map_b:10.4f}")
    if b.extra:
        print(f"  job process CPU             {'':8s}   {b.extra['job_process_cpu_s']:10.1f} s")
        print(f"  other stack processes' CPU  {'':8s}   {b.extra['stack_cpu_s']:10.1f} s")
    print(
        f"  ratio b/a {b.total / a.total:.3f}   load average (1 min) {a.load:.2f} / {b.load:.2f}", flush=True
    )


if __name__ == "__main__":
    sys.exit(main())
