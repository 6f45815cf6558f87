"""Audit parity for accounts, projects, members, quotas and platform administration: the same action
through the web UI's path (the services.actions function with `web_actor(token)`, as the state
handler calls it) and through the REST API writes the same audit row (action, actor, target,
result), differing only in its channel. A refused or failed action's row says why (`detail`).

Each case runs twice on fresh, equal fixtures (a new project per channel where the action changes
one), so the second run meets the same situation as the first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, select

from services.infra.db import session_scope
from tests.security.conftest import PASSWORD, Cast, make_project, new_user

pytestmark = [pytest.mark.security, pytest.mark.usefixtures("backend")]

Ctx = dict[str, Any]


@dataclass(frozen=True)
class Case:
    """One action by one caller: its UI call, its REST request and the row both must write."""

    action: str
    part: str  # who acts: a cast part, or "anonymous"
    ui: Callable[[Any, Ctx], object]  # (actor, ctx) -> anything; refusals raise
    method: str
    path: str  # formatted with ctx
    target: Callable[[Cast, Ctx], str]
    result: str = "ok"
    reason: str = ""  # for refusals and failures: what the row's detail must say
    body: Callable[[Ctx], dict] | None = None
    prepare: Callable[[Cast], Ctx] = field(default=lambda _cast: {})
    actor: str | None = None  # the row's actor when not the caller (anonymous sign-in: the account)


def _fresh(cast: Cast) -> Ctx:
    return {"project": make_project(cast, name="parity", extra={"spare": "member"})}


def _shared(cast: Cast) -> Ctx:
    return {"project": cast.project_id}


def _throwaway(cast: Cast) -> Ctx:
    user_id, name = new_user(prefix="par")
    return {"user_id": user_id, "name": name}


def _newcomer(_cast: Cast) -> Ctx:
    from services.domain import auth

    with session_scope() as session:
        auth.set_signup_enabled(session, enabled=True)
    return {"name": f"new-{uuid.uuid4().hex[:8]}"}


def _foreign_token(cast: Cast) -> Ctx:
    from services.domain import tokens
    from services.domain.models import User

    with session_scope() as session:
        row, _ = tokens.create_personal_token(
            session, user=session.get(User, cast.users["owner"]), name="not yours", expires_in_days=1
        )
        return {"token_id": row.id}


def _user_target(part: str) -> Callable[[Cast, Ctx], str]:
    return lambda cast, _ctx: f"user:{cast.users[part]}"


def _project_target(_cast: Cast, ctx: Ctx) -> str:
    return f"project:{ctx['project']}"


def _by_name(_cast: Cast, ctx: Ctx) -> str:
    from services.domain.models import User

    with session_scope() as session:
        user = session.exec(select(User).where(User.username == ctx["name"])).one()
        return f"user:{user.id}"


def _projects() -> Any:
    from services.actions import projects

    return projects


def _accounts() -> Any:
    from services.actions import accounts

    return accounts


def _admin() -> Any:
    from services.actions import admin

    return admin


def _role(value: str) -> Any:
    from services.domain.models import Role

    return Role(value)


P = "/api/v1/projects/{project}"
CASES: list[Case] = [
    # --- projects -----------------------------------------------------------------------------
    Case(
        "project.update",
        "admin",
        lambda a, c: _projects().update_project(a, project_id=c["project"], description="d"),
        "PATCH",
        P,
        _project_target,
        body=lambda _c: {"description": "d"},
        prepare=_fresh,
    ),
    Case(
        "project.update",
        "viewer",
        lambda a, c: _projects().update_project(a, project_id=c["project"], description="d"),
        "PATCH",
        P,
        _project_target,
        result="denied",
        reason="needs admin, has viewer",
        body=lambda _c: {"description": "d"},
        prepare=_fresh,
    ),
    Case(
        "project.read",
        "outsider",
        lambda a, c: _projects().get_project(a, project_id=c["project"]),
        "GET",
        P,
        _project_target,
        result="denied",
        reason="not a member",
        prepare=_shared,
    ),
    Case(
        "project.delete",
        "admin",
        lambda a, c: _projects().delete_project(a, project_id=c["project"]),
        "DELETE",
        P,
        _project_target,
        result="denied",
        reason="needs owner, has admin",
        prepare=_fresh,
    ),
    Case(
        "project.transfer",
        "owner",
        lambda a, c: _projects().transfer_ownership(a, project_id=c["project"], user_id=c["spare"]),
        "POST",
        P + "/transfer",
        _user_target("spare"),
        body=lambda c: {"user_id": c["spare"]},
        prepare=lambda cast: _fresh(cast) | {"spare": cast.users["spare"]},
    ),
    # --- quotas -------------------------------------------------------------------------------
    Case(
        "project.quotas",
        "admin",
        lambda a, c: _projects().set_quotas(
            a, project_id=c["project"], max_running_jobs=2, max_queued_jobs=None
        ),
        "PUT",
        P + "/quotas",
        _project_target,
        body=lambda _c: {"max_running_jobs": 2, "max_queued_jobs": None},
        prepare=_fresh,
    ),
    Case(
        "project.quotas",
        "member",
        lambda a, c: _projects().set_quotas(
            a, project_id=c["project"], max_running_jobs=2, max_queued_jobs=None
        ),
        "PUT",
        P + "/quotas",
        _project_target,
        result="denied",
        reason="needs admin, has member",
        body=lambda _c: {"max_running_jobs": 2, "max_queued_jobs": None},
        prepare=_fresh,
    ),
    Case(
        "quotas.read",
        "outsider",
        lambda a, c: _projects().get_quotas(a, project_id=c["project"]),
        "GET",
        P + "/quotas",
        _project_target,
        result="denied",
        reason="not a member",
        prepare=_shared,
    ),
    # --- members ------------------------------------------------------------------------------
    Case(
        "members.read",
        "outsider",
        lambda a, c: _projects().members_page(a, project_id=c["project"]),
        "GET",
        P + "/members",
        _project_target,
        result="denied",
        reason="not a member",
        prepare=_shared,
    ),
    Case(
        "members.add",
        "admin",
        lambda a, c: _projects().add_member(
            a, project_id=c["project"], username=c["name"], role=_role("viewer")
        ),
        "POST",
        P + "/members",
        _user_target("outsider"),
        body=lambda c: {"username": c["name"], "role": "viewer"},
        prepare=lambda cast: _fresh(cast) | {"name": cast.names["outsider"]},
    ),
    Case(
        "members.add",
        "admin",
        lambda a, c: _projects().add_member(
            a, project_id=c["project"], username=c["name"], role=_role("owner")
        ),
        "POST",
        P + "/members",
        lambda cast, _c: f"username:{cast.names['outsider']}",
        result="denied",
        reason="admins cannot manage owners",
        body=lambda c: {"username": c["name"], "role": "owner"},
        prepare=lambda cast: _fresh(cast) | {"name": cast.names["outsider"]},
    ),
    Case(
        "members.role",
        "admin",
        lambda a, c: _projects().change_role(
            a, project_id=c["project"], user_id=c["spare"], role=_role("viewer")
        ),
        "PATCH",
        P + "/members/{spare}",
        _user_target("spare"),
        body=lambda _c: {"role": "viewer"},
        prepare=lambda cast: _fresh(cast) | {"spare": cast.users["spare"]},
    ),
    Case(
        "members.role",
        "viewer",
        lambda a, c: _projects().change_role(
            a, project_id=c["project"], user_id=c["spare"], role=_role("viewer")
        ),
        "PATCH",
        P + "/members/{spare}",
        _user_target("spare"),
        result="denied",
        reason="needs admin, has viewer",
        body=lambda _c: {"role": "viewer"},
        prepare=lambda cast: _fresh(cast) | {"spare": cast.users["spare"]},
    ),
    Case(
        "members.remove",
        "admin",
        lambda a, c: _projects().remove_member(a, project_id=c["project"], user_id=c["spare"]),
        "DELETE",
        P + "/members/{spare}",
        _user_target("spare"),
        prepare=lambda cast: _fresh(cast) | {"spare": cast.users["spare"]},
    ),
    Case(
        "members.remove",
        "member",
        lambda a, c: _projects().remove_member(a, project_id=c["project"], user_id=c["spare"]),
        "DELETE",
        P + "/members/{spare}",
        _user_target("spare"),
        result="denied",
        reason="needs admin, has member",
        prepare=lambda cast: _fresh(cast) | {"spare": cast.users["spare"]},
    ),
    # --- accounts -----------------------------------------------------------------------------
    Case(
        "auth.login",
        "anonymous",
        lambda a, c: _accounts().sign_in_web(a, username=c["name"], password=PASSWORD),
        "POST",
        "/api/v1/auth/login",
        _by_name,
        body=lambda c: {"username": c["name"], "password": PASSWORD},
        prepare=_throwaway,
        actor="{name}",
    ),
    Case(
        "auth.login",
        "anonymous",
        lambda a, c: _accounts().sign_in_web(a, username=c["name"], password="not-the-password"),
        "POST",
        "/api/v1/auth/login",
        lambda _cast, c: f"username:{c['name']}",
        result="denied",
        reason="wrong password",
        body=lambda c: {"username": c["name"], "password": "not-the-password"},
        prepare=_throwaway,
    ),
    Case(
        "auth.signup",
        "anonymous",
        lambda a, c: _accounts().sign_up_web(a, username=c["name"], password=PASSWORD, email=None),
        "POST",
        "/api/v1/auth/signup",
        _by_name,
        body=lambda c: {"username": c["name"], "password": PASSWORD},
        prepare=_newcomer,
        actor="{name}",
    ),
    Case(
        "auth.password_change",
        "spare",
        lambda a, _c: _accounts().change_password(
            a, current_password="wrong-password-1", new_password=PASSWORD
        ),
        "POST",
        "/api/v1/auth/password",
        _user_target("spare"),
        result="denied",
        reason="wrong current password",
        body=lambda _c: {"current_password": "wrong-password-1", "new_password": PASSWORD},
    ),
    Case(
        "user.profile",
        "member",
        lambda a, _c: _accounts().update_profile(a, avatar_name="MB", badge_color="#1d4ed8"),
        "PATCH",
        "/api/v1/auth/me",
        _user_target("member"),
        body=lambda _c: {"avatar_name": "MB", "badge_color": "#1d4ed8"},
    ),
    Case(
        "user.profile",
        "member",
        lambda a, _c: _accounts().update_profile(a, avatar_name=None, badge_color="#fef08a"),
        "PATCH",
        "/api/v1/auth/me",
        _user_target("member"),
        result="failed",
        reason="choose a darker colour",
        body=lambda _c: {"badge_color": "#fef08a"},
    ),
    Case(
        "token.revoke",
        "member",
        lambda a, c: _accounts().revoke_token(a, token_id=c["token_id"]),
        "DELETE",
        "/api/v1/auth/tokens/{token_id}",
        lambda _cast, c: f"token:{c['token_id']}",
        result="denied",
        reason="another user's token",
        prepare=_foreign_token,
    ),
    # --- platform administration --------------------------------------------------------------
    Case(
        "admin.user_update",
        "platform_admin",
        lambda a, c: _admin().update_user(a, user_id=c["user_id"], is_active=False),
        "PATCH",
        "/api/v1/admin/users/{user_id}",
        lambda _cast, c: f"user:{c['user_id']}",
        body=lambda _c: {"is_active": False},
        prepare=_throwaway,
    ),
    Case(
        "admin.user_update",
        "owner",
        lambda a, c: _admin().update_user(a, user_id=c["user_id"], is_active=False),
        "PATCH",
        "/api/v1/admin/users/{user_id}",
        lambda _cast, c: f"user:{c['user_id']}",
        result="denied",
        reason="not a platform admin",
        body=lambda _c: {"is_active": False},
        prepare=_throwaway,
    ),
    Case(
        "platform.signup",
        "platform_admin",
        lambda a, _c: _admin().set_signup_enabled(a, enabled=True),
        "PUT",
        "/api/v1/admin/settings",
        lambda _cast, _c: "setting:signup_enabled",
        body=lambda _c: {"signup_enabled": True},
    ),
    Case(
        "platform.signup",
        "admin",
        lambda a, _c: _admin().set_signup_enabled(a, enabled=False),
        "PUT",
        "/api/v1/admin/settings",
        lambda _cast, _c: "setting:signup_enabled",
        result="denied",
        reason="not a platform admin",
        body=lambda _c: {"signup_enabled": False},
    ),
    Case(
        "admin.password_reset_token",
        "member",
        lambda a, c: _admin().issue_reset_token(a, user_id=c["user_id"]),
        "POST",
        "/api/v1/admin/users/{user_id}/reset-token",
        lambda _cast, c: f"user:{c['user_id']}",
        result="denied",
        reason="not a platform admin",
        prepare=_throwaway,
    ),
]


def _web_actor(cast: Cast, part: str) -> Any:
    """The actor a state handler would act as: `web_actor` of a fresh web session of the part."""
    from services.actions.core import Actor, web_actor
    from services.domain import tokens
    from services.domain.models import User

    if part == "anonymous":
        return Actor.anonymous(channel="web", source_ip="testclient")
    with session_scope() as session:
        token = tokens.issue_session(session, user=session.get(User, cast.users[part]))
    return web_actor(token, source_ip="testclient")


def _last_id() -> int:
    from services.domain.models import AuditEvent

    with session_scope() as session:
        return session.exec(select(AuditEvent.id).order_by(col(AuditEvent.id).desc())).first() or 0


def _rows_since(after: int, action: str) -> list[tuple[str, str, str, str, str, str]]:
    from services.domain.models import AuditEvent

    with session_scope() as session:
        rows = session.exec(
            select(AuditEvent).where(col(AuditEvent.id) > after, AuditEvent.action == action)
        ).all()
        return [(r.action, r.actor, r.target, r.result, r.detail, r.channel) for r in rows]


def _through_ui(case: Case, cast: Cast, ctx: Ctx) -> None:
    from services.errors import DomainError

    actor = _web_actor(cast, case.part)
    try:
        case.ui(actor, ctx)
    except DomainError:
        assert case.result != "ok", f"the UI path refused an allowed {case.action}"
    else:
        assert case.result == "ok", f"the UI path allowed a refused {case.action}"


def _through_rest(case: Case, cast: Cast, ctx: Ctx, client: TestClient) -> None:
    kwargs: dict[str, Any] = {"json": case.body(ctx)} if case.body else {}
    response = client.request(case.method, case.path.format(**ctx), headers=cast.bearer(case.part), **kwargs)
    assert (response.status_code < 300) == (case.result == "ok"), response.text


@pytest.mark.parametrize(
    "case",
    CASES,
    ids=[f"{c.action} by {c.part} -> {c.result}{' (' + c.reason + ')' if c.reason else ''}" for c in CASES],
)
def test_ui_and_rest_write_the_same_audit_row(client: TestClient, cast: Cast, case: Case) -> None:
    seen = []
    for channel in ("web", "rest"):
        ctx = case.prepare(cast)
        before = _last_id()
        if channel == "web":
            _through_ui(case, cast, ctx)
        else:
            _through_rest(case, cast, ctx, client)
        rows = _rows_since(before, case.action)
        assert len(rows) == 1, f"{channel}: want one {case.action} row, got {rows}"
        action, actor, target, result, detail, written_by = rows[0]
        assert written_by == channel
        who = (case.actor or "").format(**ctx) or ("" if case.part == "anonymous" else cast.names[case.part])
        assert (action, actor, target, result) == (case.action, who, case.target(cast, ctx), case.result)
        if case.result != "ok":
            assert case.reason in detail, f"{channel}: the row should say why ({case.reason!r}): {detail!r}"
        # A case on a fresh account per channel names the account by its template.
        seen.append((action, case.actor or actor, result, detail))
    # Same action, actor, result and reason through both channels (targets were checked above).
    assert seen[0] == seen[1]


def test_a_locked_out_sign_in_is_refused_and_audited_with_its_reason_on_both_channels(
    client: TestClient,
) -> None:
    from services.actions import accounts
    from services.actions.core import Actor
    from services.errors import Unauthorized
    from services.infra.ratelimit import RateLimited
    from services.infra.settings import get_settings

    _uid, name = new_user(prefix="lock")
    # Its own address, so this test spends none of the test client's per-IP budget.
    web = Actor.anonymous(channel="web", source_ip="192.0.2.17")
    before = _last_id()
    for _ in range(int(get_settings().login_limit_per_account.split()[0])):
        with pytest.raises(Unauthorized):
            accounts.sign_in_web(web, username=name, password="not-the-password")
    failed = _rows_since(before, "auth.login")
    assert {(r[2], r[3], r[4], r[5]) for r in failed} == {
        (f"username:{name}", "denied", "wrong password", "web")
    }
    before = _last_id()
    with pytest.raises(RateLimited):  # the right password, but the account is locked out
        accounts.sign_in_web(web, username=name, password=PASSWORD)
    refused = client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert _rows_since(before, "auth.login") == [
        ("auth.login", "", f"username:{name}", "denied", "locked out", channel) for channel in ("web", "rest")
    ]


def test_a_reused_refresh_token_is_audited_with_why_and_signs_out_its_family(
    client: TestClient, cast: Cast
) -> None:
    first = client.post("/api/v1/auth/login", json={"username": cast.names["spare"], "password": PASSWORD})
    pair = first.json()
    assert (
        client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 200
    )
    before = _last_id()
    reused = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert reused.status_code == 401
    [row] = _rows_since(before, "auth.refresh")
    target, result, detail = row[2], row[3], row[4]
    assert (target, result) == (f"user:{cast.users['spare']}", "denied")
    assert detail == "refresh token reused: family revoked"
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 401  # the family's access tokens stopped working too
