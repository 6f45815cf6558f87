"""Registered models: named models of a project, their versions with lineage, and aliases.

MLflow's Model Registry is the registry of record (services.infra.mlflow_registry): each version
here is an MLflow model version of the same number, its weights an artifact of an MLflow run. This
module keeps the lineage beside it so it can be queried with the rest of the platform's data: the
job and dataset version a version came from, its parameters, validation (and, where measured, test)
metrics, and the exports attached to it (`attach_export`).

A version is addressed as `models/<name>@<alias>` or `models/<name>/<version>` (also with MLflow's
`models:/` spelling); `start_point` turns such a reference, or `job:<id>`, into the weights a new
job starts from. Who may do what is decided by services.actions.registry.

Errors: InvalidInput (a bad name, alias or reference), NotFound, Conflict (a job without weights).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from services.domain import model_ops
from services.domain.models import (
    Job,
    JobEvent,
    JobMetric,
    JobState,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
    User,
    id_of,
    utcnow,
)
from services.errors import Conflict, InvalidInput, NotFound

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
RESERVED_ALIASES = frozenset({"latest"})  # MLflow's own meaning; and v<N> reads as a version
REF = re.compile(
    r"^(?:models:?/+)?(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,99})(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$"
)
WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors")


# --- public shapes ------------------------------------------------------------------------------


class ExportPublic(BaseModel):
    format: str
    uri: str
    parity: dict[str, Any] = Field(default_factory=dict)
    added_at: str | None = None


class ModelVersionPublic(BaseModel):
    """One version with its lineage and model card facts."""

    model: str = Field(description="The model's name in the project.")
    mlflow_name: str
    version: int
    aliases: list[str] = Field(default_factory=list)
    source: str = Field(description="'job' (a finished job's best.pt) or 'upload'.")
    job_id: int | None = None
    dataset_version_id: int | None = None
    weights_uri: str
    filename: str = ""
    mlflow_run_id: str
    framework: str
    task: str
    architecture: str
    classes: list[str]
    imgsz: int | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    val_metrics: dict[str, float] = Field(default_factory=dict)
    test_metrics: dict[str, float] = Field(default_factory=dict)
    exports: list[ExportPublic] = Field(default_factory=list)
    description: str = ""
    registered_by: str = ""
    created_at: datetime


class RegisteredModelPublic(BaseModel):
    name: str
    mlflow_name: str
    description: str = ""
    latest_version: int | None = None
    aliases: dict[str, int] = Field(default_factory=dict, description="alias -> version")
    versions: list[ModelVersionPublic] = Field(default_factory=list, description="Newest first.")


class RegisterRequest(BaseModel):
    job_id: int
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)


class AliasRequest(BaseModel):
    version: int = Field(ge=1)


# --- names and references -----------------------------------------------------------------------


def mlflow_name(project_id: int, name: str) -> str:
    """Names are per project; MLflow's registry is one namespace for the whole server."""
    return f"project-{project_id}.{name}"


def check_name(name: str) -> str:
    name = name.strip()
    if not NAME.match(name):
        raise InvalidInput("name: 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def check_alias(alias: str) -> str:
    if not ALIAS.match(alias) or alias in RESERVED_ALIASES or re.fullmatch(r"v\d+", alias):
        raise InvalidInput(
            "alias: 1-64 lowercase letters, digits, '_' or '-', starting with a letter; "
            "not 'latest' and not v<number> (MLflow reserves them)"
        )
    return alias


def parse_ref(ref: str) -> tuple[str, str | None, int | None]:
    """`models/<name>@<alias>` or `models/<name>/<version>` -> (name, alias, version)."""
    match = REF.match(ref.strip())
    if not match:
        raise InvalidInput(f"ref: use models/<name>@<alias> or models/<name>/<version>, not {ref!r}")
    version = match.group("version")
    return match.group("name"), match.group("alias"), int(version) if version else None


# --- reads --------------------------------------------------------------------------------------


def get_model(session: Session, *, project_id: int, name: str) -> RegisteredModel:
    row = session.exec(
        select(RegisteredModel).where(RegisteredModel.project_id == project_id, RegisteredModel.name == name)
    ).first()
    if row is None:
        raise NotFound(f"Model {name!r} does not exist in this project")
    return row


def find_model(session: Session, *, project_id: int, name: str) -> RegisteredModel | None:
    try:
        return get_model(session, project_id=project_id, name=name)
    except NotFound:
        return None


def get_version(session: Session, model: RegisteredModel, version: int) -> ModelVersion:
    row = session.exec(
        select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == version)
    ).first()
    if row is None:
        raise NotFound(f"Model {model.name!r} has no version {version}")
    return row


