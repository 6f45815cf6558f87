"""The model registry as users act on it: register a job's model, upload weights, move aliases.

Roles (services.domain.permissions): viewers read, members register and upload, admins move
aliases. MLflow's Model Registry is written first, outside any transaction; the platform's rows
and the one audit row (`model.register`, `model.upload`, `model.alias`, `model.unalias`) follow in
one. When a step fails, what the earlier steps wrote is taken back (the uploaded object, the MLflow
version), so a failure leaves nothing half-registered.

Uploaded weights are checked by the trainer (`POST /inspect`, docs/trainer-protocol.md v1.5)
before anything is registered: a file it cannot load the safe way is deleted again and the
refusal names the problem.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import httpx
from sqlmodel import col, select

from services.actions.core import Actor, Audit, operation, record_outcome
from services.domain import audit, registry
from services.domain.catalog import TrainerUnavailable
from services.domain.models import Job, JobState
from services.domain.permissions import Action
from services.domain.registry import ModelVersionPublic, RegisteredModelPublic, RegisterRequest, VersionDraft
from services.errors import DomainError, InvalidInput, NotFound
from services.infra import storage
from services.infra.mlflow_registry import MlflowRegistry
from services.infra.trainer_client import TrainerBusy, TrainerClient, TrainerRejected

log = logging.getLogger(__name__)

MAX_WEIGHTS_BYTES = 2 * 1024**3
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


# --- reads --------------------------------------------------------------------------------------


def list_models(actor: Actor, *, project_id: int) -> list[RegisteredModelPublic]:
    """Every registered model of the project with its versions (newest first) and aliases."""
    with operation(actor, "model.list", record=Audit.refusals) as op:
        op.authorize(Action.model_read, project_id=project_id)
        return registry.list_models(op.session, project_id=project_id)


def role_in_project(actor: Actor, *, project_id: int) -> str:
    """The caller's role, so the registry page shows only the controls it may use."""
    with operation(actor, "model.list", record=Audit.refusals) as op:
        return op.authorize(Action.model_read, project_id=project_id).value


def get_model(actor: Actor, *, project_id: int, name: str) -> RegisteredModelPublic:
    with operation(actor, "model.read", record=Audit.refusals, target=f"model:{name}") as op:
        op.authorize(Action.model_read, project_id=project_id)
        return registry.model_public(
            op.session, registry.get_model(op.session, project_id=project_id, name=name)
        )


def get_version(actor: Actor, *, project_id: int, name: str, version: int) -> ModelVersionPublic:
    with operation(actor, "model.read", record=Audit.refusals, target=f"model:{name}/{version}") as op:
        op.authorize(Action.model_read, project_id=project_id)
        model = registry.get_model(op.session, project_id=project_id, name=name)
        return registry.version_public(op.session, model, registry.get_version(op.session, model, version))


def resolve(actor: Actor, *, project_id: int, ref: str) -> ModelVersionPublic:
    """`models/<name>@<alias>` (or `/<version>`) -> that version, with its lineage."""
    with operation(actor, "model.read", record=Audit.refusals, target=ref[:120]) as op:
        op.authorize(Action.model_read, project_id=project_id)
        row = registry.resolve(op.session, project_id=project_id, ref=ref)
        model = registry.get_model(op.session, project_id=project_id, name=registry.parse_ref(ref)[0])
        return registry.version_public(op.session, model, row)


def downloads(actor: Actor, *, project_id: int, name: str, version: int) -> dict[str, str]:
    """Short-lived download URLs: "weights" and one per attached export format."""
    found = get_version(actor, project_id=project_id, name=name, version=version)
    urls = {"weights": storage.presigned_get(found.weights_uri, filename=found.filename or "weights.pt")}
    for export in found.exports:
        urls[export.format] = storage.presigned_get(export.uri, filename=export.uri.rsplit("/", 1)[-1])
    return urls


def start_choices(actor: Actor, *, project_id: int) -> list[tuple[str, str]]:
    """The train form's "Start from": (label, value) for scratch, each alias and version, and
    the project's recent succeeded jobs (their best checkpoint)."""
    with operation(actor, "model.list", record=Audit.refusals) as op:
        op.authorize(Action.model_read, project_id=project_id)
        choices = [("Scratch (no weights)", "scratch")]
        for model in registry.list_models(op.session, project_id=project_id):
            for alias, number in model.aliases.items():
                choices.append((f"{model.name}@{alias} (v{number})", f"models/{model.name}@{alias}"))
            for row in model.versions:
                choices.append(
                    (
                        f"{model.name} v{row.version} ({row.framework} {row.architecture})",
                        f"models/{model.name}/{row.version}",
                    )
                )
        jobs = op.session.exec(
            select(Job)
            .where(Job.project_id == project_id, Job.state == JobState.succeeded.value)
            .order_by(col(Job.id).desc())
            .limit(20)
        ).all()
        choices += [(f"Job {j.id}: {j.name} (best checkpoint)", f"job:{j.id}") for j in jobs]
        return choices


