"""`vtp backup` / `vtp restore` against a real S3 server and SQLite (and PostgreSQL): incremental
copies, checksums that catch damage, pruning, and refusals that say what to do."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.runtime import backup
from tests.conftest import reset_caches
from tests.utils import servers
from tests.utils.environ import environment


def vtp(*args: str) -> int:
    """Run a `vtp` command in this process (the same app the `vtp` script runs)."""
    from typer.testing import CliRunner
    from vtp_client.cli import add_plugin_commands, app

    add_plugin_commands(app)
    result = CliRunner().invoke(app, list(args))
    print(result.output)
    return result.exit_code


def _use(env: dict[str, str]) -> None:
    os.environ.update(env)
    reset_caches()


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A migrated, seeded platform: SQLite in a data dir, a bucket on a real S3 server."""
    with servers.nanio(tmp_path / "s3") as s3_url:
        env = {
            "VTP_DATA_DIR": str(tmp_path / "data"),
            "VTP_S3_ENDPOINT_URL": s3_url,
            "VTP_S3_ACCESS_KEY": servers.S3_KEYS[0],
            "VTP_S3_SECRET_KEY": servers.S3_KEYS[1],
            "VTP_S3_BUCKET": "vtp",
            "VTP_DATABASE_URL": "",
        }
        with environment(env):
            from services.infra import storage
            from services.runtime.cli import migrate
            from services.runtime.seed import seed_demo

            storage.ensure_bucket()
            migrate()
            seed_demo()
            yield env


def _rows(path: Path) -> dict[str, int]:
    return backup.sqlite_counts(path)


def test_backup_is_incremental_and_restores_every_row_and_object(
    platform: dict[str, str], tmp_path: Path
) -> None:
    from services.domain.tokens import jwt_key
    from services.infra import storage

    jwt_key.cache_clear()
    jwt_key()  # writes the data dir's token key, which a restore must bring back
    jwt_key.cache_clear()
    dest = tmp_path / "backups"
    first = backup.backup(dest)
    objects = first.manifest["bucket"]["objects"]
    assert objects and first.copied == len(objects) and first.reused == 0
    assert first.manifest["database"]["tables"]["project"] == 1
    assert first.manifest["database"]["sha256"] == backup.sha256_file(first.path / "database.sqlite3")

    again = backup.backup(dest)
    assert (again.copied, again.reused) == (0, len(objects)), "nothing changed: nothing is copied"
    storage.put_bytes("projects/1/jobs/9/logs/new.jsonl", b'{"line": 1}\n', "application/json")
    third = backup.backup(dest)
    assert (third.copied, third.reused) == (1, len(objects))

    # A fresh data dir and an empty bucket: everything comes back, checksums verified.
    _use({"VTP_DATA_DIR": str(tmp_path / "restored"), "VTP_S3_BUCKET": "restored"})
    assert vtp("restore", str(dest)) == 0
    assert _rows(tmp_path / "restored" / "vtp.db") == third.manifest["database"]["tables"]
    keys = set(storage.list_keys(""))
    assert keys == {o["key"] for o in third.manifest["bucket"]["objects"]}
    body = storage.get_bytes(storage.uri("projects/1/jobs/9/logs/new.jsonl"))
    assert body == b'{"line": 1}\n'
    assert (tmp_path / "restored" / "jwt_secret").read_text() == (
        tmp_path / "data" / "jwt_secret"
    ).read_text()

    # A second restore over it refuses instead of mixing two platforms.
    with pytest.raises(backup.BackupError, match="already holds a database"):
        backup.restore(dest)