def aliases_of(session: Session, model: RegisteredModel) -> dict[str, int]:
    """alias -> version number."""
    rows = session.exec(
        select(ModelAlias.alias, ModelVersion.version)
        .join(ModelVersion, col(ModelVersion.id) == ModelAlias.version_id)
        .where(ModelAlias.model_id == model.id)
        .order_by(col(ModelAlias.alias))
    ).all()
    return {alias: int(version) for alias, version in rows}


def resolve(session: Session, *, project_id: int, ref: str) -> ModelVersion:
    """The version a reference names; NotFound names what is missing."""
    name, alias, version = parse_ref(ref)
    model = get_model(session, project_id=project_id, name=name)
    if alias is not None:
        row = session.exec(
            select(ModelVersion)
            .join(ModelAlias, col(ModelAlias.version_id) == ModelVersion.id)
            .where(ModelAlias.model_id == model.id, ModelAlias.alias == alias)
        ).first()
        if row is None:
            raise NotFound(f"Model {name!r} has no alias {alias!r}")
        return row
    assert version is not None
    return get_version(session, model, version)


def version_public(session: Session, model: RegisteredModel, row: ModelVersion) -> ModelVersionPublic:
    aliases = [a for a, v in aliases_of(session, model).items() if v == row.version]
    user = session.get(User, row.registered_by)
    data = row.model_dump(exclude={"id", "model_id", "registered_by"})
    return ModelVersionPublic(
        **data,
        model=model.name,
        mlflow_name=model.mlflow_name,
        aliases=aliases,
        registered_by=user.username if user else "",
    )


def model_public(
    session: Session, model: RegisteredModel, *, with_versions: bool = True
) -> RegisteredModelPublic:
    rows = session.exec(
        select(ModelVersion)
        .where(ModelVersion.model_id == model.id)
        .order_by(col(ModelVersion.version).desc())
    ).all()
    return RegisteredModelPublic(
        name=model.name,
        mlflow_name=model.mlflow_name,
        description=model.description,
        latest_version=rows[0].version if rows else None,
        aliases=aliases_of(session, model),
        versions=[version_public(session, model, r) for r in rows] if with_versions else [],
    )


def list_models(session: Session, *, project_id: int) -> list[RegisteredModelPublic]:
    rows = session.exec(
        select(RegisteredModel)
        .where(RegisteredModel.project_id == project_id)
        .order_by(col(RegisteredModel.name))
    ).all()
    return [model_public(session, m) for m in rows]


# --- registering --------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionDraft:
    """Everything a new version needs except MLflow's version number and run id."""

    project_id: int
    name: str
    description: str
    source: str
    weights_uri: str  # where the weights are now (a job's best.pt, or the upload)
    filename: str
    framework: str
    task: str
    architecture: str
    classes: tuple[str, ...]
    imgsz: int | None = None
    job_id: int | None = None
    dataset_version_id: int | None = None
    mlflow_run_id: str | None = None  # the job's training run, when it has one
    params: tuple[tuple[str, Any], ...] = ()
    val_metrics: tuple[tuple[str, float], ...] = ()
    test_metrics: tuple[tuple[str, float], ...] = ()
    exports: tuple[tuple[str, str], ...] = ()  # (format, s3 URI) the job exported before


