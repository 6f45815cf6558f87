"""Tokens (JWT access, rotating refresh, personal), audit log, rate limits, sign-up, passwords,
avatars, members' rules, request limits, security headers and secret-free logs."""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from services.infra.db import session_scope
from tests.security.conftest import PASSWORD, Cast, login, new_user

pytestmark = [pytest.mark.security, pytest.mark.usefixtures("backend")]


def _me(client: TestClient, token: str) -> int:
    return client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code


# --- access and refresh tokens ------------------------------------------------------------------


def test_login_returns_jwt_and_refresh(client: TestClient) -> None:
    _, name = new_user()
    body = login(client, name)
    assert body["access_token"].count(".") == 2 and body["refresh_token"].startswith("vtp_rt_")
    assert body["expires_in"] <= 3600
    assert _me(client, body["access_token"]) == 200


def test_refresh_rotates_and_reuse_revokes_the_family(client: TestClient) -> None:
    _, name = new_user()
    first = login(client, name)
    second = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert _me(client, second["access_token"]) == 200
    # A thief replays the first refresh token: refused, and the whole family is signed out.
    replay = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert _me(client, second["access_token"]) == 401
    assert (
        client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}).status_code
        == 401
    )
    # Another sign-in of the same user is a different family and keeps working.
    assert _me(client, login(client, name)["access_token"]) == 200


def test_expired_and_tampered_access_tokens_are_refused(client: TestClient) -> None:
    from joserfc import jwt
    from joserfc.jwk import OctKey

    from services.domain import tokens
    from services.domain.models import User

    user_id, name = new_user()
    with session_scope() as session:
        pair = tokens.issue_pair(session, user=session.get(User, user_id))
    claims = tokens.decode_access_token(pair.access_token)
    key = OctKey.import_key(tokens.jwt_key())
    expired = jwt.encode(
        {"alg": "HS256"}, {**claims, "iat": claims["iat"] - 7200, "exp": int(time.time()) - 60}, key
    )
    assert _me(client, expired) == 401
    head, payload, signature = pair.access_token.split(".")
    forged_payload = jwt.encode({"alg": "HS256"}, {**claims, "sub": "1"}, OctKey.import_key(b"x" * 32)).split(
        "."
    )[1]
    assert _me(client, f"{head}.{forged_payload}.{signature}") == 401
    assert _me(client, f"{head}.{payload}.{signature[:-4]}AAAA") == 401
    none_alg = jwt.encode({"alg": "HS256"}, claims, key).split(".")
    assert _me(client, f"eyJhbGciOiJub25lIn0.{none_alg[1]}.") == 401
    assert _me(client, pair.access_token) == 200


def test_logout_ends_the_session(client: TestClient) -> None:
    _, name = new_user()
    pair = login(client, name)
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    assert (
        client.post(
            "/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}, headers=headers
        ).status_code
        == 204
    )
    assert _me(client, pair["access_token"]) == 401
    assert (
        client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401
    )


def test_personal_token_lifecycle(client: TestClient) -> None:
    from services.domain.models import ApiToken

    _, name = new_user()
    access = {"Authorization": f"Bearer {login(client, name)['access_token']}"}
    created = client.post("/api/v1/auth/tokens", json={"name": "ci", "expires_in_days": 7}, headers=access)
    assert created.status_code == 201
    secret = created.json()["token"]
    assert secret.startswith("vtp_pat_")
    with session_scope() as session:
        row = session.get(ApiToken, created.json()["id"])
        assert row.token_hash != secret and secret not in row.token_hash and row.last_used_at is None
    assert _me(client, secret) == 200
    # "Last used" is written off the request path, within moments.
    deadline = time.monotonic() + 5
    while (listed := client.get("/api/v1/auth/tokens", headers=access).json())[0]["last_used_at"] is None:
        assert time.monotonic() < deadline, "last_used_at never set"
        time.sleep(0.05)
    assert [t["name"] for t in listed] == ["ci"]
    assert "token" not in listed[0]
    assert client.delete(f"/api/v1/auth/tokens/{created.json()['id']}", headers=access).status_code == 204
    assert _me(client, secret) == 401
    # Someone else's token id is not found (not leaked, not revocable).
    _, other = new_user()
    mine = client.post("/api/v1/auth/tokens", json={"name": "x"}, headers=access).json()
    other_headers = {"Authorization": f"Bearer {login(client, other)['access_token']}"}
    assert client.delete(f"/api/v1/auth/tokens/{mine['id']}", headers=other_headers).status_code == 404


