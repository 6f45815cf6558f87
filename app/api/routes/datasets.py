from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from app.api.deps import CurrentUser, SessionDep
from services import datasets, views
from services.models import Role
from services.permissions import require_role
from services.schemas import DatasetVersionPublic

router = APIRouter(prefix="/projects/{project_id}/datasets", tags=["datasets"])


@router.get("")
def list_datasets(project_id: int, session: SessionDep, user: CurrentUser) -> list[DatasetVersionPublic]:
    require_role(session, user=user, project_id=project_id, minimum=Role.viewer)
    return views.project_datasets(session, project_id=project_id)


@router.post("", status_code=201)
def upload_dataset(
    project_id: int,
    session: SessionDep,
    user: CurrentUser,
    file: Annotated[UploadFile, File(description="A .zip in YOLO detection layout")],
    name: Annotated[str, Form(max_length=120)] = "",
) -> DatasetVersionPublic:
    """Starlette spools the upload to disk, so a multi-GB zip never sits in memory."""
    require_role(session, user=user, project_id=project_id, minimum=Role.member)
    filename = file.filename or "upload.zip"
    version = datasets.create_dataset_from_zip(
        session,
        project_id=project_id,
        user_id=user.id,
        name=name or filename.rsplit(".", 1)[0],
        fileobj=file.file,
        filename=filename,
    )
    return DatasetVersionPublic.of(version, name or filename.rsplit(".", 1)[0])
