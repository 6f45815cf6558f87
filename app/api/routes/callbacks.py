"""Trainer callbacks: signed per job; services.actions.callbacks checks the signature first."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.api.deps import PathId
from services.actions import callbacks
from services.infra import signing
from services.infra.trainer_protocol import BatchResult

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


@router.post("/{job_id}/batch")
async def trainer_callback_batch(job_id: PathId, request: Request) -> BatchResult:
    """Protocol v1.6: several events of one job in one signed request, applied all or none."""
    body = await request.body()
    return await callbacks.receive_batch(
        job_id=job_id,
        body=body,
        timestamp=request.headers.get(signing.TIMESTAMP_HEADER),
        signature=request.headers.get(signing.SIGNATURE_HEADER),
    )