def test_a_resolved_credential_is_reused_until_a_credential_row_changes(client: TestClient) -> None:
    """The REST API keeps a resolved bearer credential for a few seconds (no token query per
    request) while it is subscribed to credential changes, and forgets it as soon as this process
    writes a change that may end it, or another process announces one."""
    from datetime import timedelta

    from sqlalchemy import event

    from services.domain import tokens
    from services.domain.models import ApiToken, utcnow
    from services.infra import live
    from services.infra.db import get_engine

    _, name = new_user()
    access = {"Authorization": f"Bearer {login(client, name)['access_token']}"}
    created = client.post("/api/v1/auth/tokens", json={"name": "cached"}, headers=access).json()
    personal = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/api/v1/auth/me", headers=personal).status_code == 200
    assert tokens.credential_notices().connected.wait(10), "never subscribed to credential changes"
    deadline = time.monotonic() + 5  # "last used" is written off the request path: let it land
    while client.get("/api/v1/auth/tokens", headers=access).json()[0]["last_used_at"] is None:
        assert time.monotonic() < deadline, "last_used_at never set"
        time.sleep(0.05)
    assert client.get("/api/v1/auth/me", headers=personal).status_code == 200  # resolved and kept

    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(" ".join(statement.split()).lower())

    event.listen(get_engine(), "before_cursor_execute", seen)
    try:
        assert client.get("/api/v1/auth/me", headers=personal).status_code == 200
    finally:
        event.remove(get_engine(), "before_cursor_execute", seen)
    assert statements, "the request ran no query at all"
    assert not [s for s in statements if "from apitoken" in s], statements

    # Another process announces a change of credentials: this one forgets what it kept.
    assert tokens.kept_credentials() > 0
    live.publish([tokens.CREDENTIALS_CHANNEL])
    deadline = time.monotonic() + 10
    while tokens.kept_credentials():
        assert time.monotonic() < deadline, "the notice never emptied the cache"
        time.sleep(0.05)

    # The token expires, written straight to the database by this process: refused at once.
    with session_scope() as session:
        row = session.get(ApiToken, created["id"])
        row.expires_at = utcnow() - timedelta(minutes=1)
        session.add(row)
    assert client.get("/api/v1/auth/me", headers=personal).status_code == 401


# --- passwords, sign-up, avatars ----------------------------------------------------------------


def test_password_change_signs_out_other_sessions(client: TestClient) -> None:
    _, name = new_user()
    a, b = login(client, name), login(client, name)
    headers = {"Authorization": f"Bearer {a['access_token']}"}
    wrong = client.post(
        "/api/v1/auth/password",
        json={"current_password": "nope-nope", "new_password": "x" * 12},
        headers=headers,
    )
    assert wrong.status_code == 401
    ok = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "new-pass-123"},
        headers=headers,
    )
    assert ok.status_code == 204
    assert _me(client, b["access_token"]) == 401
    assert client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD}).status_code == 401
    assert _me(client, login(client, name, "new-pass-123")["access_token"]) == 200


def test_reset_token_is_single_use(client: TestClient, cast: Cast) -> None:
    user_id, name = new_user()
    issued = client.post(f"/api/v1/admin/users/{user_id}/reset-token", headers=cast.bearer("platform_admin"))
    assert issued.status_code == 201
    token = issued.json()["reset_token"]
    body = {"token": token, "new_password": "reset-pass-1"}
    assert client.post("/api/v1/auth/password-reset", json=body).status_code == 204
    assert client.post("/api/v1/auth/password-reset", json=body).status_code == 401
    login(client, name, "reset-pass-1")


def test_signup_can_be_switched_off(client: TestClient, cast: Cast) -> None:
    admin = cast.bearer("platform_admin")
    body = {"username": f"s-{uuid.uuid4().hex[:8]}", "password": PASSWORD}
    created = client.post("/api/v1/auth/signup", json=body)
    assert created.status_code == 201
    assert client.post("/api/v1/auth/signup", json=body).status_code == 409
    try:
        assert (
            client.put("/api/v1/admin/settings", json={"signup_enabled": False}, headers=admin).status_code
            == 200
        )
        refused = client.post("/api/v1/auth/signup", json={**body, "username": f"s-{uuid.uuid4().hex[:8]}"})
        assert refused.status_code == 403 and "switched off" in refused.json()["detail"]
    finally:
        client.put("/api/v1/admin/settings", json={"signup_enabled": True}, headers=admin)


def test_avatar_defaults_pass_contrast_and_light_colours_are_refused(client: TestClient) -> None:
    from services.domain import avatars

    for name in ("alice", "bob_builder", "zz-top", "yellow", "x" * 40):
        color = avatars.default_badge_color(name)
        assert avatars.contrast_ratio(color, "#ffffff") >= 4.5, (name, color)
    assert avatars.default_avatar_name("jane_doe") == "JD" and avatars.default_avatar_name("alice") == "AL"
    _, name = new_user()
    headers = {"Authorization": f"Bearer {login(client, name)['access_token']}"}
    light = client.patch("/api/v1/auth/me", json={"badge_color": "#ffff00"}, headers=headers)
    assert light.status_code == 422 and "contrast" in light.json()["detail"]
    dark = client.patch(
        "/api/v1/auth/me", json={"badge_color": "#1D4ED8", "avatar_name": "Q"}, headers=headers
    )
    assert dark.status_code == 200 and dark.json()["badge_color"] == "#1d4ed8"


