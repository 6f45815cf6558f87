"""Single sign-on against a real OpenID Connect provider (the `oidc-provider` npm package in node).

The backend's REST API runs in-process (TestClient as "http://testserver"); the provider is a real
HTTP server the test's own client signs in to through its development login and consent forms,
exactly the redirects a browser follows. Authlib on the backend talks to the provider over HTTP.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urljoin, urlparse

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from services.infra.db import session_scope
from tests.security.conftest import _clear_security_caches
from tests.utils import servers

pytestmark = pytest.mark.security

CLIENT_ID, CLIENT_SECRET = "vtp-test", "a-client-secret-for-tests-only-0123"
BACKEND = "http://testserver"
ACCOUNTS = {
    "alice": {"email": "alice.sso@example.org", "email_verified": True, "preferred_username": "alice.sso"},
    "linked": {"email": "Linked.User@Example.org", "email_verified": True},
    "unverified": {"email": "mallory@example.org", "email_verified": False},
    "closed": {"email": "closed.sso@example.org", "email_verified": True},
}
FORM = re.compile(r'<form[^>]*action="([^"]+)"', re.I)
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', re.I)


@pytest.fixture(scope="module")
def sso(backend: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from app.api.routes import oidc as oidc_routes

    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [BACKEND + "/api/v1/auth/oidc/callback"],
    }
    port = servers.free_port()
    log_dir = tmp_path_factory.mktemp("oidc")
    with servers.oidc_provider(log_dir, port=port, client=client, accounts=ACCOUNTS) as issuer:
        env = {
            "VTP_OIDC_ISSUER": issuer,
            "VTP_OIDC_CLIENT_ID": CLIENT_ID,
            "VTP_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "VTP_OIDC_DISPLAY_NAME": "Test IdP",
            "VTP_PUBLIC_API_URL": BACKEND,
        }
        os.environ.update(env)
        _clear_security_caches()
        oidc_routes._client.cache_clear()
        from app.api.main import api

        try:
            with TestClient(api, base_url=BACKEND) as test_client:
                yield test_client
        finally:
            for key in env:
                os.environ.pop(key, None)
            _clear_security_caches()
            oidc_routes._client.cache_clear()


def provider_round_trip(authorize_url: str, login: str) -> str:
    """Sign in at the provider as `login` and consent; the URL it sends the browser back to."""
    with httpx.Client(timeout=10) as browser:
        response = browser.get(authorize_url)
        for _ in range(12):
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                if target.startswith(BACKEND):
                    return target
                response = browser.get(target)
                continue
            assert response.status_code == 200, (response.request.method, str(response.url), response.text)
            action = FORM.search(response.text)
            assert action, f"no form on the provider's page: {response.text[:500]}"
            fields = dict(HIDDEN.findall(response.text))
            if 'name="login"' in response.text:
                fields |= {"login": login, "password": "any"}
            response = browser.post(urljoin(str(response.url), action.group(1)), data=fields)
    raise AssertionError("the provider never redirected back")


def sso_sign_in(client: TestClient, login: str, next_path: str = "/jobs") -> dict[str, list[str]]:
    """The whole browser journey; the sign-in page's query the backend ends on."""
    start = client.get("/api/v1/auth/oidc/login", params={"next": next_path}, follow_redirects=False)
    assert start.status_code in (302, 303), start.text
    back = provider_round_trip(start.headers["location"], login)
    callback = client.get(back.removeprefix(BACKEND), follow_redirects=False)
    assert callback.status_code == 303, callback.text
    location = urlparse(callback.headers["location"])
    assert location.path == "/login"
    return parse_qs(location.query)


def redeem(code: str) -> tuple[str, str]:
    from services.domain import tokens

    with session_scope() as session:
        user, token = tokens.redeem_handoff(session, code)
        assert tokens.user_for_session(session, token).id == user.id
        return user.username, user.email or ""


def test_new_identity_gets_an_account_and_a_web_session(sso: TestClient) -> None:
    query = sso_sign_in(sso, "alice", next_path="/jobs")
    assert query["next"] == ["/jobs"]
    username, email = redeem(query["sso"][0])
    assert (username, email) == ("alice-sso", "alice.sso@example.org")
    # The same person again: the same account, not a second one.
    again = sso_sign_in(sso, "alice")
    assert redeem(again["sso"][0])[0] == "alice-sso"


def test_existing_account_is_linked_by_verified_email(sso: TestClient) -> None:
    from services.domain import auth

    with session_scope() as session:
        name = f"local-{uuid.uuid4().hex[:6]}"
        auth.create_user(
            session, username=name, password="correct-horse-battery-1", email="linked.user@example.org"
        )
    query = sso_sign_in(sso, "linked")
    assert redeem(query["sso"][0])[0] == name


def test_handoff_code_is_single_use(sso: TestClient) -> None:
    from services.domain import tokens
    from services.errors import Unauthorized

    code = sso_sign_in(sso, "alice")["sso"][0]
    redeem(code)
    with pytest.raises(Unauthorized, match="expired or was already used"), session_scope() as session:
        tokens.redeem_handoff(session, code)


def test_unverified_email_is_refused_and_creates_nothing(sso: TestClient) -> None:
    from services.domain.models import User

    query = sso_sign_in(sso, "unverified")
    assert query == {"sso_error": ["unverified"]}
    with session_scope() as session:
        assert session.exec(select(User).where(User.email == "mallory@example.org")).first() is None


def test_no_account_while_signup_is_off(sso: TestClient) -> None:
    from services.domain.models import PlatformSetting, User

    with session_scope() as session:
        session.merge(PlatformSetting(key="signup_enabled", value="false"))
    try:
        assert sso_sign_in(sso, "closed") == {"sso_error": ["no-account"]}
    finally:
        with session_scope() as session:
            session.merge(PlatformSetting(key="signup_enabled", value="true"))
    with session_scope() as session:
        assert session.exec(select(User).where(User.email == "closed.sso@example.org")).first() is None


def test_forged_or_replayed_callback_is_refused(sso: TestClient) -> None:
    """A callback without the state Authlib put in the signed cookie signs nobody in."""
    start = sso.get("/api/v1/auth/oidc/login", follow_redirects=False)
    back = provider_round_trip(start.headers["location"], "alice")
    with TestClient(sso.app, base_url=BACKEND) as stranger:  # no cookie: another browser
        refused = stranger.get(back.removeprefix(BACKEND), follow_redirects=False)
    assert parse_qs(urlparse(refused.headers["location"]).query) == {"sso_error": ["failed"]}
    ok = sso.get(back.removeprefix(BACKEND), follow_redirects=False)
    assert "sso" in parse_qs(urlparse(ok.headers["location"]).query)
    replay = sso.get(back.removeprefix(BACKEND), follow_redirects=False)
    assert parse_qs(urlparse(replay.headers["location"]).query) == {"sso_error": ["failed"]}


def test_next_never_leaves_the_site(sso: TestClient) -> None:
    query = sso_sign_in(sso, "alice", next_path="//evil.example/phish")
    assert query["next"] == ["/"]


def test_provider_refusal_reads_as_cancelled(sso: TestClient) -> None:
    start = sso.get("/api/v1/auth/oidc/login", follow_redirects=False)
    state = parse_qs(urlparse(start.headers["location"]).query)["state"][0]
    back = sso.get(
        "/api/v1/auth/oidc/callback",
        params={"error": "access_denied", "state": state},
        follow_redirects=False,
    )
    assert parse_qs(urlparse(back.headers["location"]).query) == {"sso_error": ["cancelled"]}