def test_damaged_backup_is_refused_with_what_is_wrong(platform: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "backups"
    snap = backup.backup(dest)
    victim = snap.manifest["bucket"]["objects"][0]
    blob = dest / "objects" / victim["sha256"][:2] / victim["sha256"]
    blob.write_bytes(blob.read_bytes() + b"bitrot")
    with pytest.raises(backup.BackupError, match=f"object {victim['key']}"):
        backup.verify(dest)
    _use({"VTP_DATA_DIR": str(tmp_path / "restored"), "VTP_S3_BUCKET": "restored"})
    assert vtp("restore", str(dest)) == 1
    assert not (tmp_path / "restored" / "vtp.db").exists(), "nothing is restored from a damaged backup"


def test_keep_prunes_old_snapshots_and_their_objects(platform: dict[str, str], tmp_path: Path) -> None:
    from services.infra import storage

    dest = tmp_path / "backups"
    storage.put_bytes("scratch/old.bin", b"only in the first snapshot")
    backup.backup(dest)
    storage.delete_prefix("scratch/")
    backup.backup(dest)
    assert vtp("backup", str(dest), "--keep", "2") == 0
    kept = backup.snapshots(dest)
    assert len(kept) == 2
    blobs = {p.name for p in (dest / "objects").glob("*/*")}
    referenced = {
        o["sha256"] for s in kept for o in json.loads((s / "manifest.json").read_text())["bucket"]["objects"]
    }
    assert blobs == referenced
    assert not any(
        o["key"].startswith("scratch/") for s in kept for o in backup.verify(s).manifest["bucket"]["objects"]
    )


def test_restore_refuses_a_non_empty_bucket(platform: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "backups"
    backup.backup(dest)
    _use({"VTP_DATA_DIR": str(tmp_path / "restored")})  # same bucket as the live platform
    with pytest.raises(backup.BackupError, match="not empty"):
        backup.restore(dest)


def test_backup_of_a_live_sqlite_database_sees_whole_transactions(
    platform: dict[str, str], tmp_path: Path
) -> None:
    """The online backup API copies a consistent state even while a write transaction is open."""
    live = sqlite3.connect(Path(platform["VTP_DATA_DIR"]) / "vtp.db", timeout=30)
    live.execute("BEGIN IMMEDIATE")
    live.execute("UPDATE project SET name = 'half-written'")
    snap = backup.backup(tmp_path / "backups")
    live.rollback()
    live.close()
    db = sqlite3.connect(snap.path / "database.sqlite3")
    assert db.execute("SELECT name FROM project").fetchall() == [("Demo project",)]
    db.close()


@pytest.mark.postgres
def test_postgresql_backup_and_restore_with_pg_dump(platform: dict[str, str], tmp_path: Path) -> None:
    from services.runtime.cli import migrate
    from services.runtime.seed import seed_demo

    with servers.postgres() as url:
        base = url.rsplit("/", 1)[0]
        source, target = f"{base}/source", f"{base}/target"
        admin = url.replace("postgresql://", "postgresql+psycopg://")
        import sqlalchemy

        engine = sqlalchemy.create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("CREATE DATABASE source"))
            conn.execute(sqlalchemy.text("CREATE DATABASE target"))
        engine.dispose()
        _use(
            {
                "VTP_DATABASE_URL": source.replace("postgresql://", "postgresql+psycopg://"),
                "VTP_S3_BUCKET": "pg-source",
            }
        )
        from services.infra import storage

        storage.ensure_bucket()
        migrate()
        seed_demo()
        snap = backup.backup(tmp_path / "backups")
        assert snap.manifest["database"]["engine"] == "postgresql"
        assert snap.manifest["database"]["tables"]["project"] == 1
        _use(
            {
                "VTP_DATABASE_URL": target.replace("postgresql://", "postgresql+psycopg://"),
                "VTP_DATA_DIR": str(tmp_path / "restored"),
                "VTP_S3_BUCKET": "pg-restored",
            }
        )
        restored = backup.restore(tmp_path / "backups")
        assert restored.manifest["database"]["tables"]["user"] == 1
        from services.infra.db import get_engine

        with get_engine().connect() as conn:
            names = conn.execute(sqlalchemy.text("SELECT name FROM project")).scalars().all()
        assert names == ["Demo project"]
        get_engine().dispose()


def test_schedule_keeps_the_newest_snapshots(platform: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "backups"
    reports: list[backup.Snapshot] = []
    backup.schedule(dest, every_s=0.1, keep=2, report=reports.append, stop=lambda: len(reports) >= 3)
    assert len(reports) == 3 and all(r.manifest for r in reports), [r.notes for r in reports]
    assert [s.name for s in backup.snapshots(dest)] == [r.path.name for r in reports[1:]]
