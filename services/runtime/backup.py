"""Backups and disaster recovery: `vtp backup DEST` and `vtp restore SRC`.

A backup destination is a directory (a mounted disk, a network share) laid out as:

    DEST/objects/<sha256[:2]>/<sha256>        bucket objects, stored once by content
    DEST/snapshots/<UTC time>/manifest.json   what the snapshot holds: counts and checksums
                              database.sqlite3 | database.pgdump
                              mlflow.sqlite3   MLflow's tracking store (its artifacts are in the bucket)
                              jwt_secret       the token key, when it lives in the data dir

Objects are shared by every snapshot, so a new backup copies only objects it has not seen: an
object whose key, ETag and size match the previous snapshot is not even downloaded. Each piece
is consistent on its own, and the order makes the whole usable: the database is copied first
(SQLite's online backup API, or `pg_dump`, both a single point-in-time view while the platform
keeps writing), then MLflow's store, then the bucket, so every object a copied row points to
already exists when the bucket is listed. Objects written later are copied too and are merely
unreferenced after a restore.

Redis is not backed up: it holds only the queue, which the worker rebuilds from the database.
A job that was running when the backup was taken cannot continue after a restore (its trainer
reports to the old platform); `restore` gives it a new attempt that resumes from its last
checkpoint, or fails it with the reason when its attempts are spent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from alembic.config import Config
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from alembic import command
from services.infra import storage
from services.infra.settings import Settings, get_settings
from services.runtime.stack import ROOT, Stack

FORMAT = 1
MANIFEST = "manifest.json"
CHUNK = 1024 * 1024


class BackupError(RuntimeError):
    """A backup or restore cannot go on; the message says what the operator should do."""


@dataclass
class Snapshot:
    """The result of one backup (or the snapshot a restore read), for the CLI to report."""

    path: Path
    manifest: dict[str, Any]
    copied: int = 0  # objects downloaded: new or changed since the previous snapshot
    reused: int = 0  # objects unchanged since the previous snapshot: not downloaded again
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


# --- checksums and small helpers ------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    # Sortable, and safe as a directory name on every file system.
    return moment.strftime("%Y%m%dT%H%M%S.%fZ")


def _blob_path(dest: Path, sha: str) -> Path:
    return dest / "objects" / sha[:2] / sha


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise BackupError(f"Cannot back up an in-memory SQLite database ({url})")
    return Path(parsed.database)


def sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database with its online backup API: one step, under a
    read lock, so writers wait for a moment instead of the copy seeing half a transaction."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=60)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def sqlite_counts(path: Path) -> dict[str, int]:
    """Rows per table of a SQLite file (the snapshot's own view, not the live database's)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "ORDER BY name"
            )
        ]
        return {name: int(db.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]) for name in names}
    finally:
        db.close()


def _pg_tool(name: str) -> str:
    """pg_dump / pg_restore: from PATH, else the newest server installation's."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not candidates:
        raise BackupError(f"{name} is not installed: install the PostgreSQL client tools")
    return str(candidates[-1])


def _pg_args(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URL without the password (kept out of the process list) and the env carrying it."""
    parsed = make_url(url)
    env = {**os.environ}
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{Path(argv[0]).name} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


# --- the database -----------------------------------------------------------------------------


def _backup_database(settings: Settings, snapshot: Path) -> dict[str, Any]:
    url = settings.db_url
    path = _sqlite_path(url)
    if path is not None:
        if not path.exists():
            raise BackupError(f"No database at {path}: is VTP_DATA_DIR the platform's data directory?")
        target = snapshot / "database.sqlite3"
        sqlite_copy(path, target)
        return {
            "engine": "sqlite",
            "file": target.name,
            "sha256": sha256_file(target),
            "bytes": target.stat().st_size,
            "tables": sqlite_counts(target),
        }
    from services.infra.db import get_engine

    target = snapshot / "database.pgdump"
    libpq_url, env = _pg_args(url)
    # Counts and dump see the same instant: the counting transaction exports its snapshot and
    # pg_dump reads through it while the transaction stays open.
    with get_engine().connect() as conn:
        conn.execute(text("BEGIN ISOLATION LEVEL REPEATABLE READ"))
        exported = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        tables = sorted(inspect(conn).get_table_names())
        counts = {t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()) for t in tables}
        _run(
            [
                _pg_tool("pg_dump"),
                "--format=custom",
                f"--snapshot={exported}",
                "--file",
                str(target),
                libpq_url,
            ],
            env,
        )
        conn.execute(text("COMMIT"))
    return {
        "engine": "postgresql",
        "file": target.name,
        "sha256": sha256_file(target),
        "bytes": target.stat().st_size,
        "tables": counts,
    }


