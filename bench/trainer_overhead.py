"""Overhead of trainer_runner over plain Ultralytics (not a timed test).

Trains the same model on the same data, each time in a fresh process:
  (a) directly: `YOLO(model).train(...)` on a local copy of the dataset;
  (b) through trainer_runner: HTTP start, dataset download from S3 (nanio), signed callbacks
      to a receiver, per-epoch validation JSON uploaded, last.pt uploaded as the trainer does
      (at most every TRAINER_CHECKPOINT_INTERVAL_S, `--checkpoint-interval`), MLflow logging
      to an MLflow server (as the platform runs it), sample predictions at the end.
and prints both wall times, where the difference goes (start-up before the first epoch, the
epochs, the wind-down after the last one) and the ratio b/a. `--repeat N` alternates (a) and
(b) N times and also prints the median ratio. (a) ends when `train()` returns, (b) when the
`finished` callback arrives. Usage:

    python bench/trainer_overhead.py --epochs 90 --images 64 --imgsz 160
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DIRECT = """
import json, os, sys, time
from pathlib import Path
from trainer_runner.plugins.yolo import import_ultralytics
spec = json.loads(sys.argv[1])
YOLO = import_ultralytics(Path(spec["config_dir"]), os.cpu_count() or 1)
model = YOLO(spec["model"], task="detect")
started = {}
model.add_callback("on_train_start", lambda trainer: started.setdefault("t", time.time()))
model.train(
    data=spec["data"], device="cpu", workers=0, pretrained=False, amp=False, plots=False,
    project=spec["project"], name=spec["name"], exist_ok=True, **spec["hyper"])
print(json.dumps({"train_start": started["t"], "train_end": time.time()}))
"""


@dataclass
class Run:
    """One training's wall-clock phases, in seconds."""

    total: float
    startup: float  # launch -> training loop starts (process, imports, dataset, setup)
    epochs: list[float]  # per-epoch durations from the run's results.csv
    training: float  # training loop start -> last epoch done

    @property
    def winddown(self) -> float:
        return self.total - self.startup - self.training


