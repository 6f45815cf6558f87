"""The authorization matrix: every REST route and every web UI event handler, for every project role,
an anonymous caller, a member of another project and a platform admin, against ONE table.

A route or handler missing from the table fails `test_every_route_has_a_table_entry` /
`test_every_state_handler_has_a_table_entry`, so a new endpoint cannot ship unreviewed.
Denials: anonymous -> 401, member of another project -> 404 (existence not leaked), too low a role
-> 403. Allowed: a 2xx answer with a valid request.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from services.infra.db import session_scope
from services.runtime import sample_data
from tests.security.conftest import PASSWORD, Cast, login, make_project, new_user
from tests.utils import aio

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
        from services.domain.models import Job

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


def _no_follow(_w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return {}, {"follow_redirects": False}


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
    from services.domain import auth

    user_id, _name = new_user(prefix="reset")
    with session_scope() as session:
        token = auth.issue_reset_token(session, user_id=user_id)
    return {}, {"json": {"token": token, "new_password": PASSWORD + "x"}}


def _password(_w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    # Same password again: the route still runs (and signs out sessions), the cast keeps working.
    return {}, {"json": {"current_password": PASSWORD, "new_password": PASSWORD}}


def _own_token(w: World, part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from services.domain import tokens
    from services.domain.models import User

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


def _sweep(w: World, project_id: int, creator: str, *, with_best: bool = False) -> int:
    """A running sweep row (no worker steps it here); `with_best`: its study holds a finished trial."""
    import optuna

    from services.domain import sweeps
    from services.domain.models import Sweep

    space = {"lr0": {"type": "float", "low": 0.001, "high": 0.1, "log": True}}
    with session_scope() as session:
        row = Sweep(
            project_id=project_id,
            dataset_version_id=w.version_id,
            created_by=w.cast.users[creator],
            name="s",
            framework="ultralytics",
            task="detect",
            model="yolo11n.yaml",
            search_space=space,
            objective="map50",
            n_trials=2,
        )
        session.add(row)
        session.flush()
        row.study_name = sweeps.study_name(row.id)
        sweep_id = row.id
    if with_best:
        study = optuna.create_study(study_name=sweeps.study_name(sweep_id), storage=sweeps.storage())
        trial = optuna.trial.create_trial(
            params={"lr0": 0.01}, distributions=sweeps.distributions(space), value=0.5
        )
        study.add_trial(trial)
    return sweep_id


def _shared_sweep(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"project_id": w.cast.project_id, "sweep_id": _sweep(w, w.cast.project_id, "owner")}, {}


def _compared_jobs(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two succeeded jobs of the shared project with stored val predictions, compared."""
    from tests.utils.predictions import succeeded_job, truth_doc, version_manifest

    doc = truth_doc(version_manifest(w.version_id))
    on = {"project_id": w.cast.project_id, "version_id": w.version_id, "user_id": w.cast.users["owner"]}
    ids = [succeeded_job(**on, doc=doc) for _ in range(2)]
    return {"project_id": w.cast.project_id}, {"params": {"jobs": ",".join(map(str, ids))}}


