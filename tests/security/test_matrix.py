"""The authorization matrix: every REST route and every web UI event handler, for every project role,
an anonymous caller, a member of another project and a platform admin, against ONE table.

A route or handler missing from the table fails `test_every_route_has_a_table_entry` /
`test_every_state_handler_has_a_table_entry`, so a new endpoint cannot ship unreviewed.
Denials: anonymous -> 401, member of another project -> 404 (existence not leaked), too low a role
-> 403. Allowed: a 2xx answer with a valid request.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from services import sample_data
from services.db import session_scope
from tests.security.conftest import PASSWORD, Cast, login, make_project, new_user

pytestmark = [pytest.mark.security, pytest.mark.usefixtures("backend")]

PARTS = ("owner", "admin", "member", "viewer", "outsider", "anonymous", "platform_admin")
EVERYONE = frozenset(PARTS)
SIGNED_IN = EVERYONE - {"anonymous"}
VIEWER_UP = frozenset({"owner", "admin", "member", "viewer"})
MEMBER_UP = frozenset({"owner", "admin", "member"})
ADMIN_UP = frozenset({"owner", "admin"})
OWNER = frozenset({"owner"})
PLATFORM = frozenset({"platform_admin"})
NOBODY: frozenset[str] = frozenset()


@dataclass
class World:
    """Ids the requests point at: the shared project's dataset and job, plus per-case fresh projects."""

    cast: Cast
    client: TestClient
    dataset_id: int = 0
    version: int = 1
    version_id: int = 0

    def fresh_project(self) -> int:
        return make_project(self.cast, name="fresh", extra={"spare": "member"})

    def job(self, project_id: int, creator: str) -> int:
        from services.models import Job

        with session_scope() as session:
            job = Job(
                project_id=project_id,
                dataset_version_id=self.version_id,
                created_by=self.cast.users[creator],
                name="j",
                framework="ultralytics",
                task="detect",
                model="yolo11n.yaml",
                callback_secret=uuid.uuid4().hex,
            )
            session.add(job)
            session.flush()
            return job.id


# A case: (world, calling part) -> (path params, request kwargs). Default: the shared project, no body.
Prepare = Callable[[World, str], tuple[dict[str, Any], dict[str, Any]]]