def epoch_times(results_csv: str) -> list[float]:
    """Ultralytics' results.csv `time` column: seconds since the training loop started."""
    rows = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(io.StringIO(results_csv))]
    return [float(r["time"]) for r in rows]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--images", type=int, default=64, help="training images (+1/4 for val)")
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--model", default="yolo11n.yaml")
    parser.add_argument("--repeat", type=int, default=1, help="alternate (a) and (b) N times")
    parser.add_argument(
        "--checkpoint-interval",
        type=float,
        default=None,
        help="TRAINER_CHECKPOINT_INTERVAL_S for (b) (default: the trainer's own, 60 s)",
    )
    args = parser.parse_args()

    import boto3
    import httpx
    from botocore.config import Config

    from trainer_runner import standin
    from trainer_runner.dataset import prepare_dataset
    from trainer_runner.storage import S3Uri

    hyper = {"epochs": args.epochs, "imgsz": args.imgsz, "batch": 16, "seed": 0, "mosaic": 0.0}
    base = Path(tempfile.mkdtemp(prefix="vtp-bench-"))
    s3_port, trainer_port, mlflow_port = (standin.free_port() for _ in range(3))
    s3_url, mlflow_url = f"http://127.0.0.1:{s3_port}", f"http://127.0.0.1:{mlflow_port}"
    creds = {"NANIO_ACCESS_KEY": standin.ACCESS_KEY, "NANIO_SECRET_KEY": standin.SECRET_KEY}
    bin_dir = Path(sys.executable).parent
    nanio_args = [str(bin_dir / "nanio"), "serve", "--data-dir", str(base / "s3")]
    nanio_args += ["--host", "127.0.0.1", "--port", str(s3_port), "--no-access-log"]
    nanio_args += ["--log-level", "warning"]
    mlflow_args = [str(bin_dir / "mlflow"), "server", "--backend-store-uri"]
    mlflow_args += [f"sqlite:///{base / 'mlflow.db'}", "--artifacts-destination"]
    mlflow_args += [f"s3://{standin.BUCKET}/mlflow", "--host", "127.0.0.1"]
    mlflow_args += ["--port", str(mlflow_port), "--workers", "1"]
    mlflow_env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": standin.ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": standin.SECRET_KEY,
        "MLFLOW_S3_ENDPOINT_URL": s3_url,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    trainer_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TRAINER_PORT": str(trainer_port),
        "TRAINER_SCRATCH_DIR": str(base / "scratch"),
        "TRAINER_S3_ENDPOINT_URL": s3_url,
        "TRAINER_S3_ACCESS_KEY": standin.ACCESS_KEY,
        "TRAINER_S3_SECRET_KEY": standin.SECRET_KEY,
        "TRAINER_MLFLOW_TRACKING_URI": mlflow_url,
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    if args.checkpoint_interval is not None:
        trainer_env["TRAINER_CHECKPOINT_INTERVAL_S"] = str(args.checkpoint_interval)
    receiver = standin.Receiver()
    with (
        standin._process(nanio_args, {**os.environ, **creds}, base / "nanio.log") as s3_process,
        standin._process(mlflow_args, mlflow_env, base / "mlflow.log") as mlflow_process,
        standin._process([sys.executable, "-m", "trainer_runner"], trainer_env, base / "trainer.log"),
    ):
        standin._wait(lambda: standin._port_open(s3_port) or s3_process.poll() is not None, 30, "s3")
        s3 = boto3.client(
            "s3",
            endpoint_url=s3_url,
            aws_access_key_id=standin.ACCESS_KEY,
            aws_secret_access_key=standin.SECRET_KEY,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        s3.create_bucket(Bucket=standin.BUCKET)
        manifest, archive = standin.synthetic_dataset(
            "detect", n_train=args.images, n_val=max(1, args.images // 4), size=args.imgsz
        )
        s3.put_object(Bucket=standin.BUCKET, Key="dataset/raw/upload.zip", Body=archive)
        s3.put_object(Bucket=standin.BUCKET, Key="dataset/manifest.json", Body=json.dumps(manifest))
        local = prepare_dataset(s3, S3Uri(standin.BUCKET, "dataset/"), base / "direct", "detect")
        client = httpx.Client(base_url=f"http://127.0.0.1:{trainer_port}", timeout=30)
        standin._wait(lambda: standin._port_open(trainer_port), 60, "trainer")
        standin._wait(
            lambda: mlflow_process.poll() is not None or standin._port_open(mlflow_port), 120, "mlflow"
        )

        def direct(i: int) -> Run:
            """(a) plain Ultralytics, fresh process, same data and settings."""
            spec = {
                "config_dir": str(base / "ucfg"),
                "model": args.model,
                "hyper": hyper,
                "data": str(local.data_yaml),
                "project": str(base / "runs"),
                "name": f"direct-{i}",
            }
            launched = time.time()
            done = subprocess.run(
                [sys.executable, "-c", DIRECT, json.dumps(spec)],
                check=True,
                cwd=base,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                capture_output=True,
                text=True,
            )
            # The end is when train() returns (results stored), not the interpreter's exit,
            # as (b) ends when the `finished` callback arrives, before the job process exits.
            marks = json.loads(done.stdout.strip().splitlines()[-1])
            train_start, ended = marks["train_start"], marks["train_end"]
            times = epoch_times((base / "runs" / f"direct-{i}" / "results.csv").read_text())
            return Run(ended - launched, train_start - launched, _durations(times), times[-1])

        def runner(i: int) -> tuple[Run, dict]:
            """(b) the same through trainer_runner."""
            job_id = f"bench-{i}"
            request = {
                "job_id": job_id,
                "framework": "ultralytics",
                "task": "detect",
                "model": args.model,
                "hyperparameters": hyper,
                "device": "cpu",
                "dataset_uri": f"s3://{standin.BUCKET}/dataset/",
                "output_uri": f"s3://{standin.BUCKET}/jobs/{job_id}/",
                "callback_url": receiver.url,
                "callback_secret": standin.CALLBACK_SECRET,
                "mlflow_experiment": "bench",
                "heartbeat_interval_s": 5.0,
            }
            launched = time.time()
            assert client.post("/jobs", json=request).status_code == 202
            standin._wait(lambda: _event(receiver, job_id, "finished") is not None, 3600, job_id)
            finished, ended = _event(receiver, job_id, "finished")  # type: ignore[misc]
            key = f"jobs/{job_id}/artifacts/results.csv"
            body = s3.get_object(Bucket=standin.BUCKET, Key=key)["Body"].read().decode()
            times = epoch_times(body)
            # The first epoch's callback arrives a few ms after that epoch ends.
            _, first_epoch_at = _event(receiver, job_id, "epoch")  # type: ignore[misc]
            train_start = first_epoch_at - times[0]
            run = Run(ended - launched, train_start - launched, _durations(times), times[-1])
            return run, finished

        pairs: list[tuple[Run, Run]] = []
        for i in range(args.repeat):
            a = direct(i)
            b, finished = runner(i)
            if finished.get("state") != "succeeded":
                print(f"job {i} ended {finished.get('state')}: {finished.get('error')}")
                return 1
            pairs.append((a, b))
            _report(i, a, b, finished)
        client.close()
    receiver.server.shutdown()
    if args.repeat > 1:
        ratios = [b.total / a.total for a, b in pairs]
        print(f"ratios b/a: {', '.join(f'{r:.3f}' for r in ratios)}")
        print(f"median ratio b/a   : {statistics.median(ratios):8.3f}")
    return 0


def _durations(times: list[float]) -> list[float]:
    return [times[0]] + [b - a for a, b in zip(times, times[1:], strict=False)]


def _event(receiver: object, job_id: str, kind: str) -> tuple[dict, float] | None:
    """First event of `kind` for the job, with its arrival time."""
    for event, at in zip(receiver.events, receiver.received_at, strict=False):  # type: ignore[attr-defined]
        if event["job_id"] == job_id and event["type"] == kind:
            return event, at
    return None


def _report(i: int, a: Run, b: Run, finished: dict) -> None:
    med_a, med_b = statistics.median(a.epochs), statistics.median(b.epochs)
    print(f"\nrun {i}: {len(a.epochs)} epochs        direct   trainer_runner   difference")
    for name, x, y in (
        ("start-up (to first epoch)", a.startup, b.startup),
        ("epochs", a.training, b.training),
        ("wind-down (after last)", a.winddown, b.winddown),
        ("total", a.total, b.total),
    ):
        print(f"  {name:26s} {x:8.2f} s {y:10.2f} s {y - x:+10.2f} s")
    print(f"  median epoch               {med_a:8.3f} s {med_b:10.3f} s   x{med_b / med_a:.3f}")
    tracking = finished.get("tracking") or {}
    print(
        f"  state {finished.get('state')}, mlflow run {finished.get('mlflow_run_id')}, "
        f"tracking complete {tracking.get('complete')}, map50 "
        f"{(finished.get('metrics') or {}).get('map50', float('nan')):.3f}"
    )
    print(f"ratio b/a          : {b.total / a.total:8.3f}")


if __name__ == "__main__":
    sys.exit(main())
