"""The model registry: models and versions, register, upload weights, aliases, resolve.
Routes parse and shape; services.actions.registry decides (viewer reads, member registers and
uploads, admin moves aliases)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile

from app.api.deps import CurrentActor, PathId
from services.actions import registry
from services.domain.registry import AliasRequest, ModelVersionPublic, RegisteredModelPublic, RegisterRequest

router = APIRouter(prefix="/projects/{project_id}/models", tags=["models"])
Name = Annotated[str, Path(max_length=100, description="The model's name in the project")]
Alias = Annotated[str, Path(max_length=64)]


@router.get("")
def list_models(project_id: PathId, actor: CurrentActor) -> list[RegisteredModelPublic]:
    """Registered models with their versions (newest first) and aliases."""
    return registry.list_models(actor, project_id=project_id)


@router.post("/register", status_code=201)
async def register(project_id: PathId, body: RegisterRequest, actor: CurrentActor) -> ModelVersionPublic:
    """A succeeded job's best model as the next version of `name`, in MLflow's Model Registry too."""
    return await asyncio.to_thread(registry.register, actor, project_id=project_id, request=body)


@router.post("/upload", status_code=201)
async def upload(
    project_id: PathId,
    actor: CurrentActor,
    file: Annotated[
        UploadFile, File(description="Ultralytics .pt, timm state_dict .pt/.pth, or .safetensors")
    ],
    name: Annotated[str, Form(max_length=100)],
    description: Annotated[str, Form(max_length=2000)] = "",
    architecture: Annotated[
        str, Form(max_length=120, description="timm model name of a bare state_dict")
    ] = "",
) -> ModelVersionPublic:
    """Pretrained weights as a new version, once the trainer has loaded them the safe way."""
    data = await file.read(registry.MAX_WEIGHTS_BYTES + 1)
    return await asyncio.to_thread(
        registry.upload,
        actor,
        project_id=project_id,
        name=name,
        filename=file.filename or "",
        data=data,
        description=description,
        architecture=architecture or None,
    )


@router.get("/resolve")
def resolve(
    project_id: PathId,
    actor: CurrentActor,
    ref: Annotated[
        str, Query(max_length=200, description="models/<name>@<alias> or models/<name>/<version>")
    ],
) -> ModelVersionPublic:
    """The version an alias (or version number) names, with its lineage."""
    return registry.resolve(actor, project_id=project_id, ref=ref)


@router.get("/{name}")
def get_model(project_id: PathId, name: Name, actor: CurrentActor) -> RegisteredModelPublic:
    return registry.get_model(actor, project_id=project_id, name=name)


@router.get("/{name}/versions/{version}")
def get_version(project_id: PathId, name: Name, version: PathId, actor: CurrentActor) -> ModelVersionPublic:
    """One version: model card facts, lineage (job, dataset version, params, metrics) and exports."""
    return registry.get_version(actor, project_id=project_id, name=name, version=version)


@router.get("/{name}/versions/{version}/downloads")
def downloads(project_id: PathId, name: Name, version: PathId, actor: CurrentActor) -> dict[str, str]:
    """Short-lived download URLs: `weights` and one per export format."""
    return registry.downloads(actor, project_id=project_id, name=name, version=version)


@router.put("/{name}/aliases/{alias}")
async def set_alias(
    project_id: PathId, name: Name, alias: Alias, body: AliasRequest, actor: CurrentActor
) -> RegisteredModelPublic:
    """Point an alias (champion, staging, ...) at a version. Project admins only; audited."""
    return await asyncio.to_thread(
        registry.set_alias, actor, project_id=project_id, name=name, alias=alias, version=body.version
    )


@router.delete("/{name}/aliases/{alias}", status_code=204)
async def remove_alias(project_id: PathId, name: Name, alias: Alias, actor: CurrentActor) -> Response:
    await asyncio.to_thread(registry.remove_alias, actor, project_id=project_id, name=name, alias=alias)
    return Response(status_code=204)