def shared(body: dict | None = None, **extra: Any) -> Prepare:
    def prepare(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
        params = {
            "project_id": w.cast.project_id,
            "dataset_id": w.dataset_id,
            "version": w.version,
            "index": 0,
            "user_id": w.cast.users["spare"],
            **extra,
        }
        return params, ({"json": body} if body is not None else {})

    return prepare


def fresh(body: Callable[[World], dict] | None = None, *, job_by: str | None = None) -> Prepare:
    def prepare(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
        project_id = w.fresh_project()
        params: dict[str, Any] = {"project_id": project_id, "user_id": w.cast.users["spare"]}
        if job_by:
            params["job_id"] = w.job(project_id, job_by)
        return params, ({"json": body(w)} if body else {})

    return prepare


def _upload(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    data = sample_data.yolo_zip(train=2, val=1)
    return {"project_id": w.cast.project_id}, {"files": {"file": ("m.zip", data, "application/zip")}}


def _login(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return {}, {"json": {"username": w.cast.names["spare"], "password": PASSWORD}}


def _refresh(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return {}, {"json": {"refresh_token": login(w.client, w.cast.names["spare"])["refresh_token"]}}


def _signup(_w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return {}, {"json": {"username": f"new-{uuid.uuid4().hex[:8]}", "password": PASSWORD}}


def _reset(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from services import auth
    from services.models import User

    user_id, _name = new_user(prefix="reset")
    with session_scope() as session:
        admin = session.get(User, w.cast.users["platform_admin"])
        token = auth.issue_reset_token(session, admin=admin, user_id=user_id)
    return {}, {"json": {"token": token, "new_password": PASSWORD + "x"}}


def _password(_w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    # Same password again: the route still runs (and signs out sessions), the cast keeps working.
    return {}, {"json": {"current_password": PASSWORD, "new_password": PASSWORD}}


def _own_token(w: World, part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from services import tokens
    from services.models import User

    user_id = w.cast.users.get(part, w.cast.users["spare"])
    with session_scope() as session:
        row, _secret = tokens.create_personal_token(
            session, user=session.get(User, user_id), name="to-revoke", expires_in_days=1
        )
        return {"token_id": row.id}, {}


def _throwaway_user(body: dict | None = None) -> Prepare:
    def prepare(_w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
        user_id, _ = new_user(prefix="tmp")
        return {"user_id": user_id}, ({"json": body} if body is not None else {})

    return prepare


def _shared_job(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"project_id": w.cast.project_id, "job_id": w.job(w.cast.project_id, "owner")}, {}


def _create_job(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    body = {"dataset_version_id": w.version_id, "hyperparameters": {"epochs": 1}}
    return {"project_id": w.cast.project_id}, {"json": body}


def _callback(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"job_id": w.job(w.cast.project_id, "owner")}, {"json": {"event_id": "x", "type": "heartbeat"}}


@dataclass(frozen=True)
class Rule:
    allowed: frozenset[str]
    prepare: Prepare
    # Project routes answer outsiders 404; routes outside a project answer a wrong caller 403.
    project_scoped: bool = True
    note: str = ""


V1 = "/api/v1"
P = V1 + "/projects/{project_id}"
DV = P + "/datasets/{dataset_id}/versions/{version}"

# THE table. Keys: (method, path template). Values: one or more rules (several for ownership cases).
TABLE: dict[tuple[str, str], list[Rule]] = {
    ("POST", V1 + "/auth/login"): [Rule(EVERYONE, _login, project_scoped=False)],
    ("POST", V1 + "/auth/refresh"): [Rule(EVERYONE, _refresh, project_scoped=False)],
    ("POST", V1 + "/auth/logout"): [Rule(SIGNED_IN, shared({}), project_scoped=False)],
    ("POST", V1 + "/auth/signup"): [Rule(EVERYONE, _signup, project_scoped=False)],
    ("POST", V1 + "/auth/password"): [Rule(SIGNED_IN, _password, project_scoped=False)],
    ("POST", V1 + "/auth/password-reset"): [Rule(EVERYONE, _reset, project_scoped=False)],
    ("GET", V1 + "/auth/me"): [Rule(SIGNED_IN, shared(), project_scoped=False)],
    ("PATCH", V1 + "/auth/me"): [Rule(SIGNED_IN, shared({"badge_color": "#1d4ed8"}), project_scoped=False)],
    ("GET", V1 + "/auth/tokens"): [Rule(SIGNED_IN, shared(), project_scoped=False)],
    ("POST", V1 + "/auth/tokens"): [Rule(SIGNED_IN, shared({"name": "ci"}), project_scoped=False)],
    ("DELETE", V1 + "/auth/tokens/{token_id}"): [Rule(SIGNED_IN, _own_token, project_scoped=False)],
    ("GET", V1 + "/projects"): [Rule(SIGNED_IN, shared(), project_scoped=False)],
    ("POST", V1 + "/projects"): [Rule(SIGNED_IN, shared({"name": "mine"}), project_scoped=False)],
    ("GET", P): [Rule(VIEWER_UP, shared())],
    ("PATCH", P): [Rule(ADMIN_UP, shared({"description": "d"}))],
    ("DELETE", P): [Rule(OWNER, fresh())],
    ("POST", P + "/transfer"): [Rule(OWNER, fresh(lambda w: {"user_id": w.cast.users["spare"]}))],
    ("GET", P + "/members"): [Rule(VIEWER_UP, shared())],
    ("POST", P + "/members"): [
        Rule(ADMIN_UP, fresh(lambda w: {"username": w.cast.names["outsider"], "role": "viewer"})),
        Rule(
            OWNER, fresh(lambda w: {"username": w.cast.names["outsider"], "role": "owner"}), note="add owner"
        ),
    ],
    ("PATCH", P + "/members/{user_id}"): [
        Rule(ADMIN_UP, fresh(lambda _w: {"role": "viewer"})),
        Rule(OWNER, fresh(lambda _w: {"role": "owner"}), note="promote to owner"),
    ],
    ("DELETE", P + "/members/{user_id}"): [Rule(ADMIN_UP, fresh())],
    ("GET", P + "/audit"): [Rule(ADMIN_UP, shared())],
    ("GET", P + "/datasets"): [Rule(VIEWER_UP, shared())],
    ("POST", P + "/datasets"): [Rule(MEMBER_UP, _upload)],
    ("GET", P + "/datasets/{dataset_id}/versions"): [Rule(VIEWER_UP, shared())],
    ("GET", DV): [Rule(VIEWER_UP, shared())],
    ("GET", DV + "/report"): [Rule(VIEWER_UP, shared())],
    ("GET", DV + "/stats"): [Rule(VIEWER_UP, shared())],
    ("GET", DV + "/images"): [Rule(VIEWER_UP, shared())],
    ("GET", DV + "/images/{index}"): [Rule(VIEWER_UP, shared())],
    ("GET", DV + "/images/{index}/thumbnail"): [Rule(VIEWER_UP, shared())],
    ("POST", P + "/datasets/{dataset_id}/split"): [Rule(MEMBER_UP, shared({"method": "random", "seed": 1}))],
    ("GET", P + "/jobs"): [Rule(VIEWER_UP, shared())],
    ("POST", P + "/jobs"): [Rule(MEMBER_UP, _create_job)],
    ("GET", P + "/jobs/{job_id}"): [Rule(VIEWER_UP, _shared_job)],
    ("POST", P + "/jobs/{job_id}/cancel"): [
        Rule(ADMIN_UP, fresh(job_by="owner"), note="someone else's job"),
        Rule(MEMBER_UP, fresh(job_by="member"), note="the member's own job"),
    ],
    # Trainer callbacks carry an HMAC per job, never a bearer token: no user may post one.
    ("POST", V1 + "/trainer/callbacks/{job_id}"): [Rule(NOBODY, _callback, project_scoped=False)],
    ("GET", V1 + "/admin/users"): [Rule(PLATFORM, shared(), project_scoped=False)],
    ("PATCH", V1 + "/admin/users/{user_id}"): [
        Rule(PLATFORM, _throwaway_user({"is_active": False}), project_scoped=False)
    ],
    ("POST", V1 + "/admin/users/{user_id}/reset-token"): [
        Rule(PLATFORM, _throwaway_user(), project_scoped=False)
    ],
    ("GET", V1 + "/admin/settings"): [Rule(PLATFORM, shared(), project_scoped=False)],
    ("PUT", V1 + "/admin/settings"): [Rule(PLATFORM, shared({"signup_enabled": True}), project_scoped=False)],
    ("GET", V1 + "/admin/audit"): [Rule(PLATFORM, shared(), project_scoped=False)],
    ("GET", "/healthz"): [Rule(EVERYONE, shared(), project_scoped=False)],
    ("GET", "/readyz"): [Rule(EVERYONE, shared(), project_scoped=False)],
    ("GET", "/metrics"): [Rule(EVERYONE, shared(), project_scoped=False)],
}


def api_routes() -> set[tuple[str, str]]:
    from app.api.main import api

    found = set()
    for context in iter_route_contexts(api.routes):
        if isinstance(context.original_route, APIRoute):
            for method in context.methods or ():
                found.add((method, context.path_format))
    return found


def test_every_route_has_a_table_entry() -> None:
    routes = api_routes()
    missing = sorted(routes - set(TABLE))
    assert not missing, f"Routes without an authorization table entry (add them to TABLE): {missing}"
    stale = sorted(set(TABLE) - routes)
    assert not stale, f"Table entries for routes that no longer exist: {stale}"


@pytest.fixture(scope="module")
def world(client: TestClient, cast: Cast) -> World:
    w = World(cast=cast, client=client)
    response = client.post(
        f"/api/v1/projects/{cast.project_id}/datasets",
        files={"file": ("shapes.zip", sample_data.yolo_zip(train=4, val=2), "application/zip")},
        headers=cast.bearer("owner"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    w.dataset_id, w.version, w.version_id = body["dataset_id"], body["version"], body["id"]
    return w


def _expected_denial(rule: Rule, part: str) -> int:
    if part == "anonymous":
        return 401
    if rule.allowed is NOBODY:
        return 401  # bearer tokens are not callback signatures
    if rule.project_scoped and part in {"outsider", "platform_admin"}:
        return 404
    return 403


CASES = [
    pytest.param(key, index, part, id=f"{key[0]} {key[1]} [{rule.note or 'default'}] as {part}")
    for key, rules in TABLE.items()
    for index, rule in enumerate(rules)
    for part in PARTS
]


@pytest.mark.parametrize(("key", "index", "part"), CASES)
def test_matrix(world: World, key: tuple[str, str], index: int, part: str) -> None:
    method, template = key
    rule = TABLE[key][index]
    params, kwargs = rule.prepare(world, part)
    url = template.format(**{k: v for k, v in params.items() if "{" + k + "}" in template})
    response = world.client.request(method, url, headers=world.cast.bearer(part), **kwargs)
    if part in rule.allowed:
        assert response.status_code < 300, f"{part} should be allowed: {response.status_code} {response.text}"
    else:
        expected = _expected_denial(rule, part)
        assert response.status_code == expected, (
            f"{part}: want {expected}, got {response.status_code} {response.text}"
        )


# --- IDOR: another project's ids are NotFound, never Forbidden ----------------------------------


def test_other_projects_objects_are_not_found(world: World) -> None:
    """The outsider owns project B; A's dataset/job ids addressed through B (or A) answer 404."""
    cast, client = world.cast, world.client
    job_id = world.job(cast.project_id, "owner")
    headers = cast.bearer("outsider")
    other = cast.other_project_id
    urls = [
        f"/api/v1/projects/{other}/jobs/{job_id}",
        f"/api/v1/projects/{other}/datasets/{world.dataset_id}/versions",
        f"/api/v1/projects/{other}/datasets/{world.dataset_id}/versions/{world.version}",
        f"/api/v1/projects/{other}/datasets/{world.dataset_id}/versions/{world.version}/images/0",
        f"/api/v1/projects/{cast.project_id}/jobs/{job_id}",
        f"/api/v1/projects/{cast.project_id}/datasets/{world.dataset_id}/versions",
    ]
    for url in urls:
        response = client.get(url, headers=headers)
        assert response.status_code == 404, (url, response.status_code, response.text)
    cancel = client.post(f"/api/v1/projects/{other}/jobs/{job_id}/cancel", headers=headers)
    assert cancel.status_code == 404
    train = client.post(
        f"/api/v1/projects/{other}/jobs", json={"dataset_version_id": world.version_id}, headers=headers
    )
    assert train.status_code == 404
    # A missing id and a foreign id answer the same way, so existence is not leaked.
    missing = client.get(f"/api/v1/projects/{other}/jobs/99999999", headers=headers)
    foreign = client.get(f"/api/v1/projects/{other}/jobs/{job_id}", headers=headers)
    assert missing.status_code == foreign.status_code == 404


# --- the web UI's event handlers ----------------------------------------------------------------


def _session_token(cast: Cast, part: str) -> str:
    from services import auth
    from services.models import User

    if part == "anonymous":
        return ""
    with session_scope() as session:
        return auth.issue_token(session, user=session.get(User, cast.users[part]))


def _ui_jobs_rows(w: World, token: str) -> bool:
    from services.errors import DomainError
    from state.dashboard_state import _jobs_rows

    try:
        return _jobs_rows(token, w.cast.project_id) is not None
    except DomainError:
        return False


def _ui_create_job(w: World, token: str) -> bool:
    from services.errors import DomainError
    from state.dashboard_state import _create_job

    request = {
        "dataset_version_id": w.version_id,
        "name": "ui",
        "framework": "ultralytics",
        "task": "detect",
        "model": "yolo11n.yaml",
        "hyperparameters": {"epochs": 1},
    }
    try:
        _create_job(token, w.cast.project_id, request)
    except DomainError:
        return False
    return True


def _ui_load_job(w: World, token: str) -> bool:
    from state.job_state import load_job

    return load_job(token, w.job(w.cast.project_id, "owner")).detail is not None


def _ui_cancel(creator: str) -> Callable[[World, str], bool]:
    def check(w: World, token: str) -> bool:
        from services.errors import DomainError
        from state.job_state import _cancel

        try:
            asyncio.run(_cancel(token, w.job(w.cast.project_id, creator)))
        except DomainError:
            return False
        return True

    return check


UI_TABLE: dict[str, list[tuple[frozenset[str], Callable[[World, str], bool]]] | str] = {
    "AuthState.sign_in": "no project data (password check, rate limited and audited in services.auth)",
    "AuthState.sign_out": "no project data",
    "AuthState.load_login_page": "no project data",
    "AuthState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "DashboardState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "JobPageState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "DashboardState.load": [(VIEWER_UP, _ui_jobs_rows)],
    "DashboardState.select_project": [(VIEWER_UP, _ui_jobs_rows)],
    "DashboardState.watch_jobs": [(VIEWER_UP, _ui_jobs_rows)],
    "DashboardState.start_training": [(MEMBER_UP, _ui_create_job)],
    "JobPageState.load": [(VIEWER_UP, _ui_load_job)],
    "JobPageState.watch": [(VIEWER_UP, _ui_load_job)],
    "JobPageState.cancel": [(ADMIN_UP, _ui_cancel("owner")), (MEMBER_UP, _ui_cancel("member"))],
}


def state_handlers() -> set[str]:
    import reflex as rx

    import state.auth_state
    import state.dashboard_state
    import state.job_state

    names = set()
    for module in (state.auth_state, state.dashboard_state, state.job_state):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, rx.State)
                and value.__module__ == module.__name__
            ):
                names.update(f"{value.__name__}.{handler}" for handler in value.event_handlers)
    return names


def test_every_state_handler_has_a_table_entry() -> None:
    handlers = state_handlers()
    missing = sorted(handlers - set(UI_TABLE))
    assert not missing, (
        f"Event handlers without an authorization table entry (add them to UI_TABLE): {missing}"
    )


UI_CASES = [
    pytest.param(name, index, part, id=f"{name}[{index}] as {part}")
    for name, entry in UI_TABLE.items()
    if not isinstance(entry, str)
    for index in range(len(entry))
    for part in PARTS
]


@pytest.mark.parametrize(("name", "index", "part"), UI_CASES)
def test_ui_matrix(world: World, name: str, index: int, part: str) -> None:
    entry = UI_TABLE[name]
    assert not isinstance(entry, str)
    allowed, check = entry[index]
    assert check(world, _session_token(world.cast, part)) is (part in allowed)