# --- registering --------------------------------------------------------------------------------


def register(actor: Actor, *, project_id: int, request: RegisterRequest) -> ModelVersionPublic:
    """A succeeded job's best checkpoint as the next version of model `request.name`.

    Blocking (S3 and MLflow transfers): call it from a thread in async code.
    """
    with operation(actor, "model.register", record=Audit.refusals, target=f"job:{request.job_id}") as op:
        op.authorize(Action.model_register, project_id=project_id)
        job = op.session.get(Job, request.job_id)
        if job is None or job.project_id != project_id:
            raise NotFound(f"Job {request.job_id} does not exist")
        draft = registry.draft_from_job(op.session, job, name=request.name, description=request.description)
    data = storage.get_bytes(draft.weights_uri)
    # The version keeps its own copy: the job's folder may be cleaned up, the version stays.
    copy = storage.put_bytes(storage.model_weights_key(project_id, f"{uuid.uuid4().hex}/best.pt"), data)
    return _publish(actor, "model.register", draft, data, copy)


def upload(
    actor: Actor,
    *,
    project_id: int,
    name: str,
    filename: str,
    data: bytes,
    description: str = "",
    architecture: str | None = None,
) -> ModelVersionPublic:
    """Uploaded weights (Ultralytics .pt, timm .pt/.pth state_dict, .safetensors) as a version,
    once the trainer has loaded them the safe way. Blocking: call it from a thread."""
    safe_name = _UNSAFE.sub("_", filename.rsplit("/", 1)[-1])[:200] or "weights.pt"
    with operation(actor, "model.upload", record=Audit.refusals, target=f"model:{name}") as op:
        op.authorize(Action.model_register, project_id=project_id)
        registry.check_name(name)
        if not safe_name.lower().endswith(registry.WEIGHT_SUFFIXES):
            raise InvalidInput(f"file: upload one of {list(registry.WEIGHT_SUFFIXES)} (got {filename!r})")
        if not data or len(data) > MAX_WEIGHTS_BYTES:
            raise InvalidInput(f"file: must be 1 byte to {MAX_WEIGHTS_BYTES // 1024**3} GB")
    uri = storage.put_bytes(storage.model_weights_key(project_id, f"{uuid.uuid4().hex}/{safe_name}"), data)
    try:
        found = _inspect(uri, safe_name, architecture)
    except DomainError as exc:
        _forget(uri)
        _failed(actor, "model.upload", project_id, f"model:{name}", exc.message)
        raise
    draft = registry.draft_from_inspection(
        project_id=project_id,
        name=name,
        description=description,
        weights_uri=uri,
        filename=safe_name,
        found=found,
    )
    return _publish(actor, "model.upload", draft, data, uri)


def _inspect(uri: str, filename: str, architecture: str | None) -> dict[str, Any]:
    try:
        return TrainerClient.from_settings().inspect_sync(
            weights_uri=uri, filename=filename, architecture=architecture
        )
    except TrainerRejected as exc:
        raise InvalidInput(f"The weights were refused: {exc}") from exc
    except TrainerBusy as exc:
        raise TrainerUnavailable(
            f"The trainer is busy; try the upload again in {exc.retry_after_s:.0f} s"
        ) from exc
    except httpx.HTTPError as exc:
        raise TrainerUnavailable(
            f"The trainer could not be reached to check the weights ({type(exc).__name__}); try again shortly"
        ) from exc