def _final_metrics(session: Session, job: Job) -> dict[str, float]:
    """The numbers the job's best model scored: its finished callback's, else the last epoch's."""
    payload = session.exec(
        select(JobEvent.payload)
        .where(JobEvent.job_id == job.id, JobEvent.type == "finished")
        .order_by(col(JobEvent.id).desc())
    ).first()
    found = (payload or {}).get("metrics") or {}
    if not found:
        last = session.exec(
            select(JobMetric.metrics).where(JobMetric.job_id == job.id).order_by(col(JobMetric.epoch).desc())
        ).first()
        found = last or {}
    return {str(k): float(v) for k, v in found.items() if isinstance(v, int | float)}


def draft_from_job(session: Session, job: Job, *, name: str, description: str) -> VersionDraft:
    """A version of a succeeded job's best checkpoint, with the job's lineage."""
    from services.domain.models import DatasetVersion

    if JobState(job.state) != JobState.succeeded:
        raise Conflict(f"Job {job.id} is {JobState(job.state).value}; register a succeeded job's model")
    uri = model_ops.model_uri(job)
    if uri is None:
        raise Conflict(f"Job {job.id} saved no checkpoint to register")
    dataset = session.get(DatasetVersion, job.dataset_version_id)
    hyper = dict(job.hyperparameters)
    params = {**hyper, "framework": job.framework, "model": job.model, "task": job.task}
    if job.start_from:
        params["start_from"] = job.start_from
    imgsz = hyper.get("imgsz")
    return VersionDraft(
        project_id=job.project_id,
        name=check_name(name),
        description=description.strip(),
        source="job",
        weights_uri=uri,
        filename="best.pt",
        framework=job.framework,
        task=job.task,
        architecture=job.model,
        classes=tuple(dataset.classes if dataset else ()),
        imgsz=int(imgsz) if isinstance(imgsz, int) else None,
        job_id=job.id,
        dataset_version_id=job.dataset_version_id,
        mlflow_run_id=job.mlflow_run_id,
        params=tuple(sorted(params.items())),
        # The job's best.pt scored on val (and test, when the dataset has a test split).
        val_metrics=tuple(sorted((job.val_metrics or _final_metrics(session, job)).items())),
        test_metrics=tuple(sorted(job.test_metrics.items())),
        # Exported before it was registered: the same weights, so the version has them too (an
        # export made later is attached by the export step).
        exports=tuple(
            (key.removeprefix("export_"), uri)
            for key, uri in sorted(job.artifacts.items())
            if key.startswith("export_") and uri.startswith("s3://")
        ),
    )


def draft_from_inspection(
    *, project_id: int, name: str, description: str, weights_uri: str, filename: str, found: dict[str, Any]
) -> VersionDraft:
    """A version of uploaded weights, described by the trainer's `POST /inspect`."""
    imgsz = found.get("imgsz")
    return VersionDraft(
        project_id=project_id,
        name=check_name(name),
        description=description.strip(),
        source="upload",
        weights_uri=weights_uri,
        filename=filename,
        framework=str(found["framework"]),
        task=str(found["task"]),
        architecture=str(found["architecture"]),
        classes=tuple(str(c) for c in found.get("classes") or []),
        imgsz=int(imgsz) if isinstance(imgsz, int) else None,
        params=(("load_mode", str(found.get("load_mode", ""))), ("parameters", found.get("parameters", 0))),
    )


def add_version(
    session: Session,
    draft: VersionDraft,
    *,
    user: User,
    version: int,
    mlflow_name_: str,
    run_id: str,
    weights_uri: str,
) -> ModelVersion:
    """Write the version (and its model, the first time) as MLflow numbered it."""
    model = find_model(session, project_id=draft.project_id, name=draft.name)
    if model is None:
        model = RegisteredModel(
            project_id=draft.project_id,
            name=draft.name,
            mlflow_name=mlflow_name_,
            description=draft.description if draft.source == "upload" else "",
            created_by=id_of(user),
        )
        session.add(model)
        session.flush()
    row = ModelVersion(
        model_id=id_of(model),
        version=version,
        source=draft.source,
        job_id=draft.job_id,
        dataset_version_id=draft.dataset_version_id,
        weights_uri=weights_uri,
        filename=draft.filename,
        mlflow_run_id=run_id,
        framework=draft.framework,
        task=draft.task,
        architecture=draft.architecture,
        classes=list(draft.classes),
        imgsz=draft.imgsz,
        params=dict(draft.params),
        val_metrics=dict(draft.val_metrics),
        test_metrics=dict(draft.test_metrics),
        description=draft.description,
        registered_by=id_of(user),
    )
    session.add(row)
    session.flush()
    for format, uri in draft.exports:  # the job's parity checks were shown when it exported
        attach_export(session, row, format, uri, {})
    return row


