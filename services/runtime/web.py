"""`python -m services.runtime.web`: the web app (pages, websocket, REST API) from a prebuilt frontend.

`reflex run --env prod` compiles the pages and builds the frontend with bun on every start, which
needs Node packages from a registry. The container images (docker/Dockerfile) and Kubernetes
have no registry at runtime, so their frontend is built once, when the image is made
(`make compose-images`), and this serves that build with the same production backend Reflex
would start, on one port (VTP_WEB_PORT).

Both ways of starting the web app (this module, and `reflex run` on a one-machine stack's first
start) run it as `VTP_WEB_WORKERS` gunicorn worker processes on that port (`server_env`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from services.infra.settings import Settings, get_settings


def server_env(settings: Settings) -> dict[str, str]:
    """The environment Reflex's production server reads: how many processes, and where the
    pages' state lives.

    One process serves about 130 requests/s on a small machine, one GIL's worth
    (bench/load_test.py). With `VTP_WEB_WORKERS` > 1, more processes share the port and any of
    them may get a tab's next event or its upload (a separate request), so each page's state is
    kept in Redis (Reflex's Redis state manager) instead of one process's memory. Opportunistic
    locking lets the process that serves a tab keep its state between events instead of
    reading and writing it in Redis for every one (a compare page of 50 runs holds two large
    figures). One process keeps the state in memory: nothing to fetch per event.
    """
    env = {
        # gunicorn closes an idle keep-alive connection after 2 s by default; clients that pause
        # 1-3 s between requests then reuse a connection the server is closing (a reset, seen as
        # errors under load). Keep idle connections longer than any client's pause. Reflex asks
        # for uvicorn's pure-Python HTTP parser and event loop (UvicornH11Worker); the standard
        # worker takes httptools and uvloop (project dependencies), which cost the web process
        # less CPU per request (bench/route_cost.py). An operator's own GUNICORN_CMD_ARGS wins.
        "GUNICORN_CMD_ARGS": os.environ.get(
            "GUNICORN_CMD_ARGS",
            f"--keep-alive 65 --worker-class uvicorn.workers.UvicornWorker --workers {settings.web_workers}",
        ),
    }
    if settings.web_workers > 1:
        env |= {"REFLEX_REDIS_URL": settings.redis_dsn, "REFLEX_OPLOCK_ENABLED": "true"}
    return env


def main() -> int:
    web_dir = Path(os.environ.get("REFLEX_WEB_WORKDIR", ".web"))
    if not (web_dir / "build" / "client" / "index.html").exists():
        print(
            f"web: no prebuilt frontend in {web_dir}/build/client: build the image with "
            "`make compose-images` (it runs `reflex export --frontend-only` first)",
            file=sys.stderr,
        )
        return 1
    settings = get_settings()
    os.environ.update(server_env(settings))  # before Reflex reads its configuration
    # Production mode without a compile step: the pages are already built.
    os.environ["REFLEX_ENV_MODE"] = "prod"
    os.environ["REFLEX_SKIP_COMPILE"] = "1"
    from reflex.config import get_config
    from reflex.constants import LogLevel
    from reflex.utils import exec as reflex_exec

    # What `reflex run --single-port` records: pages, websocket and API on the one port.
    get_config()._set_persistent(  # type: ignore[no-untyped-call]
        frontend_port=settings.web_port, backend_port=settings.web_port
    )
    reflex_exec.run_backend_prod(
        settings.host, settings.web_port, LogLevel.WARNING, mount_frontend_compiled_app=True
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
