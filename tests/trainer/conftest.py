"""Shared fixtures of the trainer tests: a real nanio S3 server, a synthetic YOLO dataset,
a signature-checking callback receiver and the trainer service as a real subprocess."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import math
import os
import random
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from PIL import Image, ImageDraw

from tests.utils.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
ACCESS_KEY = "trainer-test-access"
SECRET_KEY = "trainer-test-secret-key"
BUCKET = "vtp-test"


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- MLflow --------------------------------------------------------------------------------------


def start_mlflow_server(port: int, folder: Path) -> subprocess.Popen[bytes]:
    """A real `mlflow server` (SQLite store) on `port`; it takes a few seconds to answer."""
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--default-artifact-root",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env={
            **os.environ,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        },
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    server = start_mlflow_server(port, tmp_path_factory.mktemp("mlflow"))
    try:
        uri = f"http://127.0.0.1:{port}"
        wait_until(lambda: server.poll() is not None or _health(uri), 120, "the MLflow server", step=0.5)
        assert server.poll() is None, "the MLflow server exited at start"
        yield uri
    finally:
        _stop(server)


def _health(uri: str) -> bool:
    try:
        return httpx.get(f"{uri}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# -- object storage ------------------------------------------------------------------------------


@dataclass
class S3Server:
    endpoint: str
    client: Any
    bucket: str = BUCKET

    def keys(self, prefix: str) -> set[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real nanio S3 server on a free port with one bucket."""
    data_dir = tmp_path_factory.mktemp("nanio")
    port = free_port()
    env = {**os.environ, "NANIO_ACCESS_KEY": ACCESS_KEY, "NANIO_SECRET_KEY": SECRET_KEY}
    nanio = Path(sys.executable).parent / "nanio"
    process = subprocess.Popen(
        [
            str(nanio),
            "serve",
            "--data-dir",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
    )
    try:
        wait_until(lambda: _port_open(port) or process.poll() is not None, 30, "nanio to listen")
        assert process.poll() is None, "nanio exited at start"
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        client.create_bucket(Bucket=BUCKET)
        yield S3Server(endpoint=endpoint, client=client)
    finally:
        _stop(process)


# -- synthetic dataset ---------------------------------------------------------------------------


def _draw_image(rng: random.Random, size: int, task: str = "detect") -> tuple[bytes, list[list[float]]]:
    """A noisy background with 1-2 shapes: class 0 = ellipse, class 1 = rectangle.

    detect labels are boxes `[cls, cx, cy, w, h]`; segment labels are polygons of the shapes.
    """
    image = Image.new("RGB", (size, size), tuple(rng.randint(0, 60) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    labels: list[list[float]] = []
    for _ in range(rng.randint(1, 2)):
        cls = rng.randint(0, 1)
        w, h = rng.randint(size // 5, size // 2), rng.randint(size // 5, size // 2)
        x0, y0 = rng.randint(0, size - w - 1), rng.randint(0, size - h - 1)
        color = tuple(rng.randint(150, 255) for _ in range(3))
        box = (x0, y0, x0 + w, y0 + h)
        (draw.ellipse if cls == 0 else draw.rectangle)(box, fill=color)
        if task == "detect":
            labels.append([cls, (x0 + w / 2) / size, (y0 + h / 2) / size, w / size, h / size])
            continue
        if cls == 0:
            points = [
                (x0 + w / 2 + w / 2 * math.cos(a), y0 + h / 2 + h / 2 * math.sin(a))
                for a in (2 * math.pi * k / 16 for k in range(16))
            ]
        else:
            points = [(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)]
        labels.append([cls] + [min(max(v / size, 0.0), 1.0) for pt in points for v in pt])
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue(), labels


def upload_dataset(
    s3: S3Server, prefix: str, task: str, classes: list[str], items: list[dict[str, Any]]
) -> str:
    """Upload a dataset version (zip + manifest.json) from items `{split, data, labels|label}`."""
    images = []
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for i, item in enumerate(items):
            path = f"images/{item['split']}/{i:04d}.png"
            zf.writestr(path, item["data"])
            entry = {
                "path": path,
                "split": item["split"],
                "sha256": hashlib.sha256(item["data"]).hexdigest(),
                "labels": item.get("labels", []),
            }
            if "label" in item:
                entry["label"] = item["label"]
            images.append(entry)
    manifest = {
        "format": "yolo",
        "task": task,
        "classes": classes,
        "archive": "raw/upload.zip",
        "images": images,
    }
    prefix = prefix.rstrip("/") + "/"
    s3.client.put_object(Bucket=s3.bucket, Key=f"{prefix}raw/upload.zip", Body=archive.getvalue())
    s3.client.put_object(Bucket=s3.bucket, Key=f"{prefix}manifest.json", Body=json.dumps(manifest).encode())
    return f"s3://{s3.bucket}/{prefix}"


def upload_synthetic_dataset(
    s3: S3Server,
    prefix: str,
    n_train: int = 12,
    n_val: int = 4,
    size: int = 64,
    seed: int = 0,
    task: str = "detect",
    corrupt: int = 0,
) -> str:
    """Synthetic shapes for detect/segment; the first `corrupt` images are truncated PNGs."""
    rng = random.Random(seed)
    items = []
    for i in range(n_train + n_val):
        data, labels = _draw_image(rng, size, task)
        if i < corrupt:
            data = data[: len(data) // 2]  # a broken upload: header fine, pixel data cut off
        items.append({"split": "train" if i < n_train else "val", "data": data, "labels": labels})
    return upload_dataset(s3, prefix, task, ["circle", "square"], items)


def upload_digits_dataset(s3: S3Server, prefix: str, per_class: int = 8, size: int = 32) -> str:
    """Real handwritten digits (scikit-learn's load_digits), upscaled; 10 classes, 3 val each."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    seen: dict[int, int] = {}
    items = []
    for pixels, target in zip(digits.images, digits.target, strict=True):
        n = seen.get(int(target), 0)
        if n >= per_class + 3:
            continue
        seen[int(target)] = n + 1
        gray = Image.fromarray((pixels * 255 / 16).astype("uint8")).resize((size, size))
        buf = io.BytesIO()
        gray.convert("RGB").save(buf, format="PNG")
        split = "train" if n < per_class else "val"
        items.append({"split": split, "data": buf.getvalue(), "label": int(target)})
    return upload_dataset(s3, prefix, "classify", [str(i) for i in range(10)], items)


@pytest.fixture(scope="session")
def dataset_uri(s3_server: S3Server) -> str:
    # One corrupt image: training must skip and report it, not fail.
    return upload_synthetic_dataset(s3_server, "projects/1/datasets/1/v1", corrupt=1)


# -- callback receiver ---------------------------------------------------------------------------


@dataclass
class CallbackReceiver:
    """Records signed callbacks like the backend would; refuses bad signatures with 401."""

    url: str
    secret: str
    events: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, job_id: str, type_: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["job_id"] == job_id and (type_ is None or e["type"] == type_)]

    def wait_for(self, job_id: str, type_: str, timeout_s: float, count: int = 1) -> list[dict[str, Any]]:
        return wait_until(
            lambda: (found := self.of(job_id, type_)) and len(found) >= count and found,
            timeout_s,
            f"{count} {type_!r} callback(s) of job {job_id}",
        )


@pytest.fixture(scope="session")
def callback_receiver() -> Iterator[CallbackReceiver]:
    port = free_port()
    receiver = CallbackReceiver(url=f"http://127.0.0.1:{port}/callbacks", secret="s3cr3t-per-job")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            ts = self.headers.get("X-VTP-Timestamp", "")
            expected = hmac.new(
                receiver.secret.encode(), f"{ts}.".encode() + body, hashlib.sha256
            ).hexdigest()
            ok = hmac.compare_digest(expected, self.headers.get("X-VTP-Signature", ""))
            ok = ok and ts.isdigit() and abs(time.time() - int(ts)) < 300
            with receiver.lock:
                if ok:
                    receiver.events.append(json.loads(body))
                else:
                    receiver.bad_signatures += 1
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


# -- the trainer service -------------------------------------------------------------------------


@dataclass
class TrainerService:
    url: str
    client: httpx.Client
    scratch: Path
    log_path: Path

    def job_request(
        self, job_id: str, dataset_uri: str, receiver: CallbackReceiver, **overrides: Any
    ) -> dict[str, Any]:
        """A protocol-v1 start request for a tiny, fast training."""
        request = {
            "job_id": job_id,
            "attempt": 1,
            "framework": "ultralytics",
            "task": "detect",
            "model": "yolo11n.yaml",
            "hyperparameters": {"epochs": 2, "imgsz": 64, "batch": 8, "seed": 0, "mosaic": 0.0},
            "device": "cpu",
            "dataset_uri": dataset_uri,
            "output_uri": f"s3://{BUCKET}/projects/1/jobs/{job_id}/",
            "resume_from_uri": None,
            "callback_url": receiver.url,
            "callback_secret": receiver.secret,
            "mlflow_experiment": "project-1",
            "heartbeat_interval_s": 1.0,
        }
        request.update(overrides)
        return request


@pytest.fixture(scope="module")
def trainer_service(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server
) -> Iterator[TrainerService]:
    """`python -m trainer_runner` as a real subprocess, with its own cwd, HOME and scratch."""
    base = tmp_path_factory.mktemp("trainer")
    for name in ("home", "cwd", "scratch"):
        (base / name).mkdir()
    port = free_port()
    env = {
        **os.environ,
        "HOME": str(base / "home"),
        "PYTHONPATH": str(ROOT),
        "TRAINER_HOST": "127.0.0.1",
        "TRAINER_PORT": str(port),
        "TRAINER_SCRATCH_DIR": str(base / "scratch"),
        "TRAINER_MAX_CONCURRENT_JOBS": "1",
        "TRAINER_RETRY_AFTER_S": "7",
        "TRAINER_S3_ENDPOINT_URL": s3_server.endpoint,
        "TRAINER_S3_ACCESS_KEY": ACCESS_KEY,
        "TRAINER_S3_SECRET_KEY": SECRET_KEY,
        "TRAINER_MLFLOW_TRACKING_URI": "",
    }
    log_path = base / "trainer.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "trainer_runner"],
            cwd=base / "cwd",
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, timeout=10)

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"trainer exited:\n{log_path.read_text()[-3000:]}")
        try:
            return client.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, 30, "trainer /healthz")
        yield TrainerService(url=url, client=client, scratch=base / "scratch", log_path=log_path)
    finally:
        client.close()
        _stop(process)
