"""The operator tasks behind `vtp up`, `vtp migrate`, `vtp set-password`, `vtp backup` and
`vtp restore` (services/runtime/backup.py does the backup work).

The commands themselves are declared in `services.runtime.commands`, which adds them to the
client's `vtp` app; this module does the work and is imported only when one of them runs.
"""

from __future__ import annotations

import getpass
import signal
import sys
import threading
from pathlib import Path

from alembic.config import Config
from sqlmodel import select

from alembic import command
from services.infra import storage
from services.infra.db import session_scope
from services.infra.settings import get_settings
from services.runtime import backup as backup_mod
from services.runtime.stack import ROOT, Stack, StackError


def migrate() -> None:
    """Bring the database to the latest schema (Alembic), creating the SQLite file if needed."""
    get_settings().data_dir.mkdir(parents=True, exist_ok=True)
    command.upgrade(Config(str(ROOT / "alembic.ini")), "head")


def prepare() -> None:
    """Run once storage is reachable: bucket, schema, demo data."""
    from services.runtime.seed import DEMO_USER, seed_demo

    storage.ensure_bucket()
    migrate()
    password = seed_demo()
    if password:
        print(
            "\n"
            f"  Demo account created (shown only this once):  user {DEMO_USER}   password {password}\n"
            f"  Forgot it? `vtp set-password {DEMO_USER}`\n",
            flush=True,
        )


def up(*, ray: bool = False) -> int:
    settings = get_settings()
    if ray and not (Path(sys.executable).parent / "ray").exists():
        print("vtp: --ray needs Ray: pip install -e '.[trainer]' (it brings ray[default])", file=sys.stderr)
        return 1
    stack = Stack(settings, ray=ray)
    signal.signal(signal.SIGINT, stack.request_stop)
    signal.signal(signal.SIGTERM, stack.request_stop)
    try:
        stack.start(before_app=prepare)
    except StackError as exc:
        print(f"vtp: {exc}", file=sys.stderr, flush=True)
        stack.stop()
        return 1
    except BaseException:
        stack.stop()
        raise
    print(
        f"\n  Vision AI Training Platform is up:  open {settings.web_url}\n  Ctrl-C stops everything.\n",
        flush=True,
    )
    code = stack.watch()
    stack.stop()
    return code


def set_password(username: str) -> int:
    from services.domain.auth import hash_password
    from services.domain.models import User

    password = getpass.getpass(f"New password for {username}: ")
    if len(password) < 8:
        print("Password must be at least 8 characters", file=sys.stderr)
        return 1
    with session_scope() as session:
        user = session.exec(select(User).where(User.username == username)).first()
        if user is None:
            print(f"No user named {username!r}", file=sys.stderr)
            return 1
        user.password_hash = hash_password(password)
        session.add(user)
    print("Password changed.")
    return 0


def _report(snap: backup_mod.Snapshot) -> None:
    if not snap.manifest:  # a failed scheduled run
        print(f"vtp backup: {'; '.join(snap.notes)}", file=sys.stderr, flush=True)
        return
    bucket = snap.manifest["bucket"]
    rows = sum(snap.manifest["database"]["tables"].values())
    print(
        f"backup {snap.path}: {rows} rows, {bucket['count']} objects ({bucket['bytes']} bytes), "
        f"{snap.copied} new objects copied, {snap.reused} already held, {snap.seconds:.1f}s",
        flush=True,
    )
    for note in snap.notes:
        print(f"  note: {note}", flush=True)


def backup_run(dest_dir: str, *, schedule: bool, every_s: float, keep: int) -> int:
    """`vtp backup`: one snapshot (then prune to `keep` when set), or a schedule until a signal."""
    dest = Path(dest_dir)
    try:
        if schedule:
            keep = keep or 7
            stop = threading.Event()
            signal.signal(signal.SIGINT, lambda *_: stop.set())
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            print(f"vtp backup: every {every_s}s into {dest}, keeping {keep}; Ctrl-C stops", flush=True)
            backup_mod.schedule(dest, every_s=every_s, keep=keep, report=_report, stop=stop.is_set)
            return 0
        _report(backup_mod.backup(dest))
        if keep:
            for removed in backup_mod.prune(dest, keep):
                print(f"  removed old snapshot {removed.name}", flush=True)
    except backup_mod.BackupError as exc:
        print(f"vtp backup: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def restore_run(src: str, *, verify_only: bool) -> int:
    """`vtp restore`: check a backup, then rebuild a fresh data dir (or empty stores) from it."""
    try:
        if verify_only:
            snap = backup_mod.verify(Path(src))
            print(f"backup {snap.path}: every checksum matches", flush=True)
            return 0
        snap = backup_mod.restore(Path(src))
    except backup_mod.BackupError as exc:
        print(f"vtp restore: {exc}", file=sys.stderr, flush=True)
        return 1
    bucket = snap.manifest["bucket"]
    print(
        f"restored {snap.path.name} into {get_settings().data_dir}: "
        f"{sum(snap.manifest['database']['tables'].values())} rows, {bucket['count']} objects, "
        f"checksums and counts verified, {snap.seconds:.1f}s. Start it with `vtp up`.",
        flush=True,
    )
    for note in snap.notes:
        print(f"  {note}", flush=True)
    return 0
