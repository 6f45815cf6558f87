"""The whole local stack (`vtp up`) as a test fixture, plus a small REST client for it."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx

from tests.utils.servers import free_port

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
PASSWORD_LINE = re.compile(r"user (\S+)\s+password (\S+)")
# The session stack signs in through a real OpenID Connect provider too (tests/conftest.py).
SSO_CLIENT = ("vtp-ui", "ui-client-secret-for-tests-only-0123")
SSO_ACCOUNTS = {"dana": {"email": "dana@example.org", "email_verified": True, "preferred_username": "dana"}}


# The web app: `reflex run` when `vtp up` builds the frontend, services.runtime.web when it
# serves the build kept from an earlier start (services.runtime.web_build).
WEB = ("reflex", "services.runtime.web")


def runs(argv: list[str], programs: str | tuple[str, ...]) -> bool:
    """Whether a process with this argv runs one of `programs`: its name as argv[0], the script an
    interpreter runs, or the module after `-m` (paths in the arguments, like the data dir, do not
    count)."""
    names = {Path(arg).name for arg in argv[:2]}
    if len(argv) >= 3 and argv[1] == "-m":
        names.add(argv[2])
    return bool(names & ({programs} if isinstance(programs, str) else set(programs)))


@dataclass
class StackProcess:
    data_dir: Path
    trainer_dir: Path
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    lines: list[str] = field(default_factory=list)
    username: str = ""
    password: str = ""
    sso_issuer: str = ""

    # Where `vtp up` keeps its web build (services.runtime.web_build): the test session sets one
    # of its own (tests/conftest.py), so every session builds the frontend at least once.
    web_build_cache: ClassVar[Path | None] = None

    def env(self) -> dict[str, str]:
        if not self.ports:
            names = ("web", "redis", "s3", "mlflow", "trainer")
            self.ports = {n: free_port() for n in names}
            # Where tests/ops/test_notifications.py runs its SMTP sink (nothing listens otherwise).
            self.ports["smtp"] = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VTP_")}
        env.update({f"VTP_{n.upper()}_PORT": str(p) for n, p in self.ports.items()})
        env.update(
            {"VTP_SMTP_HOST": "127.0.0.1", "VTP_SMTP_STARTTLS": "false", "VTP_NOTIFY_RETRY_BASE_S": "0.5"}
        )
        env.update(
            {
                "VTP_DATA_DIR": str(self.data_dir),
                "VTP_TRAINER_WORKDIR": str(self.trainer_dir),
                "VTP_HEARTBEAT_INTERVAL_S": "1",
                **({"VTP_WEB_BUILD_CACHE": str(self.web_build_cache)} if self.web_build_cache else {}),
                **self.extra_env,
            }
        )
        return env

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['web']}"

    @property
    def api_url(self) -> str:
        return self.web_url

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['mlflow']}"

    def callbacks(self, job_id: int, types: set[str] | None = None) -> list[dict[str, Any]]:
        """The trainer callbacks the backend accepted for a job, in the order it stored them,
        read from the stack's own (SQLite) database."""
        db = sqlite3.connect(f"file:{self.data_dir / 'vtp.db'}?mode=ro", uri=True, timeout=30)
        try:
            rows = db.execute(
                "SELECT type, payload FROM jobevent WHERE job_id = ? ORDER BY id", (job_id,)
            ).fetchall()
        finally:
            db.close()
        return [{"type": t, **json.loads(p)} for t, p in rows if types is None or t in types]

    def start(self, timeout_s: float = 900) -> None:
        self.lines.clear()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(BIN / "vtp"), "up"],
            env=self.env(),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        up = threading.Event()

        def pump() -> None:
            assert self.process and self.process.stdout
            for raw in self.process.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode(errors="replace").rstrip()
                self.lines.append(line)
                if match := PASSWORD_LINE.search(line):
                    self.username, self.password = match.groups()
                if "is up:" in line:
                    up.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not up.wait(0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("vtp up failed:\n" + "\n".join(self.lines[-60:]))

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class SignedIn(httpx.Auth):
    """Bearer auth that signs in again when the access token has expired (401): the suite's
    session-wide client outlives the 15-minute access token."""

    requires_request_body = True  # an upload retried after signing in again is sent whole

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.login_url, self.credentials = (
            base_url + "/auth/login",
            {"username": username, "password": password},
        )
        self.token = self._sign_in()

    def _sign_in(self) -> str:
        response = httpx.post(self.login_url, json=self.credentials, timeout=60)
        response.raise_for_status()
        return str(response.json()["access_token"])

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code == 401:
            self.token = self._sign_in()
            request.headers["Authorization"] = f"Bearer {self.token}"
            yield request


class Api:
    """A thin REST client, signed in as a user of the stack."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        auth = SignedIn(base_url + "/api/v1", username, password)
        self.http = httpx.Client(base_url=base_url + "/api/v1", timeout=60, auth=auth)

    def project_id(self) -> int:
        return self.http.get("/projects").raise_for_status().json()[0]["id"]

    def datasets(self, project_id: int) -> list[dict[str, Any]]:
        return self.http.get(f"/projects/{project_id}/datasets").raise_for_status().json()

    def start_job(self, project_id: int, version_id: int, **hyper: Any) -> dict[str, Any]:
        body = {"dataset_version_id": version_id, "hyperparameters": {"imgsz": 64, "batch": 16, **hyper}}
        return self.http.post(f"/projects/{project_id}/jobs", json=body).raise_for_status().json()

    def job(self, project_id: int, job_id: int) -> dict[str, Any]:
        return self.http.get(f"/projects/{project_id}/jobs/{job_id}").raise_for_status().json()

    def wait_finished(self, project_id: int, job_id: int, timeout_s: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.job(project_id, job_id)
            if job["state"] in {"succeeded", "failed", "cancelled"}:
                return job
            time.sleep(1)
        raise TimeoutError(f"job {job_id} still {job['state']} after {timeout_s}s")
