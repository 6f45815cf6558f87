"""Real servers for tests (Redis, the S3 server, PostgreSQL, an OIDC provider), started as child processes."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
S3_KEYS = ("test-access-key", "test-secret-key-0123456789")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tcp_ready(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    return check


@contextmanager
def running(
    argv: list[str],
    ready: Callable[[], bool],
    log: Path,
    env: dict[str, str] | None = None,
    timeout_s: float = 30,
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def nanio(data_dir: Path) -> Iterator[str]:
    """A real S3-compatible server; yields its endpoint URL."""
    port = free_port()
    env = {"NANIO_ACCESS_KEY": S3_KEYS[0], "NANIO_SECRET_KEY": S3_KEYS[1]}
    argv = [
        str(BIN / "nanio"),
        "serve",
        "--data-dir",
        str(data_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with running(argv, tcp_ready(port), data_dir.parent / f"nanio-{port}.log", env):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def redis(data_dir: Path) -> Iterator[str]:
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        "redis-server",
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--appendonly",
        "yes",
        "--dir",
        str(data_dir),
        "--save",
        "",
    ]
    with running(argv, tcp_ready(port), data_dir.parent / f"redis-{port}.log"):
        yield f"redis://127.0.0.1:{port}/0"


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster. initdb refuses root, so as root it runs as `postgres`,
    in a directory of its own outside pytest's private (0700) temp tree."""
    bindir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="vtp-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(data_dir, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    initdb = [*as_postgres, str(bindir / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust"]
    opts = f"-p {port} -k {data_dir} -c listen_addresses=127.0.0.1"
    pg_ctl = [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data_dir)]
    try:
        for argv in (initdb, [*pg_ctl, "-o", opts, "-w", "-l", str(data_dir / "server.log"), "start"]):
            done = subprocess.run(argv, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{argv} failed:\n{done.stdout}\n{done.stderr}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(data_dir, ignore_errors=True)


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        import httpx

        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return check


@contextmanager
def trainer(work_dir: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """The real trainer service (`python -m trainer_runner`); yields its base URL.

    Backend tests need it for the plugin catalogue (GET /plugins) that every new job is checked against.
    """
    port = free_port()
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "home").mkdir(exist_ok=True)
    trainer_env = {
        "HOME": str(work_dir / "home"),
        "TRAINER_PORT": str(port),
        "TRAINER_SCRATCH_DIR": str(work_dir / "scratch"),
        **(env or {}),
    }
    argv = [sys.executable, "-m", "trainer_runner"]
    url = f"http://127.0.0.1:{port}"
    with running(argv, _http_ok(url + "/healthz"), work_dir.parent / f"trainer-{port}.log", trainer_env, 60):
        yield url


ROOT = Path(__file__).resolve().parents[2]
OIDC_MODULE = ROOT / ".tools/oidc/node_modules/oidc-provider/lib/index.js"


@contextmanager
def oidc_provider(
    log_dir: Path, *, port: int, client: dict[str, object], accounts: dict[str, dict[str, object]]
) -> Iterator[str]:
    """The `oidc-provider` npm package (installed by `make install`) in node; yields its issuer URL."""
    issuer = f"http://127.0.0.1:{port}"
    env = {
        "OIDC_PROVIDER_MODULE": str(OIDC_MODULE),
        "OIDC_PORT": str(port),
        "OIDC_CLIENT": json.dumps(client),
        "OIDC_ACCOUNTS": json.dumps(accounts),
    }
    argv = ["node", str(ROOT / "tests/utils/oidc_provider.mjs")]
    log_dir.mkdir(parents=True, exist_ok=True)
    ready = _http_ok(issuer + "/.well-known/openid-configuration")
    with running(argv, ready, log_dir / f"oidc-{port}.log", env):
        yield issuer


@contextmanager
def asgi_in_thread(app: Any) -> Iterator[str]:
    """`app` under uvicorn on a free port in a thread of this process, as the web process serves
    it; yields its base URL and stops it afterwards."""
    import threading

    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        instance.should_exit = True
        thread.join(10)