def _confusion_cell(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A succeeded job of the shared project with stored val predictions: one cell of its matrix."""
    from tests.utils.predictions import succeeded_job, truth_doc, version_manifest

    manifest = version_manifest(w.version_id)
    on = {"project_id": w.cast.project_id, "version_id": w.version_id, "user_id": w.cast.users["owner"]}
    job_id = succeeded_job(**on, doc=truth_doc(manifest))
    name = manifest["classes"][0]
    return {"project_id": w.cast.project_id, "job_id": job_id}, {"params": {"true": name, "predicted": name}}


def _best_sweep(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    sweep_id = _sweep(w, w.cast.project_id, "owner", with_best=True)
    return {"project_id": w.cast.project_id, "sweep_id": sweep_id}, {}


def _fresh_sweep(creator: str) -> Prepare:
    def prepare(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
        project_id = w.fresh_project()
        return {"project_id": project_id, "sweep_id": _sweep(w, project_id, creator)}, {}

    return prepare


def _create_sweep(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    body = {
        "dataset_version_id": w.version_id,
        "search_space": {
            "lr0": {"type": "float", "low": 0.001, "high": 0.01},
            "epochs": {"type": "fixed", "value": 1},
        },
        "objective": "map50",
        "n_trials": 2,
    }
    return {"project_id": w.cast.project_id}, {"json": body}


def _callback(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"job_id": w.job(w.cast.project_id, "owner")}, {"json": {"event_id": "x", "type": "heartbeat"}}


def _callback_batch(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    events = [{"event_id": "x", "type": "heartbeat"}]
    return {"job_id": w.job(w.cast.project_id, "owner")}, {"json": {"events": events}}


def _finished_job(creator: str, state: str = "failed") -> Prepare:
    def prepare(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
        from services.domain.models import Job

        project_id = w.fresh_project()
        job_id = w.job(project_id, creator)
        with session_scope() as session:
            job = session.get(Job, job_id)
            job.state = state
            session.add(job)
        return {"project_id": project_id, "job_id": job_id}, {}

    return prepare


_CHECKPOINT: dict[str, str] = {}


def _trained_job(w: World) -> tuple[int, int]:
    """A succeeded job of the shared project with a best checkpoint in S3.

    The checkpoint's bytes are a placeholder: every row that uses it stops past authorization
    before anything loads it (MLflow is down, a batch job is only queued).
    """
    from services.domain.models import Job
    from services.infra import storage

    if "uri" not in _CHECKPOINT:
        _CHECKPOINT["uri"] = storage.put_bytes("matrix/checkpoints/best.pt", b"placeholder checkpoint")
    job_id = w.job(w.cast.project_id, "owner")
    with session_scope() as session:
        job = session.get(Job, job_id)
        job.state = "succeeded"
        job.artifacts = {"best_checkpoint": _CHECKPOINT["uri"]}
        session.add(job)
    return w.cast.project_id, job_id


def _tag_job(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"project_id": w.cast.project_id, "job_id": w.job(w.cast.project_id, "owner")}, {
        "json": {"tags": ["baseline"]}
    }


def _save_comparison(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    body = {"name": "view", "job_ids": [w.job(w.cast.project_id, "owner")], "metric": "map50"}
    return {"project_id": w.cast.project_id}, {"json": body}


def _saved_comparison(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from services.domain.models import SavedComparison

    with session_scope() as session:
        row = SavedComparison(
            project_id=w.cast.project_id,
            name="shared view",
            job_ids=[w.job(w.cast.project_id, "owner")],
            created_by=w.cast.users["owner"],
        )
        session.add(row)
        session.flush()
        return {"project_id": w.cast.project_id, "comparison_id": row.id}, {}


# Export and predict on a job without a checkpoint: allowed callers get past authorization to 409
# ("no checkpoint"). The trained path (the trainer exporting and predicting) is the `trainer`
# tests' job; here it cost a dozen seconds of the fast lane for no authorization fact.
NO_CHECKPOINT = "a job without a checkpoint: allowed callers get past authorization to 409"


def _export(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    project_id, job_id = w.cast.project_id, w.job(w.cast.project_id, "owner")
    return {"project_id": project_id, "job_id": job_id}, {"json": {"formats": ["torchscript"]}}


def _predict(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    import io

    from PIL import Image

    project_id, job_id = w.cast.project_id, w.job(w.cast.project_id, "owner")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, format="PNG")
    files = {"image": ("red.png", buffer.getvalue(), "image/png")}
    return {"project_id": project_id, "job_id": job_id}, {"files": files}


def _registered(w: World) -> str:
    """A registered model of the shared project with version 1 and alias `champion` (rows only)."""
    from services.domain.models import ModelAlias, ModelVersion, RegisteredModel

    name = f"m-{uuid.uuid4().hex[:8]}"
    with session_scope() as session:
        model = RegisteredModel(
            project_id=w.cast.project_id,
            name=name,
            mlflow_name=f"matrix.{name}",
            created_by=w.cast.users["owner"],
        )
        session.add(model)
        session.flush()
        version = ModelVersion(
            model_id=model.id,
            version=1,
            source="upload",
            weights_uri="s3://vtp/matrix/weights.pt",
            mlflow_run_id="r",
            framework="ultralytics",
            task="detect",
            architecture="yolo11n.yaml",
            registered_by=w.cast.users["owner"],
        )
        session.add(version)
        session.flush()
        session.add(
            ModelAlias(
                model_id=model.id, alias="champion", version_id=version.id, updated_by=w.cast.users["owner"]
            )
        )
    return name


def _model(body: dict | None = None) -> Prepare:
    def prepare(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
        params = {"project_id": w.cast.project_id, "name": _registered(w), "version": 1, "alias": "champion"}
        return params, ({"json": body} if body is not None else {})

    return prepare


def _resolve(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"project_id": w.cast.project_id}, {"params": {"ref": f"models/{_registered(w)}@champion"}}


def _register(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    project_id, job_id = _trained_job(w)
    return {"project_id": project_id}, {"json": {"job_id": job_id, "name": "matrix-model"}}


def _upload_weights(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from services.infra import storage

    _trained_job(w)
    data = storage.get_bytes(_CHECKPOINT["uri"])
    files = {"file": ("yolo.pt", data, "application/octet-stream")}
    return {"project_id": w.cast.project_id}, {"files": files, "data": {"name": "matrix-upload"}}


# The trainer loads uploaded weights before anything is stored for good: a placeholder is refused.
NOT_WEIGHTS = "a file that is not weights: allowed callers get past authorization to 422"

# No MLflow runs beside this backend: callers past authorization reach the registry and get 503.
MLFLOW_DOWN = "no MLflow here: allowed callers get past authorization to 503"


def _notification_rule(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from services.domain import notifications
    from services.domain.models import User

    with session_scope() as session:
        rule = notifications.create_rule(
            session,
            project_id=w.cast.project_id,
            user=session.get(User, w.cast.users["owner"]),
            kind="webhook",
            target="http://127.0.0.1:9/hook",
            events=["job.failed"],
        )
    return {"project_id": w.cast.project_id, "rule_id": rule.id}, {}


_WEBHOOK = {"kind": "webhook", "target": "http://127.0.0.1:9/hook", "events": ["job.failed"]}


def _batch(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    project_id, job_id = _trained_job(w)
    body = {"model": f"jobs/{job_id}", "dataset_version_id": w.version_id}
    return {"project_id": project_id}, {"json": body}


def _batch_zip(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    project_id, job_id = _trained_job(w)
    files = {"images": ("photos.zip", sample_data.yolo_zip(train=2, val=1), "application/zip")}
    return {"project_id": project_id}, {"files": files, "data": {"model": f"jobs/{job_id}"}}


def _batch_job(w: World, _part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from services.domain.models import Job

    job_id = w.job(w.cast.project_id, "owner")
    with session_scope() as session:
        job = session.get(Job, job_id)
        job.kind = "batch_inference"
        job.inference = {"model_uri": "s3://vtp/none.pt", "source": "dataset"}
        session.add(job)
    return {"project_id": w.cast.project_id, "job_id": job_id}, {}


def _predict_ref(w: World, part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    params, kwargs = _predict(w, part)
    return {"project_id": params["project_id"]}, {**kwargs, "data": {"model": f"jobs/{params['job_id']}"}}


@dataclass(frozen=True)
class Rule:
    allowed: frozenset[str]
    prepare: Prepare
    # Project routes answer outsiders 404; routes outside a project answer a wrong caller 403.
    project_scoped: bool = True
    note: str = ""
    # Browser-facing routes answer every caller with a redirect (single sign-on's two steps).
    allowed_status: tuple[int, ...] = (200, 201, 202, 204)


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
    ("GET", V1 + "/auth/oidc/login"): [
        Rule(EVERYONE, _no_follow, project_scoped=False, allowed_status=(303,))
    ],
    ("GET", V1 + "/auth/oidc/callback"): [
        Rule(EVERYONE, _no_follow, project_scoped=False, allowed_status=(303,))
    ],
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
    ("GET", P + "/quotas"): [Rule(VIEWER_UP, shared())],
    # A fresh project: quotas on the shared one would refuse the job-creating cases.
    ("PUT", P + "/quotas"): [Rule(ADMIN_UP, fresh(lambda _w: {"max_running_jobs": 2, "max_queued_jobs": 5}))],
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
    ("POST", P + "/datasets/{dataset_id}/versions"): [
        Rule(
            MEMBER_UP,
            lambda w, part: (
                shared()(w, part)[0],
                {"files": {"file": ("v.zip", sample_data.yolo_zip(train=2, val=1), "application/zip")}},
            ),
        )
    ],
    ("POST", P + "/datasets/{dataset_id}/rename-classes"): [
        Rule(
            MEMBER_UP,
            lambda w, part: shared({"from_version": 1, "names": {"circle": f"circle-{part}"}})(w, part),
        )
    ],
    ("GET", P + "/jobs"): [Rule(VIEWER_UP, shared())],
    ("POST", P + "/jobs"): [Rule(MEMBER_UP, _create_job)],
    ("GET", P + "/jobs/{job_id}"): [Rule(VIEWER_UP, _shared_job)],
    ("POST", P + "/jobs/{job_id}/cancel"): [
        Rule(ADMIN_UP, fresh(job_by="owner"), note="someone else's job"),
        Rule(MEMBER_UP, fresh(job_by="member"), note="the member's own job"),
    ],
    ("POST", P + "/jobs/{job_id}/retry"): [
        Rule(ADMIN_UP, _finished_job("owner"), note="someone else's job"),
        Rule(MEMBER_UP, _finished_job("member", "cancelled"), note="the member's own job"),
    ],
    ("GET", P + "/sweeps"): [Rule(VIEWER_UP, shared())],
    ("POST", P + "/sweeps"): [Rule(MEMBER_UP, _create_sweep)],
    ("GET", P + "/sweeps/{sweep_id}"): [Rule(VIEWER_UP, _shared_sweep)],
    ("POST", P + "/sweeps/{sweep_id}/cancel"): [
        Rule(ADMIN_UP, _fresh_sweep("owner"), note="someone else's sweep"),
        Rule(MEMBER_UP, _fresh_sweep("member"), note="the member's own sweep"),
    ],
    ("POST", P + "/sweeps/{sweep_id}/train-best"): [Rule(MEMBER_UP, _best_sweep)],
    ("GET", P + "/predictions/compare"): [Rule(VIEWER_UP, _compared_jobs)],
    ("GET", P + "/jobs/{job_id}/artifacts"): [Rule(VIEWER_UP, _shared_job)],
    ("GET", P + "/jobs/{job_id}/validation"): [Rule(VIEWER_UP, _shared_job)],
    ("GET", P + "/jobs/{job_id}/confusion"): [Rule(VIEWER_UP, _confusion_cell)],
    ("POST", P + "/jobs/{job_id}/export"): [
        Rule(MEMBER_UP, _export, note=NO_CHECKPOINT, allowed_status=(409,))
    ],
    ("POST", P + "/jobs/{job_id}/predict"): [
        Rule(MEMBER_UP, _predict, note=NO_CHECKPOINT, allowed_status=(409,))
    ],
    ("GET", P + "/models"): [Rule(VIEWER_UP, shared())],
    ("POST", P + "/models/register"): [
        Rule(MEMBER_UP, _register, note=MLFLOW_DOWN, allowed_status=(201, 503))
    ],
    ("POST", P + "/models/upload"): [
        Rule(MEMBER_UP, _upload_weights, note=NOT_WEIGHTS, allowed_status=(422,))
    ],
    ("GET", P + "/models/resolve"): [Rule(VIEWER_UP, _resolve)],
    ("GET", P + "/models/{name}"): [Rule(VIEWER_UP, _model())],
    ("GET", P + "/models/{name}/versions/{version}"): [Rule(VIEWER_UP, _model())],
    ("GET", P + "/models/{name}/versions/{version}/downloads"): [Rule(VIEWER_UP, _model())],
    ("PUT", P + "/models/{name}/aliases/{alias}"): [
        Rule(ADMIN_UP, _model({"version": 1}), note=MLFLOW_DOWN, allowed_status=(200, 503))
    ],
    ("DELETE", P + "/models/{name}/aliases/{alias}"): [
        Rule(ADMIN_UP, _model(), note=MLFLOW_DOWN, allowed_status=(204, 503))
    ],
    ("POST", P + "/predict"): [Rule(MEMBER_UP, _predict_ref, note=NO_CHECKPOINT, allowed_status=(409,))],
    ("POST", P + "/batch-inference"): [Rule(MEMBER_UP, _batch)],
    ("POST", P + "/batch-inference/upload"): [Rule(MEMBER_UP, _batch_zip)],
    ("GET", P + "/jobs/{job_id}/batch-results"): [Rule(VIEWER_UP, _batch_job)],
    ("GET", P + "/runs"): [Rule(VIEWER_UP, shared())],
    ("PUT", P + "/jobs/{job_id}/tags"): [Rule(MEMBER_UP, _tag_job)],
    ("GET", P + "/compare"): [Rule(VIEWER_UP, shared())],
    ("GET", P + "/compare.csv"): [Rule(VIEWER_UP, shared())],
    ("POST", P + "/comparisons"): [Rule(VIEWER_UP, _save_comparison)],
    ("GET", P + "/comparisons"): [Rule(VIEWER_UP, shared())],
    ("GET", P + "/comparisons/{comparison_id}"): [Rule(VIEWER_UP, _saved_comparison)],
    ("GET", P + "/notifications/rules"): [Rule(MEMBER_UP, shared())],
    ("POST", P + "/notifications/rules"): [Rule(ADMIN_UP, shared(_WEBHOOK))],
    ("DELETE", P + "/notifications/rules/{rule_id}"): [Rule(ADMIN_UP, _notification_rule)],
    ("POST", P + "/notifications/rules/{rule_id}/test"): [Rule(ADMIN_UP, _notification_rule)],
    ("GET", P + "/notifications/deliveries"): [Rule(MEMBER_UP, shared())],
    ("GET", V1 + "/me/notifications"): [Rule(SIGNED_IN, shared(), project_scoped=False)],
    ("POST", V1 + "/me/notifications/read"): [Rule(SIGNED_IN, shared(), project_scoped=False)],
    ("PUT", V1 + "/me/notification-settings"): [
        Rule(SIGNED_IN, shared({"own_jobs": True}), project_scoped=False)
    ],
    ("GET", V1 + "/plugins"): [Rule(SIGNED_IN, shared(), project_scoped=False)],
    ("GET", V1 + "/analytics"): [Rule(SIGNED_IN, shared(), project_scoped=False)],
    # Trainer callbacks carry an HMAC per job, never a bearer token: no user may post one.
    ("POST", V1 + "/trainer/callbacks/{job_id}"): [Rule(NOBODY, _callback, project_scoped=False)],
    ("POST", V1 + "/trainer/callbacks/{job_id}/batch"): [Rule(NOBODY, _callback_batch, project_scoped=False)],
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
    ("GET", V1 + "/admin/projects"): [Rule(PLATFORM, shared(), project_scoped=False)],
    # A priority ranks a project against all others: not even the project's owner may set it.
    ("PUT", V1 + "/admin/projects/{project_id}/priority"): [
        Rule(PLATFORM, fresh(lambda _w: {"priority": 1}), project_scoped=False)
    ],
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
        assert response.status_code in rule.allowed_status, (
            f"{part} should be allowed: {response.status_code} {response.text}"
        )
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
    from services.domain import tokens
    from services.domain.models import User

    if part == "anonymous":
        return ""
    with session_scope() as session:
        return tokens.issue_session(session, user=session.get(User, cast.users[part]))


def _ui_jobs_rows(w: World, token: str) -> bool:
    from services.errors import DomainError
    from state.dashboard_state import _jobs_rows

    try:
        return _jobs_rows(token, w.cast.project_id) is not None
    except DomainError:
        return False


def _ui_create_job(w: World, token: str) -> bool:
    from services.actions import jobs
    from services.actions.core import web_actor
    from services.domain.schemas import JobCreate
    from services.errors import DomainError

    request = JobCreate(
        dataset_version_id=w.version_id,
        name="ui",
        framework="ultralytics",
        task="detect",
        model="yolo11n.yaml",
        hyperparameters={"epochs": 1},
    )
    try:
        aio.run(jobs.create(web_actor(token), project_id=w.cast.project_id, request=request))
    except DomainError:
        return False
    return True


def _ui_load_job(w: World, token: str) -> bool:
    from state.job_state import load_job

    return load_job(token, w.job(w.cast.project_id, "owner")).detail is not None


def _ui_create_sweep(w: World, token: str) -> bool:
    from services.actions import sweeps
    from services.actions.core import web_actor
    from services.domain.schemas import SweepCreate

    request = SweepCreate(
        dataset_version_id=w.version_id,
        search_space={"lr0": {"type": "float", "low": 0.001, "high": 0.01}},
        objective="map50",
        n_trials=2,
    )
    return _allowed_by_authorization(
        lambda: aio.run(sweeps.create(web_actor(token), project_id=w.cast.project_id, request=request))
    )


def _ui_sweep(w: World, token: str) -> bool:
    from state.sweep_state import load_sweep

    found = load_sweep(token, _sweep(w, w.cast.project_id, "owner"))
    return found.signed_in and found.detail is not None


def _ui_sweeps(w: World, token: str) -> bool:
    from state.sweep_state import load_sweeps

    # None: not signed in (the page sends the browser to sign in)
    return _allowed_by_authorization(lambda: {"signed_in": load_sweeps(token, w.cast.project_id) is not None})


def _ui_cancel_sweep(creator: str) -> Callable[[World, str], bool]:
    def check(w: World, token: str) -> bool:
        from services.actions import sweeps
        from services.actions.core import web_actor

        sweep_id = _sweep(w, w.cast.project_id, creator)
        return _allowed_by_authorization(lambda: aio.run(sweeps.cancel(web_actor(token), sweep_id=sweep_id)))

    return check


def _ui_train_best(w: World, token: str) -> bool:
    from services.actions import sweeps
    from services.actions.core import web_actor

    sweep_id = _sweep(w, w.cast.project_id, "owner", with_best=True)
    return _allowed_by_authorization(lambda: aio.run(sweeps.train_best(web_actor(token), sweep_id=sweep_id)))


def _ui_tag(w: World, token: str) -> bool:
    from services.actions import experiments
    from services.actions.core import web_actor
    from services.errors import DomainError

    job_id = w.job(w.cast.project_id, "owner")
    try:
        experiments.set_run_tags(web_actor(token), project_id=w.cast.project_id, job_id=job_id, tags=["ui"])
    except DomainError:
        return False
    return True


def _ui_cancel(creator: str) -> Callable[[World, str], bool]:
    def check(w: World, token: str) -> bool:
        from services.actions import jobs
        from services.actions.core import web_actor
        from services.errors import DomainError

        try:
            aio.run(jobs.cancel(web_actor(token), job_id=w.job(w.cast.project_id, creator)))
        except DomainError:
            return False
        return True

    return check


def _allowed_by_authorization(call: Callable[[], Any]) -> bool:
    """True unless the call is refused for who is asking (other domain errors mean it got past)."""
    from services.errors import DomainError, NotFound, PermissionDenied, Unauthorized

    try:
        result = call()
    except (NotFound, PermissionDenied, Unauthorized):
        return False
    except DomainError as exc:
        return "session has ended" not in exc.message
    return not (isinstance(result, dict) and result.get("signed_in") is False)


def _ui_registry(w: World, token: str) -> bool:
    from state.registry_state import load_registry

    return _allowed_by_authorization(lambda: load_registry(token, w.cast.project_id))


def _ui_register(w: World, token: str) -> bool:
    from services.actions import registry
    from services.actions.core import web_actor
    from services.domain.registry import RegisterRequest

    # A queued job: allowed callers get past authorization to "register a succeeded job".
    request = RegisterRequest(job_id=w.job(w.cast.project_id, "owner"), name="ui-model")
    return _allowed_by_authorization(
        lambda: registry.register(web_actor(token), project_id=w.cast.project_id, request=request)
    )


def _ui_upload_weights(w: World, token: str) -> bool:
    from services.actions import registry
    from services.actions.core import web_actor

    # An empty file: allowed callers get past authorization to "must be 1 byte to 2 GB".
    return _allowed_by_authorization(
        lambda: registry.upload(
            web_actor(token), project_id=w.cast.project_id, name="ui-upload", filename="w.pt", data=b""
        )
    )


def _ui_alias(remove: bool) -> Callable[[World, str], bool]:
    def check(w: World, token: str) -> bool:
        from services.actions import registry
        from services.actions.core import web_actor

        name = _registered(w)  # no MLflow beside this backend: allowed callers reach it (503)
        if remove:
            return _allowed_by_authorization(
                lambda: registry.remove_alias(
                    web_actor(token), project_id=w.cast.project_id, name=name, alias="champion"
                )
            )
        return _allowed_by_authorization(
            lambda: registry.set_alias(
                web_actor(token), project_id=w.cast.project_id, name=name, alias="staging", version=1
            )
        )

    return check


def _ui_train_context(w: World, token: str) -> bool:
    from state.train_state import load_train_context

    return _allowed_by_authorization(lambda: load_train_context(token, w.cast.project_id))


def _ui_jobs_list(w: World, token: str) -> bool:
    from state.jobs_state import load_jobs

    return _allowed_by_authorization(lambda: load_jobs(token, w.cast.project_id, {"state": "queued"}))


def _ui_runs(w: World, token: str) -> bool:
    from state.compare_state import load_runs

    return _allowed_by_authorization(lambda: load_runs(token, w.cast.project_id, "", ""))


def _ui_compare(w: World, token: str) -> bool:
    from state.compare_state import load_comparison

    job_id = w.job(w.cast.project_id, "owner")
    return _allowed_by_authorization(lambda: load_comparison(token, w.cast.project_id, [job_id]))


def _ui_dataset_previews(w: World, token: str) -> bool:
    from state.dataset_preview_state import read_previews

    return _allowed_by_authorization(lambda: read_previews(token, w.cast.project_id))


def _ui_save_view(w: World, token: str) -> bool:
    from services.actions import experiments
    from services.actions.core import web_actor
    from services.domain.schemas import SavedComparisonCreate

    request = SavedComparisonCreate(name="ui", job_ids=[w.job(w.cast.project_id, "owner")])
    return _allowed_by_authorization(
        lambda: experiments.save_comparison(web_actor(token), project_id=w.cast.project_id, request=request)
    )


def _ui_csv(w: World, token: str) -> bool:
    from services.actions import experiments
    from services.actions.core import web_actor

    job_id = w.job(w.cast.project_id, "owner")
    return _allowed_by_authorization(
        lambda: experiments.curves_csv(web_actor(token), project_id=w.cast.project_id, job_ids=[job_id])
    )


def _ui_models(w: World, token: str) -> bool:
    from state.models_state import load_models

    return _allowed_by_authorization(lambda: load_models(token, w.cast.project_id))


def _ui_export(w: World, token: str) -> bool:
    from services.actions import models
    from services.actions.core import web_actor

    # A job without a checkpoint: allowed callers get past authorization to "nothing to export".
    job_id = w.job(w.cast.project_id, "owner")
    return _allowed_by_authorization(
        lambda: models.export(web_actor(token), project_id=w.cast.project_id, job_id=job_id, formats=["onnx"])
    )


def _ui_predict(w: World, token: str) -> bool:
    from services.actions import models
    from services.actions.core import web_actor

    job_id = w.job(w.cast.project_id, "owner")
    return _allowed_by_authorization(
        lambda: aio.run(
            models.predict(
                web_actor(token), project_id=w.cast.project_id, job_id=job_id, image=b"x", filename="a.png"
            )
        )
    )


def _ui_batch(w: World, token: str) -> bool:
    from state.models_state import start_batch

    project_id, job_id = _trained_job(w)
    # start_batch runs its own event loop (Reflex calls it in a worker thread): so does the test.
    return _allowed_by_authorization(
        lambda: aio.in_thread(lambda: start_batch(token, project_id, f"jobs/{job_id}", w.version_id))
    )


def _ui_extras(w: World, token: str) -> bool:
    from state.job_state import load_extras

    extras = load_extras(token, w.job(w.cast.project_id, "owner"))
    return extras.signed_in and not extras.error


def _ui_predictions(w: World, token: str) -> bool:
    from state.predictions_state import load_page

    ids = [w.job(w.cast.project_id, "owner"), w.job(w.cast.project_id, "owner")]
    return _allowed_by_authorization(lambda: load_page(token, w.cast.project_id, ids, "val", {}, 0))


def _ui_drill(w: World, token: str) -> bool:
    from state.job_state import load_cell

    job_id = w.job(w.cast.project_id, "owner")
    return _allowed_by_authorization(lambda: load_cell(token, job_id, "background", "a", 0))


def _ui_retry(creator: str) -> Callable[[World, str], bool]:
    def check(w: World, token: str) -> bool:
        from services.actions import jobs
        from services.actions.core import web_actor

        prepared, _ = _finished_job(creator)(w, "")
        return _allowed_by_authorization(
            lambda: aio.run(jobs.retry(web_actor(token), job_id=prepared["job_id"], resume=False))
        )

    return check


def _ui_analytics(_w: World, token: str) -> bool:
    from state.analytics_state import load_usage

    return _allowed_by_authorization(lambda: load_usage(token, "project", 7))


# --- datasets and people pages (state/datasets_state.py; state/members_state.py and its siblings) --


def _denied_is_false(call: Callable[[], object]) -> bool:
    from services.errors import DomainError

    try:
        call()
    except DomainError:
        return False
    return True


def _ui_dataset(fn_name: str) -> Callable[[World, str], bool]:
    """A datasets page handler's read: the actions function it calls, with the page's web actor."""

    def check(w: World, token: str) -> bool:
        from services.actions import datasets as actions
        from services.actions.core import web_actor

        project = {"project_id": w.cast.project_id}
        dataset = {**project, "dataset_id": w.dataset_id}
        version = {**dataset, "version": w.version}
        args = {
            "list_datasets": project,
            "list_versions": dataset,
            "version_stats": version,
            "gallery": {**version, "with_thumbnails": True},
            "image_preview": {**version, "index": 0},
            "check_can_upload": project,
        }[fn_name]
        return _denied_is_false(lambda: getattr(actions, fn_name)(web_actor(token), **args))

    return check


def _ui_ingest(w: World, token: str) -> bool:
    """DatasetsState.process_upload: the browser's zip, kept on disk, ingested as the web actor."""
    import tempfile

    from services.actions import datasets as actions
    from services.actions.core import web_actor

    with tempfile.NamedTemporaryFile(suffix=".zip") as handle:
        handle.write(sample_data.yolo_zip(train=2, val=1))
        handle.flush()
        handle.seek(0)
        return _denied_is_false(
            lambda: actions.upload_dataset(
                web_actor(token), project_id=w.cast.project_id, fileobj=handle, filename="m.zip", name="ui"
            )
        )


def _ui_split(w: World, token: str) -> bool:
    from services.actions import datasets as actions
    from services.actions.core import web_actor

    return _denied_is_false(
        lambda: actions.split(
            web_actor(token),
            project_id=w.cast.project_id,
            dataset_id=w.dataset_id,
            ratios={"train": 0.8, "val": 0.2, "test": 0.0},
            seed=1,
            method="random",
            from_version=w.version,
        )
    )


def _web(token: str) -> Any:
    """The actor a people page's handler acts as: `web_actor(token)`, as in the background thread."""
    from services.actions.core import web_actor

    return web_actor(token)


def _ui_members(w: World, token: str) -> bool:
    from services.actions import projects

    return _denied_is_false(lambda: projects.members_page(_web(token), project_id=w.cast.project_id))


def _ui_member_change(kind: str) -> Callable[[World, str], bool]:
    def check(w: World, token: str) -> bool:
        from services.actions import projects
        from services.domain.models import Role

        project_id, spare = w.fresh_project(), w.cast.users["spare"]
        if kind == "invite":
            _uid, name = new_user(prefix="inv")
            return _denied_is_false(
                lambda: projects.add_member(
                    _web(token), project_id=project_id, username=name, role=Role.viewer
                )
            )
        if kind == "role":
            return _denied_is_false(
                lambda: projects.change_role(
                    _web(token), project_id=project_id, user_id=spare, role=Role.viewer
                )
            )
        return _denied_is_false(
            lambda: projects.remove_member(_web(token), project_id=project_id, user_id=spare)
        )

    return check


def _ui_quotas(w: World, token: str) -> bool:
    from services.actions import projects

    return _denied_is_false(
        lambda: projects.set_quotas(
            _web(token), project_id=w.fresh_project(), max_running_jobs=2, max_queued_jobs=None
        )
    )


def _ui_account(w: World, token: str) -> bool:
    from services.actions import accounts

    return _denied_is_false(
        lambda: (
            accounts.account(_web(token)),
            accounts.create_token(_web(token), name="ui", expires_in_days=1),
        )
    )


def _ui_profile(w: World, token: str) -> bool:
    from services.actions import accounts

    return _denied_is_false(
        lambda: accounts.update_profile(_web(token), avatar_name="AB", badge_color="#1d4ed8")
    )


def _ui_admin(fn_name: str) -> Callable[[World, str], bool]:
    def check(w: World, token: str) -> bool:
        from services.actions import admin

        if fn_name == "update_user":
            user_id, _ = new_user(prefix="tmp")
            return _denied_is_false(lambda: admin.update_user(_web(token), user_id=user_id, is_active=False))
        if fn_name == "set_signup_enabled":
            return _denied_is_false(lambda: admin.set_signup_enabled(_web(token), enabled=True))
        if fn_name == "set_project_priority":
            project_id = w.fresh_project()
            return _denied_is_false(
                lambda: admin.set_project_priority(_web(token), project_id=project_id, priority=1)
            )
        if fn_name == "audit_log":
            filters = admin.AuditFilter(action="members")
            return _denied_is_false(lambda: admin.audit_log(_web(token), filters=filters))
        return _denied_is_false(lambda: admin.overview(_web(token)))

    return check


def _ui_notifications(kind: str) -> Callable[[World, str], bool]:
    """A notifications page handler: the actions function it calls, with the page's web actor."""

    def check(w: World, token: str) -> bool:
        from services.actions import notifications
        from services.domain.notifications import RuleCreate

        project_id = w.cast.project_id
        if kind == "list":
            return _denied_is_false(lambda: notifications.list_deliveries(_web(token), project_id=project_id))
        if kind == "create":
            request = RuleCreate(**_WEBHOOK)
            return _denied_is_false(
                lambda: notifications.create_rule(_web(token), project_id=project_id, request=request)
            )
        rule_id = _notification_rule(w, "")[0]["rule_id"]
        if kind == "test":
            return _denied_is_false(
                lambda: aio.run(notifications.send_test(_web(token), project_id=project_id, rule_id=rule_id))
            )
        return _denied_is_false(
            lambda: notifications.delete_rule(_web(token), project_id=project_id, rule_id=rule_id)
        )

    return check


def _ui_own_notifications(_w: World, token: str) -> bool:
    from services.actions import notifications

    return _denied_is_false(lambda: notifications.set_own_jobs_notifications(_web(token), enabled=True))


UI_TABLE: dict[str, list[tuple[frozenset[str], Callable[[World, str], bool]]] | str] = {
    "AuthState.sign_in": "no project data (password check, rate limited, audited)",
    "AuthState.sign_out": "no project data",
    "AuthState.load_login_page": "no project data",
    "AuthState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "DashboardState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "JobPageState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "DashboardState.load": [(VIEWER_UP, _ui_jobs_rows)],
    "DashboardState.select_project": [(VIEWER_UP, _ui_jobs_rows)],
    "DashboardState.watch_jobs": [(VIEWER_UP, _ui_jobs_rows)],
    "JobPageState.load": [(VIEWER_UP, _ui_load_job)],
    "JobPageState.watch": [(VIEWER_UP, _ui_load_job)],
    "JobPageState.cancel": [(ADMIN_UP, _ui_cancel("owner")), (MEMBER_UP, _ui_cancel("member"))],
    "JobPageState.load_extras": [(VIEWER_UP, _ui_extras)],
    "JobPageState.drill": [(VIEWER_UP, _ui_drill)],
    "JobPageState.drill_from_plot": "changes the client's selection, then runs JobPageState.drill",
    "JobPageState.drill_cell": "runs JobPageState.drill",
    "JobPageState.drill_next": "runs JobPageState.drill",
    "JobPageState.drill_previous": "runs JobPageState.drill",
    "JobPageState.set_drill_true": "changes the client's selection",
    "JobPageState.set_drill_predicted": "changes the client's selection",
    "PredictionsState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "PredictionsState.load": "reads the address, then runs PredictionsState.fetch",
    "PredictionsState.fetch": [(VIEWER_UP, _ui_predictions)],
    "PredictionsState.set_disagree": "changes a filter, then runs PredictionsState.fetch",
    "PredictionsState.set_class_name": "changes a filter, then runs PredictionsState.fetch",
    "PredictionsState.set_wrong_in": "changes a filter, then runs PredictionsState.fetch",
    "PredictionsState.set_split": "changes a filter, then runs PredictionsState.fetch",
    "PredictionsState.next_page": "pages, then runs PredictionsState.fetch",
    "PredictionsState.previous_page": "pages, then runs PredictionsState.fetch",
    "JobPageState.retry": [(ADMIN_UP, _ui_retry("owner")), (MEMBER_UP, _ui_retry("member"))],
    "JobPageState.save_tags": [(MEMBER_UP, _ui_tag)],
    "TrainState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "TrainState.load": [(VIEWER_UP, _ui_train_context)],
    "TrainState.set_framework": "recomputes the form from the catalogue already loaded (no project data)",
    "TrainState.set_task": "recomputes the form from the catalogue already loaded (no project data)",
    "TrainState.set_model": "sets a client-side var",
    "TrainState.set_start_from": "sets a client-side var; submit authorizes the start point",
    "RegistryState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "RegistryState.load": [(VIEWER_UP, _ui_registry)],
    "RegistryState.choose": "shows rows already loaded; the download links re-authorize",
    "RegistryState.register": [(MEMBER_UP, _ui_register)],
    "RegistryState.set_alias": [(ADMIN_UP, _ui_alias(remove=False))],
    "RegistryState.remove_alias": [(ADMIN_UP, _ui_alias(remove=True))],
    "RegistryState.set_upload_name": "sets a client-side var",
    "RegistryState.upload_weights": [(MEMBER_UP, _ui_upload_weights)],
    "TrainState.check_field": "checks one value against the catalogue (no project data)",
    "TrainState.submit": [(MEMBER_UP, _ui_create_job), (MEMBER_UP, _ui_create_sweep)],
    "TrainState.set_mode": "switches the form between one job and a sweep (no project data)",
    "TrainState.set_objective": "sets a client-side var",
    "TrainState.set_direction": "sets a client-side var",
    "SweepPageState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "SweepPageState.load": [(VIEWER_UP, _ui_sweep)],
    "SweepPageState.watch": [(VIEWER_UP, _ui_sweep)],
    "SweepPageState.cancel": [(ADMIN_UP, _ui_cancel_sweep("owner")), (MEMBER_UP, _ui_cancel_sweep("member"))],
    "SweepPageState.train_best": [(MEMBER_UP, _ui_train_best)],
    "SweepsListState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "SweepsListState.load": [(VIEWER_UP, _ui_sweeps)],
    "JobsListState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "JobsListState.load": [(VIEWER_UP, _ui_jobs_list)],
    "JobsListState.set_filter": [(VIEWER_UP, _ui_jobs_list)],
    "CompareState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "CompareState.load": [(VIEWER_UP, _ui_runs)],
    "CompareState.set_search": [(VIEWER_UP, _ui_runs)],
    "CompareState.set_state_filter": [(VIEWER_UP, _ui_runs)],
    "CompareState.compare": [(VIEWER_UP, _ui_compare)],
    "CompareState.next_page": [(VIEWER_UP, _ui_runs)],
    "CompareState.previous_page": [(VIEWER_UP, _ui_runs)],
    "CompareState.reload_runs": [(VIEWER_UP, _ui_runs)],
    "CompareState.set_run_sort": [(VIEWER_UP, _ui_runs)],
    "CompareState.toggle": "changes the client's selection",
    "CompareState.select_page": "changes the client's selection",
    "CompareState.clear_selection": "changes the client's selection",
    "CompareState.set_metric": "redraws data already loaded",
    "CompareState.set_only_differences": "filters a table already loaded",
    "CompareState.set_view_name": "sets a client-side var",
    "CompareState.save_view": [(VIEWER_UP, _ui_save_view)],
    "CompareState.download_csv": [(VIEWER_UP, _ui_csv)],
    "CompareState.sort_by": "re-sorts data already loaded",
    "ModelsState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "ModelsState.load": [(VIEWER_UP, _ui_models)],
    "ModelsState.export": [(MEMBER_UP, _ui_export)],
    "ModelsState.choose_job": "sets a client-side var",
    "ModelsState.handle_upload": "keeps the image in the client's state; run_inference authorizes",
    "ModelsState.run_inference": [(MEMBER_UP, _ui_predict)],
    "ModelsState.set_model_ref": "sets a client-side var",
    "ModelsState.choose_version": "sets a client-side var",
    "ModelsState.run_batch": [(MEMBER_UP, _ui_batch)],
    "AnalyticsState.setvar": "sets a client-side var; every read re-authorizes",
    "AnalyticsState.load": [(SIGNED_IN, _ui_analytics)],
    "AnalyticsState.set_group_by": [(SIGNED_IN, _ui_analytics)],
    "AnalyticsState.set_days": [(SIGNED_IN, _ui_analytics)],
    # Datasets pages (state/datasets_state.py).
    "DatasetsState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "DatasetsState.load": [(VIEWER_UP, _ui_dataset("list_datasets"))],
    "DatasetPreviewState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "DatasetPreviewState.load_previews": [(VIEWER_UP, _ui_dataset_previews)],
    "DatasetsState.set_upload_name": "sets a client-side var",
    "DatasetsState.upload_progress": "records upload byte counts sent by the browser",
    "DatasetsState.start_upload": "resets the upload panel",
    "DatasetsState.upload_cancelled": "resets the upload panel",
    "DatasetsState.handle_upload": [(MEMBER_UP, _ui_dataset("check_can_upload"))],
    "DatasetsState.process_upload": [(MEMBER_UP, _ui_ingest)],
    "DatasetDetailState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "DatasetDetailState.load": [(VIEWER_UP, _ui_dataset("list_versions"))],
    "DatasetDetailState.select_version": "sets a client-side var; refresh_version authorizes",
    "DatasetDetailState.refresh_version": [(VIEWER_UP, _ui_dataset("version_stats"))],
    "DatasetDetailState.load_gallery": [(VIEWER_UP, _ui_dataset("gallery"))],
    "DatasetDetailState.filter_split": "sets a client-side var; load_gallery authorizes",
    "DatasetDetailState.filter_class": "sets a client-side var; load_gallery authorizes",
    "DatasetDetailState.page": "sets a client-side var; load_gallery authorizes",
    "DatasetDetailState.open_image": [(VIEWER_UP, _ui_dataset("image_preview"))],
    "DatasetDetailState.set_viewer_open": "sets a client-side var",
    "DatasetDetailState.set_split_open": "sets a client-side var",
    "DatasetDetailState.submit_split": [(MEMBER_UP, _ui_split)],
    # People pages (state/members_state.py, signup_state.py, account_state.py, admin_state.py).
    "MembersState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "MembersState.load": [(VIEWER_UP, _ui_members)],
    "MembersState.invite": [(ADMIN_UP, _ui_member_change("invite"))],
    "MembersState.change_role": [(ADMIN_UP, _ui_member_change("role"))],
    "MembersState.remove": [(ADMIN_UP, _ui_member_change("remove"))],
    "MembersState.save_quotas": [(ADMIN_UP, _ui_quotas)],
    "SignupState.setvar": "sets a client-side var",
    "SignupState.load_signup": "no project data (reads the platform's sign-up switch)",
    "SignupState.sign_up": "no project data (sign-up: switchable, rate limited, audited)",
    "AccountState.setvar": "sets a client-side var",
    "AccountState.set_badge_preview": "sets a client-side var (nothing is saved)",
    "AccountState.load": [(SIGNED_IN, _ui_account)],
    "AccountState.save_profile": [(SIGNED_IN, _ui_profile)],
    "AccountState.change_password": "the caller's own account; the current password is checked",
    "AccountState.create_token": [(SIGNED_IN, _ui_account)],
    "AccountState.revoke": "the caller's own tokens; services.actions.accounts answers NotFound for others'",
    "AccountState.set_notify_own_jobs": [(SIGNED_IN, _ui_own_notifications)],
    "AccountState.mark_all_read": "the caller's own in-app list only (by the session's user id)",
    "NotificationsState.setvar": "sets a client-side var; every read of project data re-authorizes",
    "NotificationsState.load": [(MEMBER_UP, _ui_notifications("list"))],
    "NotificationsState.refresh_log": [(MEMBER_UP, _ui_notifications("list"))],
    "NotificationsState.add_rule": [(ADMIN_UP, _ui_notifications("create"))],
    "NotificationsState.remove_rule": [(ADMIN_UP, _ui_notifications("delete"))],
    "NotificationsState.send_test": [(ADMIN_UP, _ui_notifications("test"))],
    "AdminState.setvar": "sets a client-side var",
    "AdminState.load": [(PLATFORM, _ui_admin("overview"))],
    "AdminState.set_active": [(PLATFORM, _ui_admin("update_user"))],
    "AdminState.toggle_signup": [(PLATFORM, _ui_admin("set_signup_enabled"))],
    "AdminState.set_priority": [(PLATFORM, _ui_admin("set_project_priority"))],
    "AdminState.filter_audit": "sets a client-side var; load_audit authorizes",
    "AdminState.audit_page": "sets a client-side var; load_audit authorizes",
    "AdminState.load_audit": [(PLATFORM, _ui_admin("audit_log"))],
}


def state_handlers() -> set[str]:
    import reflex as rx

    import state.account_state
    import state.admin_state
    import state.analytics_state
    import state.auth_state
    import state.compare_state
    import state.dashboard_state
    import state.datasets_state
    import state.job_state
    import state.jobs_state
    import state.members_state
    import state.models_state
    import state.notifications_state
    import state.predictions_state
    import state.registry_state
    import state.signup_state
    import state.sweep_state
    import state.train_state

    names = set()
    for module in (
        state.auth_state,
        state.dashboard_state,
        state.job_state,
        state.train_state,
        state.jobs_state,
        state.compare_state,
        state.models_state,
        state.registry_state,
        state.predictions_state,
        state.analytics_state,
        state.datasets_state,
        state.members_state,
        state.notifications_state,
        state.signup_state,
        state.account_state,
        state.admin_state,
        state.sweep_state,
    ):
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
