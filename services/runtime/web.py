"""`python -m services.runtime.web`: the web app (pages, websocket, REST API) from a prebuilt frontend.

`reflex run --env prod` compiles the pages and builds the frontend with bun on every start, which
needs Node packages from a registry. The container images (docker/Dockerfile) and Kubernetes
have no registry at runtime, so their frontend is built once, when the image is made
(`make compose-images`), and this serves that build with the same production backend Reflex
would start, on one port (VTP_WEB_PORT).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from services.infra.settings import get_settings


def main() -> int:
    web_dir = Path(os.environ.get("REFLEX_WEB_WORKDIR", ".web"))
    if not (web_dir / "build" / "client" / "index.html").exists():
        print(
            f"web: no prebuilt frontend in {web_dir}/build/client: build the image with "
            "`make compose-images` (it runs `reflex export --frontend-only` first)",
            file=sys.stderr,
        )
        return 1
    # Production mode without a compile step: the pages are already built.
    os.environ["REFLEX_ENV_MODE"] = "prod"
    os.environ["REFLEX_SKIP_COMPILE"] = "1"
    from reflex.config import get_config
    from reflex.constants import LogLevel
    from reflex.utils import exec as reflex_exec

    settings = get_settings()
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