def test_a_changed_hash_profile_reaches_a_stored_hash_at_the_next_sign_in(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator who raises the argon2 cost needs no reset: old hashes verify, then get redone."""
    from services.domain.models import User
    from services.infra.settings import get_settings

    user_id, name = new_user()  # hashed with the suite's profile (CHEAPEST: 1 pass, 8 KiB)
    with session_scope() as session:
        old_hash = session.get(User, user_id).password_hash
    assert "m=8," in old_hash
    monkeypatch.setenv("VTP_PASSWORD_HASH_PROFILE", "RFC_9106_LOW_MEMORY")
    get_settings.cache_clear()
    try:
        login(client, name)
        with session_scope() as session:
            new_hash = session.get(User, user_id).password_hash
        assert new_hash.startswith("$argon2id$") and "m=65536,t=3,p=4" in new_hash
        login(client, name)  # the new hash verifies, and is left as it is
        with session_scope() as session:
            assert session.get(User, user_id).password_hash == new_hash
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


# --- members' rules -----------------------------------------------------------------------------


def test_owner_rules_and_member_listing(client: TestClient, cast: Cast) -> None:
    from tests.security.conftest import make_project

    pid = make_project(cast, name="rules")
    url = f"/api/v1/projects/{pid}/members"
    owner_id, admin_id = cast.users["owner"], cast.users["admin"]
    members = client.get(url, headers=cast.bearer("viewer")).json()
    assert members[0]["role"] == "owner" and {"avatar_name", "badge_color", "username"} <= set(members[0])
    # Admins cannot touch owners.
    assert (
        client.patch(f"{url}/{owner_id}", json={"role": "member"}, headers=cast.bearer("admin")).status_code
        == 403
    )
    assert client.delete(f"{url}/{owner_id}", headers=cast.bearer("admin")).status_code == 403
    # The last owner can be neither demoted nor removed, even by themselves.
    assert (
        client.patch(f"{url}/{owner_id}", json={"role": "admin"}, headers=cast.bearer("owner")).status_code
        == 409
    )
    assert client.delete(f"{url}/{owner_id}", headers=cast.bearer("owner")).status_code == 409
    # Transfer: the admin becomes owner, the old owner admin; then the old owner can leave.
    transfer = client.post(
        f"/api/v1/projects/{pid}/transfer", json={"user_id": admin_id}, headers=cast.bearer("owner")
    )
    assert transfer.status_code == 204
    roles = {m["user_id"]: m["role"] for m in client.get(url, headers=cast.bearer("viewer")).json()}
    assert roles[admin_id] == "owner" and roles[owner_id] == "admin"
    assert client.delete(f"{url}/{owner_id}", headers=cast.bearer("owner")).status_code == 204
    assert client.get(f"/api/v1/projects/{pid}", headers=cast.bearer("owner")).status_code == 404
    # Deleting the project hides it from everyone.
    assert client.delete(f"/api/v1/projects/{pid}", headers=cast.bearer("admin")).status_code == 204
    assert client.get(f"/api/v1/projects/{pid}/members", headers=cast.bearer("viewer")).status_code == 404
    assert pid not in [p["id"] for p in client.get("/api/v1/projects", headers=cast.bearer("viewer")).json()]


# --- audit --------------------------------------------------------------------------------------


def test_audit_records_mutations_and_denials_and_is_append_only(client: TestClient, cast: Cast) -> None:
    from services.domain.audit import AuditLogIsAppendOnly
    from services.domain.models import AuditEvent

    pid = cast.project_id
    client.patch(f"/api/v1/projects/{pid}", json={"description": "audited"}, headers=cast.bearer("admin"))
    client.patch(f"/api/v1/projects/{pid}", json={"description": "nope"}, headers=cast.bearer("viewer"))
    client.get(f"/api/v1/projects/{pid}/members", headers=cast.bearer("outsider"))
    client.get("/api/v1/projects", headers={"Authorization": "Bearer bogus"})
    admin = cast.bearer("platform_admin")
    rows = client.get("/api/v1/admin/audit", params={"project_id": pid, "limit": 500}, headers=admin).json()
    ok = [
        r
        for r in rows
        if r["result"] == "ok" and r["actor"] == cast.names["admin"] and r["action"] == "project.update"
    ]
    assert ok and ok[0]["source_ip"] == "testclient" and ok[0]["target"] == f"project:{pid}"
    denied = [r for r in rows if r["result"] == "denied"]
    assert any(r["actor"] == cast.names["viewer"] and r["action"] == "project.update" for r in denied)
    assert any(r["actor"] == cast.names["outsider"] and r["action"] == "members.read" for r in denied)
    anon = client.get(
        "/api/v1/admin/audit", params={"result": "denied", "action": "GET /api/v1/projects"}, headers=admin
    ).json()
    assert any(r["status_code"] == 401 and r["actor"] == "" for r in anon)
    # Project admins read their own project's trail; members do not.
    assert client.get(f"/api/v1/projects/{pid}/audit", headers=cast.bearer("admin")).status_code == 200
    assert client.get(f"/api/v1/projects/{pid}/audit", headers=cast.bearer("member")).status_code == 403
    from sqlmodel import Session

    from services.infra.db import get_engine

    for change in ("update", "delete"):
        with Session(get_engine()) as session:
            row = session.exec(select(AuditEvent)).first()
            if change == "update":
                row.result = "ok"
                session.add(row)
            else:
                session.delete(row)
            with pytest.raises(AuditLogIsAppendOnly):
                session.flush()
            session.rollback()


# --- rate limits --------------------------------------------------------------------------------


def test_brute_force_locks_the_account(client: TestClient) -> None:
    from services.infra.settings import get_settings

    _, name = new_user()
    limit = int(get_settings().login_limit_per_account.split()[0])
    for _ in range(limit):
        assert (
            client.post("/api/v1/auth/login", json={"username": name, "password": "guess-guess"}).status_code
            == 401
        )
    locked = client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0


@pytest.mark.slow  # a rate-limit window of real sign-ins: `make test` runs it, not the fast lane
def test_login_failures_are_limited_per_ip(backend: dict[str, str]) -> None:
    from app.api.main import api
    from services.infra.settings import get_settings

    limit = int(get_settings().login_limit_per_ip.split()[0])
    with TestClient(api, client=("203.0.113.9", 4000)) as attacker:
        for i in range(limit):
            response = attacker.post("/api/v1/auth/login", json={"username": f"nobody{i}", "password": "x"})
            assert response.status_code == 401
        assert (
            attacker.post("/api/v1/auth/login", json={"username": "nobody", "password": "x"}).status_code
            == 429
        )
    _, name = new_user()
    with TestClient(api, client=("203.0.113.10", 4000)) as someone_else:
        assert (
            someone_else.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD}).status_code
            == 200
        )


def test_api_calls_are_limited_per_token(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.infra.settings import get_settings

    _, name = new_user()
    token = login(client, name)["access_token"]
    monkeypatch.setenv("VTP_API_LIMIT_PER_TOKEN", "3 per minute")
    get_settings.cache_clear()
    try:
        statuses = [_me(client, token) for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        response = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert 0 < int(response.headers["Retry-After"]) <= 60
    finally:
        monkeypatch.delenv("VTP_API_LIMIT_PER_TOKEN")
        get_settings.cache_clear()


# --- hardening ----------------------------------------------------------------------------------


def test_security_headers_and_body_limit(client: TestClient, cast: Cast) -> None:
    response = client.get("/api/v1/projects", headers=cast.bearer("owner"))
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert (
        client.post("/api/v1/auth/login", json={"username": "a", "password": "b"}).headers["cache-control"]
        == "no-store"
    )
    big = client.post(
        "/api/v1/projects",
        content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={**cast.bearer("owner"), "Content-Type": "application/json"},
    )
    assert big.status_code == 413


def test_no_secret_or_token_in_logs(client: TestClient, cast: Cast, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _, name = new_user()
    secrets_seen = [PASSWORD, "wrong-password-xyz"]
    client.post("/api/v1/auth/login", json={"username": name, "password": "wrong-password-xyz"})
    pair = login(client, name)
    secrets_seen += [pair["access_token"], pair["refresh_token"]]
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    pat = client.post("/api/v1/auth/tokens", json={"name": "ci"}, headers=headers).json()["token"]
    secrets_seen.append(pat)
    client.get("/api/v1/projects", headers={"Authorization": f"Bearer {pat}"})
    client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})  # reuse
    client.get("/api/v1/auth/me", headers={"Authorization": "Bearer " + pair["access_token"][:-3] + "abc"})
    text = "\n".join(r.getMessage() + " " + str(r.args) + " " + (r.exc_text or "") for r in caplog.records)
    for secret in secrets_seen:
        assert secret not in text
    from services.domain.models import AuditEvent

    with session_scope() as session:
        audit_text = " ".join(f"{r.target} {r.detail}" for r in session.exec(select(AuditEvent)).all())
    for secret in secrets_seen:
        assert secret not in audit_text