def _active_jobs(snapshot: Path, database: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    """Jobs a trainer was working on at backup time (listed so an operator knows what restarts)."""
    query = "SELECT id, project_id, state, attempt FROM job WHERE state IN ('dispatching', 'running')"
    if database["engine"] == "sqlite":
        db = sqlite3.connect(f"file:{snapshot / database['file']}?mode=ro", uri=True)
        try:
            rows = db.execute(query).fetchall()
        finally:
            db.close()
    else:
        from services.infra.db import get_engine

        with get_engine().connect() as conn:
            rows = [tuple(r) for r in conn.execute(text(query))]
    return [{"id": r[0], "project_id": r[1], "state": r[2], "attempt": r[3]} for r in rows]


def _backup_mlflow(settings: Settings, snapshot: Path) -> dict[str, Any]:
    store = settings.data_dir / "mlflow" / "mlflow.db"
    if settings.mlflow_tracking_uri or not store.exists():
        return {
            "included": False,
            "reason": "MLflow's store is not in this data directory; back it up where it runs",
        }
    target = snapshot / "mlflow.sqlite3"
    sqlite_copy(store, target)
    return {
        "included": True,
        "file": target.name,
        "sha256": sha256_file(target),
        "bytes": target.stat().st_size,
        "tables": sqlite_counts(target),
    }


# --- the bucket -------------------------------------------------------------------------------


def _previous_objects(dest: Path) -> dict[tuple[str, str, int], dict[str, Any]]:
    """(key, ETag, size) -> manifest entry, from the newest complete snapshot."""
    latest = latest_snapshot(dest, required=False)
    if latest is None:
        return {}
    manifest = json.loads((latest / MANIFEST).read_text())
    return {(o["key"], o["etag"], o["size"]): o for o in manifest["bucket"]["objects"]}


def _backup_bucket(dest: Path) -> tuple[dict[str, Any], int, int]:
    client = storage.s3_client()
    bucket = storage.bucket()
    known = _previous_objects(dest)
    objects: list[dict[str, Any]] = []
    copied = reused = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            key, etag, size = item["Key"], item["ETag"].strip('"'), int(item["Size"])
            entry = known.get((key, etag, size))
            if entry is not None and _blob_path(dest, entry["sha256"]).exists():
                objects.append(entry)
                reused += 1
                continue
            try:
                entry = _copy_object(client, bucket, key, etag, dest)
            except client.exceptions.NoSuchKey:
                continue  # deleted after it was listed: nothing in the copied database needs it
            objects.append(entry)
            copied += 1
    return (
        {
            "name": bucket,
            "count": len(objects),
            "bytes": sum(o["size"] for o in objects),
            "objects": objects,
        },
        copied,
        reused,
    )


def _copy_object(client: Any, bucket: str, key: str, etag: str, dest: Path) -> dict[str, Any]:
    """Download one object, hash it, keep it by content (equal contents are stored once)."""
    response = client.get_object(Bucket=bucket, Key=key)
    digest = hashlib.sha256()
    size = 0
    (dest / "objects").mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest / "objects", delete=False, prefix=".incoming-") as out:
        for chunk in response["Body"].iter_chunks(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    sha = digest.hexdigest()
    blob = _blob_path(dest, sha)
    if blob.exists():
        os.unlink(out.name)
    else:
        blob.parent.mkdir(parents=True, exist_ok=True)
        os.replace(out.name, blob)
    content_type = response.get("ContentType") or "application/octet-stream"
    return {"key": key, "sha256": sha, "size": size, "etag": etag, "content_type": content_type}


# --- backup, prune, schedule ------------------------------------------------------------------


def snapshots(dest: Path) -> list[Path]:
    """Complete snapshots (those with a manifest), oldest first."""
    root = dest / "snapshots"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / MANIFEST).is_file())


def latest_snapshot(dest: Path, *, required: bool = True) -> Path | None:
    found = snapshots(dest)
    if not found and required:
        raise BackupError(f"No complete backup in {dest}")
    return found[-1] if found else None


