"""Every REST call the client makes, as data: method, path, body, answer.

The client sends requests only through this table, and the OpenAPI agreement test walks the
same table against the server's schema, so what is checked is exactly what is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from vtp_client import models as m

R = TypeVar("R")


@dataclass(frozen=True)
class Endpoint(Generic[R]):
    """One route; `R` is the answer's model (`Any` where the server documents no shape)."""

    method: str
    path: str
    body: type[BaseModel] | None = None
    response: type[R] | None = None
    many: bool = False  # the answer is a JSON list of `response`
    status: int = 200
    form: tuple[str, ...] = ()  # multipart fields (uploads)
    query: tuple[str, ...] = ()


P = "/projects/{project_id}"
D = P + "/datasets/{dataset_id}"
J = P + "/jobs/{job_id}"

LOGIN = Endpoint("POST", "/auth/login", m.LoginRequest, m.TokenPair)
REFRESH = Endpoint("POST", "/auth/refresh", m.RefreshRequest, m.TokenPair)
LOGOUT: Endpoint[Any] = Endpoint("POST", "/auth/logout", m.LogoutRequest, status=204)
ME = Endpoint("GET", "/auth/me", response=m.User)
LIST_TOKENS = Endpoint("GET", "/auth/tokens", response=m.PersonalToken, many=True)
CREATE_TOKEN = Endpoint("POST", "/auth/tokens", m.PersonalTokenCreate, m.PersonalTokenCreated, status=201)

LIST_PROJECTS = Endpoint("GET", "/projects", response=m.Project, many=True)
CREATE_PROJECT = Endpoint("POST", "/projects", m.ProjectCreate, m.Project, status=201)
GET_PROJECT = Endpoint("GET", P, response=m.Project)

LIST_DATASETS = Endpoint("GET", P + "/datasets", response=m.DatasetVersion, many=True)
UPLOAD_DATASET = Endpoint("POST", P + "/datasets", response=m.UploadResult, status=201, form=("file", "name"))
LIST_VERSIONS = Endpoint("GET", D + "/versions", response=m.DatasetVersionDetail, many=True)
UPLOAD_VERSION = Endpoint("POST", D + "/versions", response=m.UploadResult, status=201, form=("file",))
GET_VERSION = Endpoint("GET", D + "/versions/{version}", response=m.DatasetVersionDetail)
GET_REPORT: Endpoint[Any] = Endpoint(
    "GET", D + "/versions/{version}/report"
)  # free-form on the server: {} or a report
GET_STATS = Endpoint("GET", D + "/versions/{version}/stats", response=m.DatasetStats)
RENAME = Endpoint("POST", D + "/rename-classes", m.RenameRequest, m.DatasetVersionDetail, status=201)
SPLIT = Endpoint("POST", D + "/split", m.SplitRequest, m.DatasetVersionDetail, status=201)

PLUGINS: Endpoint[Any] = Endpoint("GET", "/plugins")  # the trainer's catalogue, free-form
LIST_JOBS = Endpoint("GET", P + "/jobs", response=m.JobListItem, many=True, query=("state", "search"))
CREATE_JOB = Endpoint("POST", P + "/jobs", m.JobCreate, m.Job, status=201)
GET_JOB = Endpoint("GET", J, response=m.JobDetail)
CANCEL_JOB = Endpoint("POST", J + "/cancel", response=m.Job)
RETRY_JOB = Endpoint("POST", J + "/retry", m.RetryRequest, m.Job, status=201)
ARTIFACTS = Endpoint("GET", J + "/artifacts", response=m.Artifact, many=True)
EXPORT: Endpoint[Any] = Endpoint("POST", J + "/export", m.ExportRequest)  # free-form: {"exports": [...], ...}
PREDICT: Endpoint[Any] = Endpoint(
    "POST", J + "/predict", form=("image",)
)  # free-form: boxes or probabilities

SW = P + "/sweeps"
LIST_SWEEPS = Endpoint("GET", SW, response=m.Sweep, many=True)
CREATE_SWEEP = Endpoint("POST", SW, m.SweepCreate, m.Sweep, status=201)
GET_SWEEP = Endpoint("GET", SW + "/{sweep_id}", response=m.SweepDetail)
CANCEL_SWEEP = Endpoint("POST", SW + "/{sweep_id}/cancel", response=m.Sweep)
TRAIN_BEST = Endpoint("POST", SW + "/{sweep_id}/train-best", response=m.Job, status=201)

MD = P + "/models"
MV = MD + "/{name}/versions/{version}"
LIST_MODELS = Endpoint("GET", MD, response=m.RegisteredModel, many=True)
REGISTER_MODEL = Endpoint("POST", MD + "/register", m.RegisterRequest, m.ModelVersion, status=201)
UPLOAD_WEIGHTS = Endpoint(
    "POST",
    MD + "/upload",
    response=m.ModelVersion,
    status=201,
    form=("file", "name", "description", "architecture"),
)
RESOLVE_MODEL = Endpoint("GET", MD + "/resolve", response=m.ModelVersion, query=("ref",))
GET_MODEL = Endpoint("GET", MD + "/{name}", response=m.RegisteredModel)
GET_MODEL_VERSION = Endpoint("GET", MV, response=m.ModelVersion)
VERSION_DOWNLOADS: Endpoint[Any] = Endpoint("GET", MV + "/downloads")  # {"weights": url, <format>: url}
SET_ALIAS = Endpoint("PUT", MD + "/{name}/aliases/{alias}", m.AliasRequest, m.RegisteredModel)
REMOVE_ALIAS: Endpoint[Any] = Endpoint("DELETE", MD + "/{name}/aliases/{alias}", status=204)

CREATE_BATCH = Endpoint("POST", P + "/batch-inference", m.BatchCreate, m.Job, status=201)
UPLOAD_BATCH = Endpoint(
    "POST",
    P + "/batch-inference/upload",
    response=m.Job,
    status=201,
    form=("model", "images", "conf", "name"),
)
BATCH_RESULTS: Endpoint[Any] = Endpoint(
    "GET", J + "/batch-results"
)  # free-form: state, images_done/_total, summary, gallery, downloads

ALL: tuple[Endpoint[Any], ...] = tuple(v for v in list(globals().values()) if isinstance(v, Endpoint))
