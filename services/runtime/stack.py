"""The local stack (tier 1): one supervisor starts, health-checks and stops every service.

Redis, the S3 server, MLflow, the trainer, the arq worker and the Reflex app run as child
processes with all their data under `VTP_DATA_DIR`; `vtp up --ray` adds a local Ray head and runs
the trainer gateway against it (TRAINER_EXECUTOR=ray). Other tiers run the same programs with the
same settings from their own process managers (Compose, Kubernetes).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx

from services.infra import logs
from services.infra.settings import Settings
from services.runtime import web, web_build

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


RESTART_LIMIT = 3
RESTART_WINDOW_S = 300


class StackError(RuntimeError):
    """Something the operator must fix before the stack can run; the message says what."""


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int | None = None
    port_setting: str = ""
    ready: Callable[[], bool] = lambda: True
    ready_timeout_s: float = 60.0
    stop_timeout_s: float = 15.0
    # SIGTERM the whole process group (default), or only the child, which then stops its own.
    stop_group: bool = True
    # Run before each start (may choose `argv`; what it returns is said), and once it is ready.
    prepare: Callable[[Child], str] = lambda child: ""
    on_ready: Callable[[Child], None] = lambda child: None
    process: subprocess.Popen[bytes] | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=40))
    deaths: list[float] = field(default_factory=list)


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    return check


def _tcp_ok(host: str, port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False

    return check


def _tool_path() -> str:
    """PATH with the venv's scripts and the bun that `make` installs under .tools/."""
    extra = [str(BIN)]
    extra += [str(p) for p in sorted((ROOT / ".tools/node_modules/@oven").glob("bun-linux-*/bin"))]
    return os.pathsep.join([*extra, os.environ.get("PATH", "")])


