"""The operator tasks behind `vtp up`, `vtp migrate` and `vtp set-password`.

The commands themselves are declared in `services.runtime.commands`, which adds them to the
client's `vtp` app; this module does the work and is imported only when one of them runs.
"""

from __future__ import annotations

import getpass
import signal
import sys
from pathlib import Path

from alembic.config import Config
from sqlmodel import select

from alembic import command
from services.infra import storage
from services.infra.db import session_scope
from services.infra.settings import get_settings
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
