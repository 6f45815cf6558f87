"""Shared fixtures: real servers, a configured backend, and the whole stack."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.utils import servers
from tests.utils.browser import ARGS, CHROMIUM
from tests.utils.environ import environment
from tests.utils.stack import SSO_ACCOUNTS, SSO_CLIENT, Api, StackProcess

# argon2's cheapest parameters: the suite hashes and checks hundreds of passwords, at about 0.1 s
# each with the product's default. Every process the tests start inherits it.
os.environ.setdefault("VTP_PASSWORD_HASH_PROFILE", "CHEAPEST")

OUTPUT_DIR = Path(os.environ.get("VTP_TEST_OUTPUT", Path(__file__).resolve().parents[1] / "test-output"))


@pytest.fixture(scope="session", autouse=True)
def web_build_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's own kept web builds: its first stack builds the frontend, later ones reuse it
    (a build kept by an earlier run cannot hide a broken build in this one)."""
    StackProcess.web_build_cache = tmp_path_factory.getbasetemp() / "web-builds"
    return StackProcess.web_build_cache


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Screenshots and logs a person may want to look at after the run."""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    return OUTPUT_DIR


def reset_caches() -> None:
    from services.domain.catalog import clear_cache
    from services.infra.db import get_engine
    from services.infra.settings import get_settings
    from services.infra.storage import s3_client

    clear_cache()
    get_settings.cache_clear()
    get_engine.cache_clear()
    s3_client.cache_clear()


def _migrate_from_template(
    factory: pytest.TempPathFactory, data_dir: Path, migrate: Callable[[], None]
) -> None:
    """A fresh SQLite database at head: migrated once per session, copied for every module.

    Alembic from scratch costs about half a second; two dozen modules start a backend. The
    copy is then upgraded like any database (a no-op at head). Every whole-stack test still
    migrates from scratch.
    """
    template = factory.getbasetemp() / "schema-template" / "vtp.db"
    data_dir.mkdir(parents=True, exist_ok=True)
    if template.exists():
        shutil.copyfile(template, data_dir / "vtp.db")
    migrate()
    if not template.exists() and (data_dir / "vtp.db").exists():
        template.parent.mkdir(exist_ok=True)
        shutil.copyfile(data_dir / "vtp.db", template)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The backend's services in-process against a real S3 server, real Redis and SQLite."""
    root = tmp_path_factory.mktemp("backend")
    with (
        servers.nanio(root / "s3") as s3_url,
        servers.redis(root / "redis") as redis_url,
        servers.trainer(
            root / "trainer",
            {
                "TRAINER_S3_ENDPOINT_URL": s3_url,
                "TRAINER_S3_ACCESS_KEY": servers.S3_KEYS[0],
                "TRAINER_S3_SECRET_KEY": servers.S3_KEYS[1],
            },
        ) as trainer_url,
    ):
        env = {
            "VTP_TRAINER_URL": trainer_url,
            "VTP_DATA_DIR": str(root / "data"),
            "VTP_S3_ENDPOINT_URL": s3_url,
            "VTP_S3_ACCESS_KEY": servers.S3_KEYS[0],
            "VTP_S3_SECRET_KEY": servers.S3_KEYS[1],
            "VTP_REDIS_URL": redis_url,
        }
        with environment(env):
            from services.infra import storage
            from services.runtime.cli import migrate

            storage.ensure_bucket()
            _migrate_from_template(tmp_path_factory, root / "data", migrate)
            yield env


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, output_dir: Path) -> Iterator[StackProcess]:
    """The whole platform via `vtp up`, as a user starts it, on free ports and a fresh data dir."""
    root = tmp_path_factory.mktemp("stack")
    process = StackProcess(
        data_dir=root / "data", trainer_dir=root / "trainer", log_path=output_dir / "stack.log"
    )
    for attempt in range(3):
        process.ports = {}
        process.env()  # picks the ports, so the identity provider knows where to send users back
        client = {
            "client_id": SSO_CLIENT[0],
            "client_secret": SSO_CLIENT[1],
            "redirect_uris": [process.web_url + "/api/v1/auth/oidc/callback"],
        }
        provider = ExitStack()
        issuer = provider.enter_context(
            servers.oidc_provider(
                root / "oidc", port=servers.free_port(), client=client, accounts=SSO_ACCOUNTS
            )
        )
        process.extra_env.update(
            {
                "VTP_OIDC_ISSUER": issuer,
                "VTP_OIDC_CLIENT_ID": SSO_CLIENT[0],
                "VTP_OIDC_CLIENT_SECRET": SSO_CLIENT[1],
                "VTP_OIDC_DISPLAY_NAME": "Test IdP",
            }
        )
        process.sso_issuer = issuer
        try:
            process.start()
            break
        except RuntimeError as exc:
            provider.close()
            # A port found free a moment ago can be taken meanwhile (for one, as the source port of
            # some other connection); `vtp up` refuses before touching anything, so pick again.
            if "already in use" not in str(exc) or attempt == 2:
                raise
    with provider:
        try:
            yield process
        finally:
            process.stop()


@pytest.fixture(scope="session")
def api(stack: StackProcess) -> Api:
    return Api(stack.api_url, stack.username, stack.password)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()
