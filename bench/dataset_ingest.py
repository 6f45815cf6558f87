"""Dataset ingest throughput against a real S3 server (nanio), in one run:

1. ingest: `services.domain.datasets.ingest_zip` on a YOLO zip of N small images (every image decoded
   and hashed, every label checked, archive + manifest + stats + report stored, rows committed);
2. plain boto3, same files: each image and label file put one by one (8 threads), as a sync
   tool would store the extracted dataset;
3. plain boto3, same bytes: the zip itself as one object (the floor: no validation at all).

Prints seconds, images/s, the ratio ingest/plain (target >= 0.8 against the per-file upload) and
the peak RSS of this process during ingest. With --large-mb it also uploads a generated
incompressible zip of that size through a real uvicorn API process and prints its peak RSS.

    .venv/bin/python bench/dataset_ingest.py --images 3000 [--large-mb 2048]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.utils import servers  # noqa: E402


def _peak_rss_during(fn):  # type: ignore[no-untyped-def]
    process = psutil.Process()
    peak = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        result = fn()
    finally:
        done.set()
        thread.join()
    return result, time.perf_counter() - start, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--large-mb", type=int, default=0, help="also measure a large upload's server RSS")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="vtp-bench-"))
    try:
        run(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, root: Path) -> None:
    with servers.nanio(root / "s3") as s3_url:
        os.environ.update(
            VTP_DATA_DIR=str(root / "data"),
            VTP_S3_ENDPOINT_URL=s3_url,
            VTP_S3_ACCESS_KEY=servers.S3_KEYS[0],
            VTP_S3_SECRET_KEY=servers.S3_KEYS[1],
        )
        from services.domain import auth, projects
        from services.domain.datasets import ingest_zip
        from services.infra import storage
        from services.infra.db import session_scope
        from services.runtime import sample_data
        from services.runtime.cli import migrate

        storage.ensure_bucket()
        migrate()
        with session_scope() as session:
            user = auth.create_user(session, username=f"b{uuid.uuid4().hex[:8]}", password="correct-horse-1")
            project = projects.create_project(session, owner=user, name="Bench")
            user_id, project_id = user.id, project.id

        train = int(args.images * 0.8)
        data = sample_data.yolo_zip(train=train, val=args.images - train, size=args.size, seed=1)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            files = {name: archive.read(name) for name in archive.namelist()}
        total_bytes = sum(len(v) for v in files.values())
        print(
            f"dataset: {args.images} images of {args.size}px, {len(files)} files, "
            f"{total_bytes / 1024**2:.1f} MiB extracted, zip {len(data) / 1024**2:.1f} MiB"
        )

        def ingest() -> int:
            with session_scope() as session:
                version, _report = ingest_zip(
                    session,
                    project_id=project_id,
                    user_id=user_id,
                    name="bench",
                    fileobj=io.BytesIO(data),
                    filename="bench.zip",
                )
                return version.num_images

        def plain_files() -> None:
            client = storage.s3_client()

            def put(item: tuple[str, bytes]) -> None:
                client.put_object(Bucket=storage.bucket(), Key="plain/" + item[0], Body=item[1])

            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(put, files.items()))

        def plain_zip() -> None:
            storage.s3_client().upload_fileobj(io.BytesIO(data), storage.bucket(), "plainzip/bench.zip")

        ingest()  # warm: imports, connection pool, first-use costs (then measure a fresh dataset)
        ingested, t_ingest, peak = _peak_rss_during(ingest)
        _, t_files, _ = _peak_rss_during(plain_files)
        _, t_zip, _ = _peak_rss_during(plain_zip)
        assert ingested == args.images

        print(f"ingest (validate + store):   {t_ingest:7.2f} s  {args.images / t_ingest:8.0f} images/s")
        print(f"plain boto3, file by file:   {t_files:7.2f} s  {args.images / t_files:8.0f} images/s")
        print(f"plain boto3, zip as 1 object:{t_zip:7.2f} s  {args.images / t_zip:8.0f} images/s")
        print(f"ratio ingest / per-file upload: {t_files / t_ingest:.2f} (target >= 0.8)")
        print(f"ratio ingest / single-object zip upload: {t_zip / t_ingest:.2f}")
        print(f"peak RSS during ingest (this process): {peak / 1024**2:.0f} MiB")

        if args.large_mb:
            from tests.datasets.factories import write_noise_imagefolder_zip
            from tests.datasets.test_upload_memory import Server, _rss

            server = Server(root)
            try:
                path = root / "large.zip"
                size = write_noise_imagefolder_zip(str(path), args.large_mb * 1024**2)
                baseline = _rss(server.process)
                start = time.perf_counter()
                with path.open("rb") as body:
                    response, server_peak = server.upload(body, "large")
                elapsed = time.perf_counter() - start
                assert response.status_code == 201, response.text[:500]
                print(
                    f"large upload {size / 1024**2:.0f} MiB through the API in {elapsed:.1f} s: "
                    f"server RSS {baseline / 1024**2:.0f} -> peak {server_peak / 1024**2:.0f} MiB"
                )
            finally:
                server.stop()


if __name__ == "__main__":
    main()
