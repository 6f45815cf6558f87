"""Overhead of trainer_runner over plain Ultralytics (not a timed test).

Trains the same model on the same data twice, each in a fresh process:
  (a) directly: `YOLO(model).train(...)` on a local copy of the dataset;
  (b) through trainer_runner: HTTP start, dataset download from S3 (nanio), signed callbacks
      to a receiver, per-epoch validation JSON and checkpoints uploaded, MLflow logging
      (a SQLite tracking store), sample predictions at the end.
and prints both wall times and the ratio b/a. Usage:

    python bench/trainer_overhead.py --epochs 10 --images 64 --imgsz 160
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DIRECT = """
import json, os, sys, time
from pathlib import Path
from trainer_runner.plugins.yolo import import_ultralytics
spec = json.loads(sys.argv[1])
YOLO = import_ultralytics(Path(spec["config_dir"]), os.cpu_count() or 1)
YOLO(spec["model"], task="detect").train(
    data=spec["data"], device="cpu", workers=0, pretrained=False, amp=False, plots=False,
    project=spec["project"], name="direct", exist_ok=True, **spec["hyper"])
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--images", type=int, default=64, help="training images (+1/4 for val)")
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--model", default="yolo11n.yaml")
    args = parser.parse_args()

    import boto3
    import httpx
    from botocore.config import Config

    from trainer_runner import standin
    from trainer_runner.dataset import prepare_dataset
    from trainer_runner.storage import S3Uri

    hyper = {"epochs": args.epochs, "imgsz": args.imgsz, "batch": 16, "seed": 0, "mosaic": 0.0}
    base = Path(tempfile.mkdtemp(prefix="vtp-bench-"))
    s3_port, trainer_port = standin.free_port(), standin.free_port()
    env = {
        **os.environ,
        "NANIO_ACCESS_KEY": standin.ACCESS_KEY,
        "NANIO_SECRET_KEY": standin.SECRET_KEY,
    }
    nanio = str(Path(sys.executable).parent / "nanio")
    nanio_args = [
        nanio,
        "serve",
        "--data-dir",
        str(base / "s3"),
        "--host",
        "127.0.0.1",
        "--port",
        str(s3_port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    trainer_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TRAINER_PORT": str(trainer_port),
        "TRAINER_SCRATCH_DIR": str(base / "scratch"),
        "TRAINER_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "TRAINER_S3_ACCESS_KEY": standin.ACCESS_KEY,
        "TRAINER_S3_SECRET_KEY": standin.SECRET_KEY,
        "TRAINER_MLFLOW_TRACKING_URI": f"sqlite:///{base / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    receiver = standin.Receiver()
    with (
        standin._process(nanio_args, env, base / "nanio.log") as s3_process,
        standin._process([sys.executable, "-m", "trainer_runner"], trainer_env, base / "trainer.log"),
    ):
        standin._wait(lambda: standin._port_open(s3_port) or s3_process.poll() is not None, 30, "s3")
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{s3_port}",
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

        # (a) plain Ultralytics, fresh process, same data and settings.
        spec = {
            "config_dir": str(base / "ucfg"),
            "model": args.model,
            "hyper": hyper,
            "data": str(local.data_yaml),
            "project": str(base / "runs"),
        }
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", DIRECT, json.dumps(spec)],
            check=True,
            cwd=base,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        direct_s = time.perf_counter() - started

        # (b) the same through trainer_runner.
        client = httpx.Client(base_url=f"http://127.0.0.1:{trainer_port}", timeout=30)
        standin._wait(lambda: standin._port_open(trainer_port), 60, "trainer")
        request = {
            "job_id": "bench-1",
            "framework": "ultralytics",
            "task": "detect",
            "model": args.model,
            "hyperparameters": hyper,
            "device": "cpu",
            "dataset_uri": f"s3://{standin.BUCKET}/dataset/",
            "output_uri": f"s3://{standin.BUCKET}/jobs/bench-1/",
            "callback_url": receiver.url,
            "callback_secret": standin.CALLBACK_SECRET,
            "mlflow_experiment": "bench",
            "heartbeat_interval_s": 5.0,
        }
        started = time.perf_counter()
        assert client.post("/jobs", json=request).status_code == 202
        standin._wait(lambda: receiver.finished() is not None, 3600, "bench job")
        runner_s = time.perf_counter() - started
        finished = receiver.finished() or {}
    receiver.server.shutdown()
    print(f"direct ultralytics : {direct_s:8.1f} s")
    print(
        f"via trainer_runner : {runner_s:8.1f} s  (state {finished.get('state')}, "
        f"mlflow run {finished.get('mlflow_run_id')})"
    )
    print(f"ratio b/a          : {runner_s / direct_s:8.3f}")
    return 0 if finished.get("state") == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
