"""Predictions side by side: the compare-predictions page's data for scripts and notebooks.
Parse, call services.actions.predictions (the page calls the same function)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.api.deps import DB_INT_MAX, CurrentActor, PathId
from services.actions import predictions

router = APIRouter(prefix="/projects/{project_id}/predictions", tags=["predictions"])


@router.get("/compare")
def compare(
    project_id: PathId,
    actor: CurrentActor,
    jobs: Annotated[
        str,
        Query(
            description="2 to 4 comma-separated ids of succeeded jobs trained on one dataset version",
            max_length=200,
        ),
    ],
    split: Literal["val", "test"] = "val",
    disagree: Annotated[bool, Query(description="Only images the models judge differently")] = False,
    class_name: Annotated[
        str, Query(max_length=200, description="Only images with this class in the truth or a prediction")
    ] = "",
    wrong_in: Annotated[
        int | None, Query(ge=1, le=DB_INT_MAX, description="Only images this compared job got wrong")
    ] = None,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=predictions.MAX_PAGE)] = 12,
) -> predictions.PredictionPage:
    """One page of images with each model's boxes judged (tp / fp / missed, in percent of the
    image) beside the ground truth, and short-lived thumbnail URLs: what the page draws."""
    return predictions.compare(
        actor,
        project_id=project_id,
        job_ids=predictions.job_ids_from(jobs),
        split=split,
        disagree=disagree,
        class_name=class_name,
        wrong_in=wrong_in,
        offset=offset,
        limit=limit,
    )
