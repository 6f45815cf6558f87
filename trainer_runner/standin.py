"""Stand-in backend: run one training against a plugin without the rest of the platform.

    python -m trainer_runner.standin --plugin mypkg.myplugin:MyPlugin [--task T --model M]

It starts a local S3 server (nanio) with a synthetic dataset, a callback receiver that checks
signatures like the backend does, and the real trainer service with your plugin registered
(`TRAINER_PLUGINS`); then it starts one job, prints every callback and the objects written,
and exits 0 when the job succeeded.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from trainer_runner.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_ok

ACCESS_KEY = "standin-access"
SECRET_KEY = "standin-secret-key"
BUCKET = "standin"
CALLBACK_SECRET = "standin-callback-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def synthetic_dataset(
    task: str, n_train: int = 24, n_val: int = 8, size: int = 64
) -> tuple[dict[str, Any], bytes]:
    """(manifest, zip bytes): ellipses (class 0) and rectangles (class 1) on noise."""
    from PIL import Image, ImageDraw

    rng = random.Random(0)
    archive, images = io.BytesIO(), []
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(n_train + n_val):
            image = Image.new("RGB", (size, size), tuple(rng.randint(0, 60) for _ in range(3)))
            pen = ImageDraw.Draw(image)
            labels: list[list[float]] = []
            cls = i % 2
            for _ in range(1 if task == "classify" else rng.randint(1, 2)):
                cls = cls if task == "classify" else rng.randint(0, 1)
                w, h = rng.randint(size // 4, size // 2), rng.randint(size // 4, size // 2)
                x0, y0 = rng.randint(0, size - w - 1), rng.randint(0, size - h - 1)
                colour = tuple(rng.randint(150, 255) for _ in range(3))
                (pen.ellipse if cls == 0 else pen.rectangle)((x0, y0, x0 + w, y0 + h), fill=colour)
                if task == "detect":
                    labels.append([cls, (x0 + w / 2) / size, (y0 + h / 2) / size, w / size, h / size])
                elif task == "segment":
                    pts = (
                        [
                            (x0 + w / 2 * (1 + math.cos(a)), y0 + h / 2 * (1 + math.sin(a)))
                            for a in (k * math.pi / 8 for k in range(16))
                        ]
                        if cls == 0
                        else [(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)]
                    )
                    labels.append([cls] + [min(max(v / size, 0.0), 1.0) for p in pts for v in p])
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            path = f"images/{i:04d}.png"
            zf.writestr(path, buf.getvalue())
            entry: dict[str, Any] = {
                "path": path,
                "split": "train" if i < n_train else "val",
                "sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
                "labels": labels,
            }
            if task == "classify":
                entry["label"] = cls
            images.append(entry)
    manifest = {
        "format": "yolo",
        "task": task,
        "classes": ["circle", "square"],
        "archive": "raw/upload.zip",
        "images": images,
    }
    return manifest, archive.getvalue()


@contextmanager
def _process(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[Any]:
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(args, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Receiver:
    """The backend's side of callbacks: verify the signature, record, answer 200 (or 401)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.received_at: list[float] = []  # time.time() of each event's arrival (benchmarks)
        self.bad_signatures = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/callbacks"
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ok = signature_ok(
                    CALLBACK_SECRET,
                    self.headers.get(TIMESTAMP_HEADER),
                    self.headers.get(SIGNATURE_HEADER),
                    body,
                )
                if ok:
                    event = json.loads(body)
                    receiver.received_at.append(time.time())
                    receiver.events.append(event)
                    _print_event(event)
                else:
                    receiver.bad_signatures += 1
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def finished(self) -> dict[str, Any] | None:
        return next((e for e in self.events if e["type"] == "finished"), None)