def backup(dest: Path, settings: Settings | None = None) -> Snapshot:
    """Take one snapshot into `dest`; safe while the platform runs."""
    settings = settings or get_settings()
    started = _now()
    clock = time.monotonic()
    dest = dest.resolve()
    work = dest / "snapshots" / f".partial-{_stamp(started)}"
    work.mkdir(parents=True)
    try:
        database = _backup_database(settings, work)
        active = _active_jobs(work, database, settings)
        mlflow = _backup_mlflow(settings, work)
        secrets: list[str] = []
        key_file = settings.data_dir / "jwt_secret"
        if key_file.exists():
            shutil.copy2(key_file, work / "jwt_secret")
            os.chmod(work / "jwt_secret", 0o600)
            secrets.append("jwt_secret")
        with _s3_available(settings):
            bucket, copied, reused = _backup_bucket(dest)
        manifest = {
            "format": FORMAT,
            "started_at": started.isoformat(),
            "finished_at": _now().isoformat(),
            "database": database,
            "mlflow": mlflow,
            "bucket": bucket,
            "secrets": secrets,
            "active_jobs": active,
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        final = dest / "snapshots" / _stamp(started)
        os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    result = Snapshot(final, manifest, copied=copied, reused=reused, seconds=time.monotonic() - clock)
    if active:
        result.notes.append(
            f"{len(active)} job(s) were running; after a restore each resumes from its last checkpoint"
        )
    if not mlflow["included"]:
        result.notes.append(mlflow["reason"])
    return result


def prune(dest: Path, keep: int) -> list[Path]:
    """Keep the newest `keep` snapshots; drop older ones, leftovers of interrupted runs, and
    objects no kept snapshot refers to. Returns the removed snapshot directories."""
    if keep < 1:
        raise BackupError("--keep must be at least 1")
    complete = snapshots(dest)
    removed = complete[:-keep]
    newest = complete[-1].name if complete else ""
    partial = [
        p for p in (dest / "snapshots").glob(".partial-*") if p.name.removeprefix(".partial-") < newest
    ]
    for path in [*removed, *partial]:
        shutil.rmtree(path)
    referenced = {o["sha256"] for snap in snapshots(dest) for o in _manifest(snap)["bucket"]["objects"]}
    for blob in (dest / "objects").glob("*/*"):
        if blob.name not in referenced:
            blob.unlink()
    return removed


def schedule(
    dest: Path,
    *,
    every_s: float,
    keep: int,
    report: Callable[[Snapshot], None],
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Back up every `every_s` seconds, keeping the newest `keep` snapshots, until `stop()`.
    A failed run is reported and retried at the next slot; it never ends the schedule."""
    while not stop():
        began = time.monotonic()
        try:
            snap = backup(dest)
            prune(dest, keep)
            report(snap)
        except (BackupError, OSError) as exc:
            report(Snapshot(dest, {}, notes=[f"backup failed: {exc}"]))
        while not stop() and time.monotonic() - began < every_s:
            time.sleep(min(1.0, every_s))


def _manifest(snapshot: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((snapshot / MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(
            f"{snapshot} has backup format {manifest.get('format')}; this version reads {FORMAT}"
        )
    return manifest


# --- restore ----------------------------------------------------------------------------------


def resolve_snapshot(src: Path) -> tuple[Path, Path]:
    """(backup destination, snapshot): SRC is either a destination (its newest snapshot) or one
    snapshot directory inside it."""
    src = src.resolve()
    if (src / MANIFEST).is_file():
        return src.parent.parent, src
    snap = latest_snapshot(src)
    assert snap is not None
    return src, snap


def verify(src: Path) -> Snapshot:
    """Check every checksum of a snapshot without restoring anything."""
    dest, snap = resolve_snapshot(src)
    manifest = _manifest(snap)
    bad: list[str] = []
    for piece in (manifest["database"], manifest["mlflow"]):
        if piece.get("file") and sha256_file(snap / piece["file"]) != piece["sha256"]:
            bad.append(piece["file"])
    for obj in manifest["bucket"]["objects"]:
        blob = _blob_path(dest, obj["sha256"])
        if not blob.exists() or sha256_file(blob) != obj["sha256"]:
            bad.append(f"object {obj['key']}")
    if bad:
        listed = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise BackupError(f"Backup {snap} is damaged: checksum mismatch or missing file for {listed}")
    return Snapshot(snap, manifest)


def _require_empty_target(settings: Settings) -> None:
    path = _sqlite_path(settings.db_url)
    if path is not None:
        if path.exists() and sqlite_counts(path):
            raise BackupError(f"{path} already holds a database: restore into a fresh data directory")
    else:
        from services.infra.db import get_engine

        with get_engine().connect() as conn:
            if inspect(conn).get_table_names():
                raise BackupError("The target PostgreSQL database is not empty: restore into an empty one")
    store = settings.data_dir / "mlflow" / "mlflow.db"
    if store.exists():
        raise BackupError(f"{store} already exists: restore into a fresh data directory")


def _restore_database(settings: Settings, snap: Path, database: dict[str, Any]) -> None:
    path = _sqlite_path(settings.db_url)
    if (path is None) != (database["engine"] == "postgresql"):
        raise BackupError(
            f"This backup holds a {database['engine']} database but VTP_DATABASE_URL points to "
            f"{'SQLite' if path else 'PostgreSQL'}: restore into the same kind of database"
        )
    if path is not None:
        path.unlink(missing_ok=True)
        sqlite_copy(snap / database["file"], path)
        return
    libpq_url, env = _pg_args(settings.db_url)
    _run(
        [
            _pg_tool("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--dbname",
            libpq_url,
            str(snap / database["file"]),
        ],
        env,
    )


def _restore_bucket(dest: Path, objects: list[dict[str, Any]]) -> None:
    storage.ensure_bucket()
    client = storage.s3_client()
    bucket = storage.bucket()
    if client.list_objects_v2(Bucket=bucket, MaxKeys=1).get("KeyCount", 0):
        raise BackupError(f"Bucket {bucket!r} is not empty: restore into an empty bucket")
    for obj in objects:
        with _blob_path(dest, obj["sha256"]).open("rb") as handle:
            client.upload_fileobj(
                handle,
                bucket,
                obj["key"],
                ExtraArgs={"ContentType": obj["content_type"]},
                Config=storage.TRANSFER,
            )


def _check_restored(settings: Settings, manifest: dict[str, Any]) -> None:
    """Every row and object of the snapshot is in the new platform."""
    path = _sqlite_path(settings.db_url)
    if path is not None:
        counts = sqlite_counts(path)
    else:
        from services.infra.db import get_engine

        with get_engine().connect() as conn:
            counts = {
                t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one())
                for t in inspect(conn).get_table_names()
            }
    missing = {t: (n, counts.get(t)) for t, n in manifest["database"]["tables"].items() if counts.get(t) != n}
    if missing:
        raise BackupError(f"Restored database differs from the backup (table: expected, found): {missing}")
    keys = set(storage.list_keys(""))
    lost = [o["key"] for o in manifest["bucket"]["objects"] if o["key"] not in keys]
    if lost:
        raise BackupError(f"{len(lost)} object(s) missing after the restore, e.g. {lost[:3]}")


def _settle_interrupted(manifest: dict[str, Any], settings: Settings) -> list[str]:
    """Jobs that were running at backup time: a new attempt from the last checkpoint (the worker
    dispatches it once the stack is up), or failed with the reason when attempts are spent."""
    from services.domain import jobs
    from services.domain.models import Job, JobState
    from services.infra.db import session_scope

    taken = manifest["started_at"]
    outcomes = []
    with session_scope() as session:
        for entry in manifest["active_jobs"]:
            job = session.get(Job, entry["id"])
            if job is None or JobState(job.state) not in jobs.ACTIVE:
                continue
            reason = (
                f"restored from the backup of {taken}: attempt {job.attempt} was in progress then "
                "and did not survive the restore"
            )
            if JobState(job.state) == JobState.dispatching:
                jobs.transition(session, job, JobState.queued, reason=reason)
                outcomes.append(f"job {job.id}: queued again")
            elif jobs.retry_or_fail(session, job, reason=reason, max_attempts=settings.max_attempts):
                outcomes.append(f"job {job.id}: attempt {job.attempt} will resume from its last checkpoint")
            else:
                outcomes.append(f"job {job.id}: failed ({job.error_message})")
    return outcomes


def restore(src: Path, settings: Settings | None = None) -> Snapshot:
    """Rebuild a fresh data directory (or an empty database and bucket) from a backup."""
    settings = settings or get_settings()
    clock = time.monotonic()
    checked = verify(src)
    dest, snap = resolve_snapshot(src)
    manifest = checked.manifest
    _require_empty_target(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _restore_database(settings, snap, manifest["database"])
    if manifest["mlflow"]["included"]:
        sqlite_copy(snap / manifest["mlflow"]["file"], settings.data_dir / "mlflow" / "mlflow.db")
    key_file = settings.data_dir / "jwt_secret"
    if "jwt_secret" in manifest["secrets"] and not key_file.exists():
        shutil.copy2(snap / "jwt_secret", key_file)
        os.chmod(key_file, 0o600)
    with _s3_available(settings):
        _restore_bucket(dest, manifest["bucket"]["objects"])
        _check_restored(settings, manifest)
        # A backup of an older release gets this release's schema.
        command.upgrade(Config(str(ROOT / "alembic.ini")), "head")
        notes = _settle_interrupted(manifest, settings)
    return Snapshot(snap, manifest, seconds=time.monotonic() - clock, notes=notes)


# --- the local S3 server, when the stack is not running ---------------------------------------


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _s3_available(settings: Settings) -> Iterator[None]:
    """The bucket's server: the running one, or, for the local stack's own S3 server when the
    stack is down (restoring into a fresh data dir), that server started just for this."""
    if _reachable(settings.s3_endpoint):
        yield
        return
    if settings.s3_endpoint_url:
        raise BackupError(f"The S3 endpoint {settings.s3_endpoint} does not answer")
    stack = Stack(settings, out=open(os.devnull, "w"))  # noqa: SIM115 - closed with the stack
    stack.children = [c for c in stack.children if c.name == "s3"]
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    try:
        stack.start_child(stack.children[0])
        yield
    finally:
        stack.stop()
        stack.out.close()
