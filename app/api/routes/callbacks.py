"""Trainer callbacks: signed per job; services.actions.callbacks checks the signature first."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.api.deps import PathId
from services.actions import callbacks
from services.infra import signing

router = APIRouter(prefix="/trainer/callbacks", tags=["trainer"])


@router.post("/{job_id}")
async def trainer_callback(job_id: PathId, request: Request) -> dict[str, str]:
    body = await request.body()
    result = await callbacks.receive(
        job_id=job_id,
        body=body,
        timestamp=request.headers.get(signing.TIMESTAMP_HEADER),
        signature=request.headers.get(signing.SIGNATURE_HEADER),
    )
    return {"result": result}