def _npm_registry() -> str:
    """The registry npm is configured with; without it Reflex speed-tests unreachable mirrors."""
    if os.environ.get("NPM_CONFIG_REGISTRY"):
        return os.environ["NPM_CONFIG_REGISTRY"]
    try:
        found = subprocess.run(
            ["npm", "config", "get", "registry"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return found.stdout.strip()


def ray_temp_dir(settings: Settings) -> Path:
    """Ray's session files: short and per stack, since Ray's socket paths must stay under the
    107-character limit of Unix sockets (a data dir under pytest's tmp can be longer)."""
    return Path("/tmp") / f"vtp-ray-{settings.ray_port}"


def ray_head(settings: Settings, base_env: dict[str, str]) -> Child:
    """A one-machine Ray cluster: the head node, in the foreground (`--block`) so the supervisor
    watches and stops it like any other child. More machines join with `ray start --address`
    (docs/fleet.md)."""
    host = settings.host
    dashboard = f"http://{host}:{settings.ray_dashboard_port}"
    return Child(
        "ray",
        [
            str(BIN / "ray"),
            "start",
            "--head",
            "--block",
            f"--node-ip-address={host}",
            f"--port={settings.ray_port}",
            f"--dashboard-host={host}",
            f"--dashboard-port={settings.ray_dashboard_port}",
            "--include-dashboard=true",
            "--disable-usage-stats",
            f"--temp-dir={ray_temp_dir(settings)}",
        ],
        {**base_env, "RAY_USAGE_STATS_ENABLED": "0"},
        settings.data_dir / "ray",
        settings.ray_dashboard_port,
        "VTP_RAY_DASHBOARD_PORT",
        _http_ok(f"{dashboard}/api/version"),
        120,
        # On SIGTERM `ray start --block` drains the node (up to 30 s), then stops its own
        # processes; signalled together with them it cannot, and is killed at the timeout.
        stop_timeout_s=45,
        stop_group=False,
    )


def children(settings: Settings, *, ray: bool = False) -> list[Child]:
    data = settings.data_dir
    host = settings.host
    base_env = {
        **os.environ,
        "PATH": _tool_path(),
        "PYTHONUNBUFFERED": "1",
        "VTP_DATA_DIR": str(data),
    }
    s3_env = {
        "AWS_ACCESS_KEY_ID": settings.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": settings.s3_secret_key,
        "AWS_DEFAULT_REGION": settings.s3_region,
    }
    trainer_home = settings.trainer_workdir
    trainer_env = {
        # The trainer shares nothing with the backend: its own HOME, cwd and scratch space, and
        # only the settings it needs (no database, no Redis). An operator's own TRAINER_*
        # tunables (checkpoint interval, timeouts, ...) pass through; the wiring below wins.
        **{k: v for k, v in os.environ.items() if k.startswith("TRAINER_")},
        "PATH": _tool_path(),
        "PYTHONUNBUFFERED": "1",
        "HOME": str(trainer_home / "home"),
        "TRAINER_HOST": host,
        "TRAINER_PORT": str(settings.trainer_port),
        "TRAINER_SCRATCH_DIR": str(trainer_home / "scratch"),
        "TRAINER_S3_ENDPOINT_URL": settings.s3_endpoint,
        "TRAINER_S3_ACCESS_KEY": settings.s3_access_key,
        "TRAINER_S3_SECRET_KEY": settings.s3_secret_key,
        "TRAINER_S3_REGION": settings.s3_region,
        "TRAINER_MLFLOW_TRACKING_URI": settings.mlflow_uri,
    }
    if settings.sentry_dsn.get_secret_value():  # else an operator's own TRAINER_SENTRY_DSN stays
        trainer_env["TRAINER_SENTRY_DSN"] = settings.sentry_dsn.get_secret_value()
    if ray:
        # The gateway places every attempt as a Ray job on the local cluster started below.
        trainer_env["TRAINER_EXECUTOR"] = "ray"
        trainer_env["TRAINER_RAY_ADDRESS"] = f"http://{host}:{settings.ray_dashboard_port}"
        trainer_env["TRAINER_RAY_PYTHON"] = sys.executable
    # Web and worker write their metrics here; the web app's /metrics sums every process.
    metrics_env = {**base_env, "PROMETHEUS_MULTIPROC_DIR": str(data / "metrics")}
    web_env = {
        **metrics_env,
        "REFLEX_USE_SYSTEM_BUN": "1",
        "REFLEX_TELEMETRY_ENABLED": "false",
        "REFLEX_CHECK_LATEST_VERSION": "0",
        "NPM_CONFIG_REGISTRY": _npm_registry(),
        # Each stack builds its frontend in its own data dir: the build embeds this stack's
        # URLs, so a second stack from the same checkout must not overwrite it.
        "REFLEX_WEB_WORKDIR": str(data / "web"),
        "REFLEX_STATES_WORKDIR": str(data / "states"),
        **web.server_env(settings),
    }
    return [
        *([ray_head(settings, base_env)] if ray else []),
        Child(
            "redis",
            [
                "redis-server",
                "--bind",
                host,
                "--port",
                str(settings.redis_port),
                "--appendonly",
                "yes",
                "--dir",
                str(data / "redis"),
                "--save",
                "",
                "--protected-mode",
                "no",
            ],
            base_env,
            data / "redis",
            settings.redis_port,
            "VTP_REDIS_PORT",
            _tcp_ok(host, settings.redis_port),
        ),
        Child(
            "s3",
            [
                str(BIN / "nanio"),
                "serve",
                "--data-dir",
                str(data / "s3"),
                "--host",
                host,
                "--port",
                str(settings.s3_port),
            ],
            {
                **base_env,
                "NANIO_ACCESS_KEY": settings.s3_access_key,
                "NANIO_SECRET_KEY": settings.s3_secret_key,
            },
            data / "s3",
            settings.s3_port,
            "VTP_S3_PORT",
            _tcp_ok(host, settings.s3_port),
        ),
        Child(
            "mlflow",
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{data / 'mlflow' / 'mlflow.db'}",
                "--artifacts-destination",
                f"s3://{settings.s3_bucket}/mlflow",
                "--host",
                host,
                "--port",
                str(settings.mlflow_port),
                "--workers",
                "1",
            ],
            {
                **base_env,
                **s3_env,
                "MLFLOW_S3_ENDPOINT_URL": settings.s3_endpoint,
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                "MLFLOW_DISABLE_TELEMETRY": "true",
            },
            data / "mlflow",
            settings.mlflow_port,
            "VTP_MLFLOW_PORT",
            _http_ok(f"{settings.mlflow_uri}/health"),
            120,
        ),
        Child(
            "trainer",
            [sys.executable, "-m", "trainer_runner"],
            trainer_env,
            trainer_home,
            settings.trainer_port,
            "VTP_TRAINER_PORT",
            _http_ok(f"{settings.trainer_base_url}/healthz"),
            # On SIGTERM its jobs stop at the next batch and upload last.pt: give them the time.
            stop_timeout_s=100,
        ),
        Child("worker", [str(BIN / "arq"), "services.runtime.worker.WorkerSettings"], metrics_env, ROOT),
        web_child(settings, web_env),
    ]


def web_child(settings: Settings, env: dict[str, str]) -> Child:
    """The web app: built by `reflex run` on a first start, then from the kept build while the
    sources are unchanged (services.runtime.web_build)."""
    web_dir = settings.data_dir / "web"
    build = [
        str(BIN / "reflex"),
        "run",
        "--env",
        "prod",
        "--single-port",
        "--frontend-port",
        str(settings.web_port),
        "--backend-host",
        settings.host,
        "--loglevel",
        "warning",
    ]
    cache = settings.web_build_dir
    key = ""

    def prepare(child: Child) -> str:
        nonlocal key
        child.argv, child.on_ready = build, keep
        if cache is None:
            return ""
        key = key or web_build.sources_key()
        if not web_build.restore(cache, key, web_dir, settings.web_port):
            return "building the frontend (kept for the next start)"
        child.argv, child.on_ready = [sys.executable, "-m", "services.runtime.web"], lambda child: None
        return f"the frontend built before from these sources ({cache / key})"

    def keep(child: Child) -> None:
        if cache is not None and key:
            web_build.keep(cache, key, web_dir)

    return Child(
        "web",
        build,
        env,
        ROOT,
        settings.web_port,
        "VTP_WEB_PORT",
        _http_ok(f"{settings.api_base_url}/readyz"),
        600,
        prepare=prepare,
    )


class Stack:
    """Starts children in order, waits for each to be healthy, and stops them in reverse."""

    def __init__(self, settings: Settings, out: TextIO = sys.stdout, *, ray: bool = False) -> None:
        self.settings = settings
        self.out = out
        self.children = children(settings, ray=ray)
        self.log_dir = settings.data_dir / "logs"
        self._stopping = threading.Event()
        # The log files keep JSON lines; a person watching `vtp up` reads them as plain lines.
        fmt = settings.log_format
        self.human = fmt == "console" or (fmt == "auto" and out.isatty())

    def say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    def check_ports(self) -> None:
        for child in self.children:
            if child.port is not None and not port_free(self.settings.host, child.port):
                raise StackError(
                    f"Port {child.port} ({child.name}) is already in use: "
                    f"set {child.port_setting} to a free port"
                )

    def _pump(self, child: Child, log_file: TextIO) -> None:
        assert child.process is not None and child.process.stdout is not None
        for raw in child.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            child.tail.append(line)
            log_file.write(line + "\n")
            log_file.flush()
            self.say(f"[{child.name}] {logs.for_terminal(line) if self.human else line}")

    def start_child(self, child: Child) -> None:
        child.cwd.mkdir(parents=True, exist_ok=True)
        if "HOME" in child.env:
            Path(child.env["HOME"]).mkdir(parents=True, exist_ok=True)
        if note := child.prepare(child):
            self.say(f"vtp: {child.name}: {note}")
        log_file = (self.log_dir / f"{child.name}.log").open("a")
        child.process = subprocess.Popen(
            child.argv,
            env=child.env,
            cwd=child.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, args=(child, log_file), daemon=True).start()
        deadline = time.monotonic() + child.ready_timeout_s
        while not child.ready():
            if child.process.poll() is not None:
                raise StackError(self._death_note(child))
            if time.monotonic() > deadline:
                raise StackError(
                    f"{child.name} was not ready after {child.ready_timeout_s:.0f}s\n" + "\n".join(child.tail)
                )
            time.sleep(0.2)
        child.on_ready(child)
        self.say(f"vtp: {child.name} ready")

    def _death_note(self, child: Child) -> str:
        time.sleep(0.3)  # let the pump read the last lines
        code = child.process.returncode if child.process else None
        lines = "\n".join(f"    {line}" for line in list(child.tail)[-20:])
        log = self.log_dir / f"{child.name}.log"
        return f"{child.name} exited with code {code}; last lines of its log ({log}):\n{lines}"

    def start(self, before_app: Callable[[], None] = lambda: None) -> None:
        """Start everything; `before_app` runs once storage and MLflow are up (migrate + seed)."""
        self.check_ports()
        for sub in ("redis", "s3", "mlflow", "logs"):
            (self.settings.data_dir / sub).mkdir(parents=True, exist_ok=True)
        # Counters restart with their processes: files of a previous run would count twice.
        shutil.rmtree(self.settings.data_dir / "metrics", ignore_errors=True)
        (self.settings.data_dir / "metrics").mkdir()
        by_name = {c.name: c for c in self.children}
        for name in ("redis", "s3"):
            self.start_child(by_name[name])
        before_app()
        for name in ("ray", "mlflow", "trainer", "worker", "web"):
            if name in by_name:
                self.start_child(by_name[name])

    def watch(self) -> int:
        """Block until a signal; restart a child that dies, as Compose or Kubernetes would.

        A child that keeps dying (RESTART_LIMIT deaths within RESTART_WINDOW_S) stops the
        whole stack with exit code 1, so a broken setup is not hidden behind restarts.
        """
        while not self._stopping.wait(0.5):
            for child in self.children:
                if child.process is None or child.process.poll() is None:
                    continue
                self.say(f"vtp: {self._death_note(child)}")
                now = time.monotonic()
                child.deaths = [t for t in child.deaths if now - t < RESTART_WINDOW_S] + [now]
                if len(child.deaths) >= RESTART_LIMIT:
                    self.say(
                        f"vtp: {child.name} died {len(child.deaths)} times in {RESTART_WINDOW_S}s; stopping"
                    )
                    return 1
                self.say(f"vtp: restarting {child.name}")
                try:
                    self.start_child(child)
                except StackError as exc:
                    self.say(f"vtp: {exc}")
                    return 1
        return 0

    def request_stop(self, *_args: object) -> None:
        self._stopping.set()

    def stop(self) -> None:
        for child in reversed(self.children):
            process = child.process
            if process is None or process.poll() is not None:
                continue
            try:
                if child.stop_group:
                    os.killpg(process.pid, signal.SIGTERM)
                else:
                    process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                process.wait(timeout=child.stop_timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            self.say(f"vtp: {child.name} stopped")