# --- aliases and exports ------------------------------------------------------------------------


def set_alias(
    session: Session, model: RegisteredModel, *, alias: str, version: ModelVersion, user: User
) -> int | None:
    """Point `alias` at `version`; returns the version it pointed at before (None: new alias)."""
    row = session.exec(
        select(ModelAlias).where(ModelAlias.model_id == model.id, ModelAlias.alias == alias)
    ).first()
    before = None
    if row is None:
        row = ModelAlias(
            model_id=id_of(model), alias=alias, version_id=id_of(version), updated_by=id_of(user)
        )
    else:
        old = session.get(ModelVersion, row.version_id)
        before = old.version if old else None
        row.version_id, row.updated_by, row.updated_at = id_of(version), id_of(user), utcnow()
    session.add(row)
    session.flush()
    return before


def remove_alias(session: Session, model: RegisteredModel, *, alias: str) -> int:
    """Delete `alias`; returns the version it pointed at. NotFound when there is no such alias."""
    row = session.exec(
        select(ModelAlias).where(ModelAlias.model_id == model.id, ModelAlias.alias == alias)
    ).first()
    if row is None:
        raise NotFound(f"Model {model.name!r} has no alias {alias!r}")
    old = session.get(ModelVersion, row.version_id)
    session.delete(row)
    session.flush()
    return old.version if old else 0


def versions_of_job(session: Session, *, job_id: int) -> list[ModelVersion]:
    """The versions registered from a job's weights: its exports are theirs too."""
    return list(session.exec(select(ModelVersion).where(ModelVersion.job_id == job_id)).all())


def attach_export(
    session: Session, version: ModelVersion, format: str, uri: str, parity: dict[str, Any]
) -> None:
    """Record an exported file of this version (one per format: a newer export replaces it).

    For the export step: call it inside the action that ran the export, after the trainer answered.
    """
    if not uri.startswith("s3://"):
        raise InvalidInput("uri: an export lives in object storage (s3://...)")
    kept = [e for e in version.exports if e.get("format") != format]
    version.exports = [
        *kept,
        {"format": format, "uri": uri, "parity": dict(parity), "added_at": utcnow().isoformat()},
    ]
    session.add(version)
    session.flush()


# --- fine-tuning: where a new job starts from ---------------------------------------------------


@dataclass(frozen=True)
class StartPoint:
    init_weights: str  # s3:// URI
    framework: str
    architecture: str
    task: str
    label: str  # what the job page shows: "models/shapes@champion (v2)", "job 12"


def start_point(session: Session, *, project_id: int, start_from: str) -> StartPoint | None:
    """None for "scratch" (or empty); else the weights of a registered version or a job's best.pt."""
    value = start_from.strip()
    if value in {"", "scratch"}:
        return None
    if value.startswith("job:"):
        try:
            job_id = int(value[4:])
        except ValueError as exc:
            raise InvalidInput("start_from: job:<id> needs a job number") from exc
        job = session.get(Job, job_id)
        if job is None or job.project_id != project_id:
            raise NotFound(f"start_from: job {job_id} does not exist in this project")
        if JobState(job.state) != JobState.succeeded:
            raise InvalidInput(
                f"start_from: job {job_id} is {JobState(job.state).value}; start from a succeeded job"
            )
        uri = model_ops.model_uri(job)
        if uri is None:
            raise InvalidInput(f"start_from: job {job_id} saved no checkpoint")
        return StartPoint(uri, job.framework, job.model, job.task, f"job {job_id}")
    row = resolve(session, project_id=project_id, ref=value)
    model = session.get(RegisteredModel, row.model_id)
    name = model.name if model else "?"
    return StartPoint(
        row.weights_uri, row.framework, row.architecture, row.task, f"{value} (v{row.version} of {name})"
    )