def _publish(
    actor: Actor, action: str, draft: VersionDraft, data: bytes, weights_uri: str
) -> ModelVersionPublic:
    """MLflow first (run artifact + model version), then the rows and the audit row; undo on failure."""
    mlflow = MlflowRegistry.from_settings()
    name = registry.mlflow_name(draft.project_id, draft.name)
    target = f"model:{draft.name}"
    version: int | None = None
    recording = False
    try:
        run_id = (
            draft.mlflow_run_id if draft.mlflow_run_id and mlflow.run_exists(draft.mlflow_run_id) else None
        )
        if run_id is None:
            run_id = mlflow.create_run(
                f"project-{draft.project_id}",
                f"{draft.source}-{draft.name}",
                {"vtp_source": draft.source, "vtp_job_id": str(draft.job_id or "")},
            )
        artifact = mlflow.log_artifact(run_id, f"model/{draft.filename}", data)
        mlflow.ensure_registered_model(name, draft.description)
        version = mlflow.create_version(
            name,
            source=artifact.rsplit("/", 1)[0],
            run_id=run_id,
            description=draft.description,
            tags={
                "vtp_source": draft.source,
                "vtp_weights_uri": weights_uri,
                "vtp_job_id": str(draft.job_id or ""),
            },
        )
        recording = True
        with operation(actor, action, target=target, project_id=draft.project_id) as op:
            row = registry.add_version(
                op.session,
                draft,
                user=op.me,
                version=version,
                mlflow_name_=name,
                run_id=run_id,
                weights_uri=weights_uri,
            )
            origin = f"job:{draft.job_id}" if draft.job_id else draft.filename
            op.detail = f"v{version} from {origin}"
            model = registry.get_model(op.session, project_id=draft.project_id, name=draft.name)
            return registry.version_public(op.session, model, row)
    except DomainError as exc:
        if version is not None:
            try:
                mlflow.delete_version(name, version)
            except DomainError:
                log.warning("MLflow version left behind", extra={"model": name, "version": version})
        _forget(weights_uri)
        if not recording:  # `operation` audits what fails inside it
            _failed(actor, action, draft.project_id, target, exc.message)
        raise


def _forget(uri: str) -> None:
    try:
        bucket, key = storage.parse_uri(uri)
        storage.s3_client().delete_object(Bucket=bucket, Key=key)
    except Exception:  # noqa: BLE001 - the refusal matters more than a leftover object
        log.warning("could not delete %s", uri)


def _failed(actor: Actor, action: str, project_id: int, target: str, message: str) -> None:
    record_outcome(actor, action, target=target, project_id=project_id, result=audit.FAILED, detail=message)


# --- aliases ------------------------------------------------------------------------------------


def set_alias(actor: Actor, *, project_id: int, name: str, alias: str, version: int) -> RegisteredModelPublic:
    """Point `alias` (champion, staging, ...) at `version`, in MLflow and here; audited with the
    version it pointed at before."""
    target = f"model:{name}@{alias}"
    with operation(actor, "model.alias", record=Audit.refusals, target=target) as op:
        op.authorize(Action.model_alias, project_id=project_id)
        registry.check_alias(alias)
        model = registry.get_model(op.session, project_id=project_id, name=name)
        registry.get_version(op.session, model, version)
        mlflow_name = model.mlflow_name
    try:
        MlflowRegistry.from_settings().set_alias(mlflow_name, alias, version)
    except DomainError as exc:
        _failed(actor, "model.alias", project_id, target, exc.message)
        raise
    with operation(actor, "model.alias", target=target, project_id=project_id) as op:
        model = registry.get_model(op.session, project_id=project_id, name=name)
        before = registry.set_alias(
            op.session,
            model,
            alias=alias,
            version=registry.get_version(op.session, model, version),
            user=op.me,
        )
        op.detail = f"{alias}: v{before} -> v{version}" if before else f"{alias}: set to v{version}"
        return registry.model_public(op.session, model)


def remove_alias(actor: Actor, *, project_id: int, name: str, alias: str) -> RegisteredModelPublic:
    target = f"model:{name}@{alias}"
    with operation(actor, "model.unalias", record=Audit.refusals, target=target) as op:
        op.authorize(Action.model_alias, project_id=project_id)
        model = registry.get_model(op.session, project_id=project_id, name=name)
        if alias not in registry.aliases_of(op.session, model):
            raise NotFound(f"Model {name!r} has no alias {alias!r}")
        mlflow_name = model.mlflow_name
    try:
        MlflowRegistry.from_settings().delete_alias(mlflow_name, alias)
    except DomainError as exc:
        _failed(actor, "model.unalias", project_id, target, exc.message)
        raise
    with operation(actor, "model.unalias", target=target, project_id=project_id) as op:
        model = registry.get_model(op.session, project_id=project_id, name=name)
        was = registry.remove_alias(op.session, model, alias=alias)
        op.detail = f"{alias}: removed (was v{was})"
        return registry.model_public(op.session, model)