def _print_event(event: dict[str, Any]) -> None:
    kind = event["type"]
    if kind == "heartbeat":
        return
    line = f"[callback] {kind:8s} state={event['state']}"
    if event.get("epoch") is not None:
        line += f" epoch={event['epoch']}"
    if event.get("metrics"):
        shown = ", ".join(f"{k}={v:.4g}" for k, v in list(event["metrics"].items())[:6])
        line += f" metrics: {shown}"
    if event.get("error"):
        line += f" error: {event['error']}"
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugin", default="", help="module:Class of the plugin under test")
    parser.add_argument("--framework", help="framework name (default: the plugin's name)")
    parser.add_argument("--task", help="default: the plugin's first task")
    parser.add_argument("--model", help="default: the task's first model")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--hyperparameters", default="{}", help="extra JSON hyperparameters")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--keep", type=Path, help="keep the bucket and logs in this folder")
    args = parser.parse_args(argv)

    from trainer_runner.plugins import PLUGINS, load_plugin

    plugin = load_plugin(args.plugin) if args.plugin else PLUGINS["ultralytics"]
    framework = args.framework or plugin.name
    task = args.task or next(iter(plugin.spec.tasks))
    model = args.model or plugin.spec.tasks[task][0]
    hyper = {"epochs": args.epochs, "imgsz": args.imgsz, **json.loads(args.hyperparameters)}

    base = args.keep or Path(tempfile.mkdtemp(prefix="vtp-standin-"))
    base.mkdir(parents=True, exist_ok=True)
    nanio = shutil.which("nanio") or str(Path(sys.executable).parent / "nanio")
    s3_port, trainer_port = free_port(), free_port()
    env = {**os.environ, "NANIO_ACCESS_KEY": ACCESS_KEY, "NANIO_SECRET_KEY": SECRET_KEY}
    nanio_args = [nanio, "serve", "--data-dir", str(base / "s3"), "--host", "127.0.0.1"]
    nanio_args += ["--port", str(s3_port), "--no-access-log", "--log-level", "warning"]
    trainer_env = {
        **os.environ,
        "TRAINER_HOST": "127.0.0.1",
        "TRAINER_PORT": str(trainer_port),
        "TRAINER_SCRATCH_DIR": str(base / "scratch"),
        "TRAINER_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "TRAINER_S3_ACCESS_KEY": ACCESS_KEY,
        "TRAINER_S3_SECRET_KEY": SECRET_KEY,
        "TRAINER_MLFLOW_TRACKING_URI": "",
        "TRAINER_PLUGINS": args.plugin,
    }
    print(f"[standin] working folder {base}", flush=True)
    receiver = Receiver()
    with (
        _process(nanio_args, env, base / "nanio.log") as s3_process,
        _process([sys.executable, "-m", "trainer_runner"], trainer_env, base / "trainer.log") as trainer,
    ):
        _wait(lambda: _port_open(s3_port) or s3_process.poll() is not None, 30, "nanio")
        import boto3
        import httpx
        from botocore.config import Config

        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{s3_port}",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        s3.create_bucket(Bucket=BUCKET)
        manifest, archive = synthetic_dataset(task)
        s3.put_object(Bucket=BUCKET, Key="dataset/raw/upload.zip", Body=archive)
        s3.put_object(Bucket=BUCKET, Key="dataset/manifest.json", Body=json.dumps(manifest))
        client = httpx.Client(base_url=f"http://127.0.0.1:{trainer_port}", timeout=30)

        def healthy() -> bool:
            if trainer.poll() is not None:
                raise RuntimeError((base / "trainer.log").read_text()[-3000:])
            try:
                return client.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False

        _wait(healthy, 60, "the trainer")
        request = {
            "job_id": "standin-1",
            "framework": framework,
            "task": task,
            "model": model,
            "hyperparameters": hyper,
            "device": "auto",
            "dataset_uri": f"s3://{BUCKET}/dataset/",
            "output_uri": f"s3://{BUCKET}/jobs/standin-1/",
            "callback_url": receiver.url,
            "callback_secret": CALLBACK_SECRET,
            "heartbeat_interval_s": 2.0,
        }
        print(f"[standin] POST /jobs {framework}/{task}/{model} {hyper}", flush=True)
        response = client.post("/jobs", json=request)
        if response.status_code != 202:
            print(f"[standin] trainer refused the job: {response.status_code} {response.text}")
            return 1
        _wait(lambda: receiver.finished() is not None, args.timeout, "the job to finish")
        finished = receiver.finished() or {}
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="jobs/")
        keys = sorted(o["Key"] for page in pages for o in page.get("Contents", []))
        print("[standin] objects written:", *keys, sep="\n  ", flush=True)
        print(f"[standin] job {finished.get('state')}; trainer log: {base / 'trainer.log'}")
        if receiver.bad_signatures:
            print(f"[standin] {receiver.bad_signatures} callback(s) had a bad signature")
            return 1
        client.close()
    receiver.server.shutdown()
    if args.keep is None and finished.get("state") == "succeeded":
        shutil.rmtree(base, ignore_errors=True)
    return 0 if finished.get("state") == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
