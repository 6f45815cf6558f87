"""The Python client: `Client` and its resources (projects, datasets, jobs, models).

    from vtp_client import Client
    vtp = Client.from_config()                 # VTP_URL/VTP_TOKEN, else what `vtp login` saved
    project = vtp.projects.get("Demo project")
    job = vtp.jobs.submit(project.id, dataset_version_id=1, hyperparameters={"epochs": 5})
    job = vtp.jobs.wait(project.id, job.id, on_update=lambda j, new: print(j.state, new))

Every call goes through `Client.call` with an entry of `vtp_client.endpoints`; refusals raise
the typed errors of `vtp_client.errors` carrying the server's message.
"""

from __future__ import annotations

import builtins
import email.utils
import io
import json
import os
import time
import zipfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from vtp_client import config
from vtp_client import endpoints as ep
from vtp_client import models as m
from vtp_client.errors import ConnectionFailed, InvalidInput, JobFailed, NotFound, VtpError, from_response

R = TypeVar("R")
Progress = Callable[[int, int | None], None]  # (bytes done, total bytes or None)
API_PREFIX = "/api/v1"
# An access token this close to expiry is refreshed before use rather than after a 401.
REFRESH_MARGIN_S = 30.0


class _Auth(httpx.Auth):
    """Bearer auth; for a password login, refreshes the access token before it runs out and once
    more on a 401, then reports the new pair (so `vtp login`'s file stays current)."""

    requires_response_body = True

    def __init__(self, client: Client) -> None:
        self.client = client

    def _refresh_request(self) -> httpx.Request:
        body = m.RefreshRequest(refresh_token=self.client.refresh_token or "").model_dump()
        return httpx.Request("POST", self.client.base_url + ep.REFRESH.path, json=body)

    def _sign(self, request: httpx.Request) -> None:
        token = self.client.token or self.client.access_token
        if token:
            request.headers["Authorization"] = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        c = self.client
        if c.refresh_token and (not c.access_token or (c.expires_at or 0) - REFRESH_MARGIN_S < time.time()):
            c._take_pair((yield self._refresh_request()))
        self._sign(request)
        response = yield request
        expired = response.status_code == 401 and c.refresh_token and not c.token
        if expired and c._take_pair((yield self._refresh_request())):
            self._sign(request)
            yield request


class _CountingReader(io.RawIOBase):
    """A file wrapper that reports bytes read, for upload progress; httpx still sees its size."""

    def __init__(self, handle: BinaryIO, total: int, progress: Progress) -> None:
        super().__init__()
        self.handle, self.total, self.progress, self.done = handle, total, progress, 0

    def fileno(self) -> int:
        return self.handle.fileno()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.handle.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self.handle.seek(offset, whence)
        self.done = position  # a retry (after a 429) rewinds and starts counting again
        return position

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        self.done += len(chunk)
        self.progress(self.done, self.total)
        return chunk


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    if value:
        when = email.utils.parsedate_to_datetime(value)
        if when is not None:
            return max(0.0, when.timestamp() - time.time())
    return 1.0


class Client:
    """A session with one platform server.

    `token` is a personal API token (`vtp_pat_...`); or pass the `access_token`/`refresh_token`
    pair of a password login (see `Client.login`), refreshed as needed; `on_tokens` is told each
    new pair. A 429 is retried after the server's `Retry-After` while the total wait stays under
    `max_rate_limit_wait_s`, then raised as `RateLimited`.
    """

    def __init__(
        self,
        url: str = config.DEFAULT_URL,
        token: str | None = None,
        *,
        access_token: str | None = None,
        refresh_token: str | None = None,
        expires_at: float | None = None,
        on_tokens: Callable[[m.TokenPair], None] | None = None,
        timeout_s: float = 120.0,
        max_rate_limit_wait_s: float = 60.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.base_url = self.url + API_PREFIX
        self.token = token
        self.access_token, self.refresh_token, self.expires_at = access_token, refresh_token, expires_at
        self.on_tokens = on_tokens
        self.max_rate_limit_wait_s = max_rate_limit_wait_s
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout_s, auth=_Auth(self))
        # Presigned storage URLs carry their own signature: no Authorization header may go with them.
        self.plain = httpx.Client(timeout=timeout_s, follow_redirects=True)
        self.projects = Projects(self)
        self.datasets = Datasets(self)
        self.jobs = Jobs(self)
        self.sweeps = Sweeps(self)
        self.models = Models(self)
        self.batch = BatchInference(self)

    # --- construction ------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, url: str | None = None, token: str | None = None, **kwargs: Any) -> Client:
        """Arguments, else `VTP_URL`/`VTP_TOKEN`, else the file `vtp login` wrote (kept current)."""
        creds = config.resolve(url, token)
        client = cls(
            creds.url,
            creds.token,
            access_token=creds.access_token,
            refresh_token=creds.refresh_token,
            expires_at=creds.expires_at,
            **kwargs,
        )
        if creds.refresh_token and not creds.token:

            def save(pair: m.TokenPair) -> None:
                creds.access_token, creds.refresh_token = pair.access_token, pair.refresh_token
                creds.expires_at = client.expires_at
                config.save_file(creds)

            client.on_tokens = save
        return client

    @classmethod
    def login(cls, url: str, username: str, password: str, **kwargs: Any) -> Client:
        """Sign in with a password; the client then refreshes its access token by itself."""
        client = cls(url, **kwargs)
        body = m.LoginRequest(username=username, password=password)
        client._take_pair(client._send(ep.LOGIN, body=body))
        return client

    def _take_pair(self, response: httpx.Response) -> bool:
        if response.status_code != 200:
            return False
        pair = m.TokenPair.model_validate(response.json())
        self.access_token, self.refresh_token = pair.access_token, pair.refresh_token
        self.expires_at = time.time() + pair.expires_in
        if self.on_tokens is not None:
            self.on_tokens(pair)
        return True

    def close(self) -> None:
        self.http.close()
        self.plain.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- requests ----------------------------------------------------------------------------------

    def _send(
        self,
        endpoint: ep.Endpoint[Any],
        *,
        body: BaseModel | None = None,
        params: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
        **path: Any,
    ) -> httpx.Response:
        url = endpoint.path.format(**path)
        payload = body.model_dump(mode="json") if body is not None else None
        waited = 0.0
        while True:
            try:
                response = self.http.request(
                    endpoint.method,
                    url,
                    json=payload,
                    params=params,
                    files=files,
                    data=data,
                )
            except httpx.TransportError as exc:
                raise ConnectionFailed(f"Could not reach {self.url}: {exc}") from exc
            if response.status_code != 429:
                break
            delay = _retry_after(response)
            if waited + delay > self.max_rate_limit_wait_s:
                raise from_response(response, retry_after_s=delay)
            time.sleep(delay)
            waited += delay
        if response.status_code >= 400:
            raise from_response(response)
        return response

    def raw(self, endpoint: ep.Endpoint[Any], **kwargs: Any) -> Any:
        """One request; the answer's JSON as sent (None for an empty answer)."""
        response = self._send(endpoint, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def one(self, endpoint: ep.Endpoint[R], **kwargs: Any) -> R:
        """One request whose answer is one `endpoint.response`."""
        if endpoint.response is None or endpoint.many:
            raise TypeError(f"{endpoint.path}: not a one-object endpoint")
        return TypeAdapter(endpoint.response).validate_python(self.raw(endpoint, **kwargs))

    def many(self, endpoint: ep.Endpoint[R], **kwargs: Any) -> builtins.list[R]:
        """One request whose answer is a list of `endpoint.response`."""
        if endpoint.response is None or not endpoint.many:
            raise TypeError(f"{endpoint.path}: not a list endpoint")
        adapter = TypeAdapter(endpoint.response)
        doc = self.raw(endpoint, **kwargs)
        if not isinstance(doc, list):
            raise VtpError(f"{endpoint.method} {endpoint.path}: expected a list, got {type(doc).__name__}")
        return [adapter.validate_python(item) for item in doc]

    def logout(self) -> None:
        """End a password sign-in on the server: its refresh family stops working."""
        if self.refresh_token and not self.token:
            self.raw(ep.LOGOUT, body=m.LogoutRequest(refresh_token=self.refresh_token))
        self.access_token = self.refresh_token = None

    def me(self) -> m.User:
        return self.one(ep.ME)

    def create_token(self, name: str, *, expires_in_days: int = 90) -> m.PersonalTokenCreated:
        """A personal API token for CI; its secret is in this answer only."""
        return self.one(
            ep.CREATE_TOKEN, body=m.PersonalTokenCreate(name=name, expires_in_days=expires_in_days)
        )

    def tokens(self) -> builtins.list[m.PersonalToken]:
        """Your personal API tokens (names and dates; the secrets are never shown again)."""
        return self.many(ep.LIST_TOKENS)

    def catalog(self) -> dict[str, Any]:
        """What the trainer can train: frameworks, tasks, models, hyperparameters with defaults."""
        found: dict[str, Any] = self.raw(ep.PLUGINS)
        return found

    def download_url(self, url: str, dest: Path, *, progress: Progress | None = None) -> Path:
        """Stream a presigned storage URL into `dest` (written whole or not at all)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        try:
            with self.plain.stream("GET", url) as response:
                if response.status_code >= 400:
                    response.read()
                    raise from_response(response)
                total = (
                    int(response.headers["Content-Length"]) if "Content-Length" in response.headers else None
                )
                done = 0
                with partial.open("wb") as handle:
                    for chunk in response.iter_bytes(1 << 20):
                        handle.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise ConnectionFailed(f"Could not download {dest.name} from storage: {exc}") from exc
        os.replace(partial, dest)
        return dest


class _Resource:
    def __init__(self, client: Client) -> None:
        self.client = client


class Projects(_Resource):
    def list(self) -> builtins.list[m.Project]:
        """The projects you are a member of, with your role in each."""
        return self.client.many(ep.LIST_PROJECTS)

    def get(self, ref: int | str) -> m.Project:
        """A project by id, or by name (exact, then ignoring case)."""
        if isinstance(ref, int) or str(ref).isdigit():
            return self.client.one(ep.GET_PROJECT, project_id=int(ref))
        mine = self.list()
        exact = [p for p in mine if p.name == ref]
        loose = [p for p in mine if p.name.lower() == str(ref).lower()]
        for found in (exact, loose):
            if len(found) == 1:
                return found[0]
        names = ", ".join(repr(p.name) for p in mine) or "none"
        raise NotFound(f"No project named {ref!r} among yours ({names})", status_code=404)

    def create(self, name: str, description: str = "") -> m.Project:
        return self.client.one(ep.CREATE_PROJECT, body=m.ProjectCreate(name=name, description=description))


class Datasets(_Resource):
    def list(self, project_id: int) -> builtins.list[m.DatasetVersion]:
        """The latest version of each dataset of the project, newest dataset first."""
        return self.client.many(ep.LIST_DATASETS, project_id=project_id)

    def versions(self, project_id: int, dataset_id: int) -> builtins.list[m.DatasetVersionDetail]:
        return self.client.many(ep.LIST_VERSIONS, project_id=project_id, dataset_id=dataset_id)

    def get_version(self, project_id: int, dataset_id: int, version: int) -> m.DatasetVersionDetail:
        return self.client.one(ep.GET_VERSION, project_id=project_id, dataset_id=dataset_id, version=version)

    def resolve(self, project_id: int, ref: str) -> m.DatasetVersionDetail:
        """`NAME` (its latest version), `NAME:VERSION`, or a dataset id in place of the name."""
        name, _, version = ref.rpartition(":") if ref.rpartition(":")[2].isdigit() else (ref, "", "")
        latest = self.list(project_id)
        found = [d for d in latest if d.name == name] or [d for d in latest if str(d.dataset_id) == name]
        if not found:
            names = ", ".join(repr(d.name) for d in latest) or "none yet"
            raise NotFound(f"No dataset named {name!r} in project {project_id} (datasets: {names})")
        head = found[0]
        return self.get_version(project_id, head.dataset_id, int(version) if version else head.version)

    def _upload(
        self,
        endpoint: ep.Endpoint[m.UploadResult],
        path: Path,
        progress: Progress | None,
        data: dict[str, str],
        **ids: int,
    ) -> m.UploadResult:
        path = Path(path)
        if not path.is_file():
            raise InvalidInput(f"{path}: no such file")
        total = path.stat().st_size
        with path.open("rb") as handle:
            body: Any = _CountingReader(handle, total, progress) if progress else handle
            files = {"file": (path.name, body, "application/zip")}
            return self.client.one(endpoint, files=files, data=data, **ids)

    def upload(
        self, project_id: int, path: str | Path, *, name: str = "", progress: Progress | None = None
    ) -> m.UploadResult:
        """A zip (YOLO, COCO or ImageFolder) as a new dataset; `progress(sent, total)` as it goes.

        A rejected upload raises `InvalidInput` whose `problems` lists every file and line.
        """
        return self._upload(ep.UPLOAD_DATASET, Path(path), progress, {"name": name}, project_id=project_id)

    def upload_version(
        self, project_id: int, dataset_id: int, path: str | Path, *, progress: Progress | None = None
    ) -> m.UploadResult:
        """A zip as the next version of an existing dataset."""
        return self._upload(
            ep.UPLOAD_VERSION, Path(path), progress, {}, project_id=project_id, dataset_id=dataset_id
        )

    def split(
        self,
        project_id: int,
        dataset_id: int,
        *,
        train: float = 0.8,
        val: float = 0.1,
        test: float = 0.1,
        seed: int = 0,
        method: Literal["stratified", "random", "keep"] = "stratified",
        from_version: int | None = None,
    ) -> m.DatasetVersionDetail:
        """A new version with a train/val/test split (stratified by class unless told otherwise)."""
        body = m.SplitRequest(
            train=train,
            val=val,
            test=test,
            seed=seed,
            method=method,
            from_version=from_version,  # type: ignore[arg-type]
        )
        return self.client.one(ep.SPLIT, body=body, project_id=project_id, dataset_id=dataset_id)

    def rename_classes(
        self, project_id: int, dataset_id: int, names: dict[str, str], *, from_version: int | None = None
    ) -> m.DatasetVersionDetail:
        """A new version whose classes carry new names (`{"old": "new"}`); labels stay as they are."""
        body = m.RenameRequest(names=names, from_version=from_version)
        return self.client.one(ep.RENAME, body=body, project_id=project_id, dataset_id=dataset_id)

    def report(self, project_id: int, dataset_id: int, version: int) -> dict[str, Any]:
        """The validation report of an uploaded version: counts and warnings ({} for split versions)."""
        found: dict[str, Any] = self.client.raw(
            ep.GET_REPORT, project_id=project_id, dataset_id=dataset_id, version=version
        )
        return found

    def stats(self, project_id: int, dataset_id: int, version: int) -> m.DatasetStats:
        return self.client.one(ep.GET_STATS, project_id=project_id, dataset_id=dataset_id, version=version)


def new_lines(seen: list[str], tail: list[str]) -> builtins.list[str]:
    """The lines of `tail` after the longest overlap of `seen`'s end with `tail`'s start."""
    for k in range(min(len(seen), len(tail)), 0, -1):
        if seen[-k:] == tail[:k]:
            return tail[k:]
    return list(tail)


class Jobs(_Resource):
    def list(
        self, project_id: int, *, state: builtins.list[str] | None = None, search: str = ""
    ) -> builtins.list[m.JobListItem]:
        """Newest first; waiting jobs carry `queue_position`."""
        params: dict[str, Any] = {"search": search}
        if state:
            params["state"] = state
        return self.client.many(ep.LIST_JOBS, params=params, project_id=project_id)

    def get(self, project_id: int, job_id: int) -> m.JobDetail:
        return self.client.one(ep.GET_JOB, project_id=project_id, job_id=job_id)

    def submit(
        self,
        project_id: int,
        *,
        dataset_version_id: int,
        model: str = "yolo11n.yaml",
        hyperparameters: dict[str, Any] | None = None,
        name: str = "",
        framework: str = "ultralytics",
        task: str = "detect",
        device: str = "auto",
        predictions_max_images: int = 500,
    ) -> m.Job:
        """Queue a training job; the server checks model and hyperparameters against the trainer.
        `predictions_max_images`: val and test images whose predictions are stored at the end."""
        body = m.JobCreate(
            dataset_version_id=dataset_version_id,
            name=name,
            framework=framework,
            task=task,
            model=model,
            hyperparameters=hyperparameters or {},
            device=device,
            predictions_max_images=predictions_max_images,
        )
        return self.client.one(ep.CREATE_JOB, body=body, project_id=project_id)

    def cancel(self, project_id: int, job_id: int) -> m.Job:
        """Queued jobs stop at once; running ones at the trainer's next batch."""
        return self.client.one(ep.CANCEL_JOB, project_id=project_id, job_id=job_id)

    def retry(self, project_id: int, job_id: int, *, resume: bool = True) -> m.Job:
        """A failed or cancelled job again, as a new job (from its last checkpoint with `resume`)."""
        return self.client.one(
            ep.RETRY_JOB, body=m.RetryRequest(resume=resume), project_id=project_id, job_id=job_id
        )

    def wait(
        self,
        project_id: int,
        job_id: int,
        *,
        on_update: Callable[[m.JobDetail, builtins.list[m.MetricPoint]], None] | None = None,
        poll_s: float = 2.0,
        timeout_s: float | None = None,
        raise_on_failure: bool = False,
    ) -> m.JobDetail:
        """Poll until the job finishes. `on_update(job, new_epochs)` runs on each change of state
        and for each batch of newly reported epochs. Returns the finished job."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last_state, reported = "", -1  # epochs count from 0
        while True:
            job = self.get(project_id, job_id)
            fresh = [p for p in job.metrics if p.epoch > reported]
            if on_update is not None and (fresh or job.state != last_state):
                on_update(job, fresh)
            if fresh:
                reported = max(p.epoch for p in fresh)
            last_state = job.state
            if job.finished:
                if raise_on_failure and job.state != "succeeded":
                    reason = job.error_message or job.state
                    raise JobFailed(f"Job {job_id} {job.state}: {reason}", job=job)
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"Job {job_id} still {job.state} after {timeout_s:.0f} s")
            time.sleep(poll_s)

    def metrics(self, project_id: int, job_id: int) -> builtins.list[dict[str, float]]:
        """One row per epoch, `{"epoch": n, <metric>: value, ...}`: ready for `pandas.DataFrame`.

        Epochs count from 0, as the API and MLflow store them (the web UI shows epoch 0 as "1/N").
        """
        job = self.get(project_id, job_id)
        return [{"epoch": p.epoch, **p.metrics} for p in sorted(job.metrics, key=lambda p: p.epoch)]

    def artifacts(self, project_id: int, job_id: int) -> builtins.list[m.Artifact]:
        """Every file the job stored (checkpoints, exports, plots, logs) with a short-lived URL."""
        return self.client.many(ep.ARTIFACTS, project_id=project_id, job_id=job_id)

    def download(
        self,
        project_id: int,
        job_id: int,
        key: str,
        dest: str | Path = ".",
        *,
        progress: Progress | None = None,
    ) -> Path:
        """Download one artifact by its key (`checkpoints/best.pt`); `dest` is a file or folder."""
        found = {a.key: a for a in self.artifacts(project_id, job_id)}
        if key not in found:
            listed = ", ".join(sorted(found)) or "none yet"
            raise NotFound(f"Job {job_id} has no artifact {key!r} (it has: {listed})")
        target = Path(dest)
        if target.is_dir() or str(dest).endswith(os.sep):
            target = target / key.rsplit("/", 1)[-1]
        return self.client.download_url(found[key].download_url, target, progress=progress)

    def logs(self, project_id: int, job_id: int) -> builtins.list[str]:
        """The job's whole log once the trainer uploaded it, else the last lines it reported."""
        for artifact in self.artifacts(project_id, job_id):
            if artifact.kind == "logs" and artifact.key.endswith(".jsonl"):
                try:
                    response = self.client.plain.get(artifact.download_url)
                except httpx.TransportError as exc:
                    raise ConnectionFailed(f"Could not read job {job_id}'s log from storage: {exc}") from exc
                if response.status_code >= 400:
                    raise from_response(response)
                text = response.text
                return [_log_line(line) for line in text.splitlines() if line.strip()]
        return self.get(project_id, job_id).log_tail

    def follow_logs(self, project_id: int, job_id: int, *, poll_s: float = 2.0) -> Iterator[str]:
        """Yield new log lines as the trainer reports them (with each heartbeat) until the job ends."""
        seen: builtins.list[str] = []
        while True:
            job = self.get(project_id, job_id)
            yield from new_lines(seen, job.log_tail)
            seen = job.log_tail
            if job.finished:
                return
            time.sleep(poll_s)


def _log_line(raw: str) -> str:
    try:
        entry = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(entry, dict):
        return raw
    return f"{entry.get('ts', '')} {str(entry.get('level', '')).upper():7} {entry.get('message', '')}".strip()


EXPORT_SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript"}


class Sweeps(_Resource):
    """Hyperparameter sweeps: each trial is an ordinary job (see `Jobs`)."""

    def list(self, project_id: int) -> builtins.list[m.Sweep]:
        return self.client.many(ep.LIST_SWEEPS, project_id=project_id)

    def get(self, project_id: int, sweep_id: int) -> m.SweepDetail:
        return self.client.one(ep.GET_SWEEP, project_id=project_id, sweep_id=sweep_id)

    def create(self, project_id: int, sweep: m.SweepCreate) -> m.Sweep:
        """Checked against the trainer's catalogue; the worker then starts the first trials."""
        return self.client.one(ep.CREATE_SWEEP, body=sweep, project_id=project_id)

    def cancel(self, project_id: int, sweep_id: int) -> m.Sweep:
        """Waiting trials are cancelled at once, running ones at the trainer's next batch."""
        return self.client.one(ep.CANCEL_SWEEP, project_id=project_id, sweep_id=sweep_id)

    def train_best(self, project_id: int, sweep_id: int) -> m.Job:
        """A new ordinary job with the best trial's hyperparameters."""
        return self.client.one(ep.TRAIN_BEST, project_id=project_id, sweep_id=sweep_id)


def model_ref(ref: str | int) -> str:
    """A model reference as the server takes it: a job id becomes `jobs/<id>`; `models/...` and
    `jobs/...` pass unchanged; `<name>@<alias>` and `<name>/<version>` gain the `models/` prefix."""
    text = str(ref).strip()
    if text.isdigit():
        return f"jobs/{text}"
    if text.startswith(("models/", "jobs/")) or not text:
        return text
    return f"models/{text}"


def _name(name: str) -> str:
    """A model name as one path segment (names may hold spaces and other characters)."""
    if not name.strip():
        raise InvalidInput("name: give the model's name")
    return quote(name, safe="")


class Models(_Resource):
    """Trained models: succeeded jobs' checkpoints and their exports (`list`, `export`, `predict`,
    `download`), and the project's model registry, kept in MLflow's Model Registry (`registered`,
    `register`, `upload`, aliases, `resolve`, `download_version`)."""

    def list(self, project_id: int) -> builtins.list[m.JobListItem]:
        """Succeeded jobs that saved a checkpoint, newest first."""
        jobs = self.client.jobs.list(project_id, state=["succeeded"])
        return [j for j in jobs if j.artifacts.get("best_checkpoint") or j.artifacts.get("last_checkpoint")]

    def export(
        self, project_id: int, job_id: int, formats: builtins.list[str] | None = None
    ) -> dict[str, Any]:
        """Export the best checkpoint (ONNX, TorchScript) next to it; returns what was written."""
        body = m.ExportRequest(formats=formats or ["onnx", "torchscript"])
        found: dict[str, Any] = self.client.raw(ep.EXPORT, body=body, project_id=project_id, job_id=job_id)
        return found

    def predict(self, project_id: int, job_id: int, image: str | Path) -> dict[str, Any]:
        """Run the job's model on one image: `boxes` (detect/segment) or `probabilities` (classify)."""
        path = Path(image)
        if not path.is_file():
            raise InvalidInput(f"{path}: no such file")
        with path.open("rb") as handle:
            files = {"image": (path.name, handle, "application/octet-stream")}
            found: dict[str, Any] = self.client.raw(
                ep.PREDICT, files=files, project_id=project_id, job_id=job_id
            )
            return found

    def download(
        self,
        project_id: int,
        job_id: int,
        dest: str | Path = ".",
        *,
        format: str = "pt",
        checkpoint: str = "best",
        progress: Progress | None = None,
    ) -> Path:
        """The model file: `format="pt"` the `best` (or `last`) checkpoint; `onnx`/`torchscript`
        an export, made first if the job has none yet."""
        jobs = self.client.jobs
        if format == "pt":
            return jobs.download(project_id, job_id, f"checkpoints/{checkpoint}.pt", dest, progress=progress)
        if format not in EXPORT_SUFFIX:
            raise InvalidInput(f"format: choose from pt, {', '.join(EXPORT_SUFFIX)}; got {format!r}")

        def exported() -> str | None:
            keys = [a.key for a in jobs.artifacts(project_id, job_id) if a.kind == "exports"]
            return next((k for k in keys if k.endswith(EXPORT_SUFFIX[format])), None)

        key = exported()
        if key is None:
            self.export(project_id, job_id, [format])
            key = exported()
        if key is None:
            raise NotFound(f"Job {job_id}: the export to {format} left no file")
        return jobs.download(project_id, job_id, key, dest, progress=progress)

    # --- the registry ------------------------------------------------------------------------------

    def registered(self, project_id: int) -> builtins.list[m.RegisteredModel]:
        """The project's registered models, each with its versions (newest first) and aliases."""
        return self.client.many(ep.LIST_MODELS, project_id=project_id)

    def get(self, project_id: int, name: str) -> m.RegisteredModel:
        return self.client.one(ep.GET_MODEL, project_id=project_id, name=_name(name))

    def versions(self, project_id: int, name: str) -> builtins.list[m.ModelVersion]:
        """A model's versions, newest first, with their aliases, metrics and exports."""
        return self.get(project_id, name).versions

    def version(self, project_id: int, name: str, version: int) -> m.ModelVersion:
        """One version: model card facts, lineage (job, dataset version, parameters, metrics)."""
        return self.client.one(ep.GET_MODEL_VERSION, project_id=project_id, name=_name(name), version=version)

    def register(self, project_id: int, job_id: int, name: str, *, description: str = "") -> m.ModelVersion:
        """A succeeded job's best checkpoint as the next version of `name` (created if new),
        stored as the run's artifact and registered in MLflow's Model Registry."""
        body = m.RegisterRequest(job_id=job_id, name=name, description=description)
        return self.client.one(ep.REGISTER_MODEL, body=body, project_id=project_id)

    def upload(
        self,
        project_id: int,
        path: str | Path,
        name: str,
        *,
        description: str = "",
        architecture: str = "",
        progress: Progress | None = None,
    ) -> m.ModelVersion:
        """Pretrained weights (an Ultralytics `.pt`, a timm state_dict `.pt`/`.pth` or `.safetensors`)
        as a new version of `name`; the trainer loads them the safe way first and detects the task,
        architecture and classes. A bare timm state_dict needs its `architecture` (a timm name)."""
        path = Path(path)
        if not path.is_file():
            raise InvalidInput(f"{path}: no such file")
        total = path.stat().st_size
        with path.open("rb") as handle:
            body: Any = _CountingReader(handle, total, progress) if progress else handle
            files = {"file": (path.name, body, "application/octet-stream")}
            data = {"name": name, "description": description, "architecture": architecture}
            return self.client.one(ep.UPLOAD_WEIGHTS, files=files, data=data, project_id=project_id)

    def set_alias(self, project_id: int, name: str, alias: str, version: int) -> m.RegisteredModel:
        """Point `alias` (champion, staging, ...) at a version; project admins only, audited."""
        return self.client.one(
            ep.SET_ALIAS,
            body=m.AliasRequest(version=version),
            project_id=project_id,
            name=_name(name),
            alias=quote(alias, safe=""),
        )

    def remove_alias(self, project_id: int, name: str, alias: str) -> None:
        self.client.raw(ep.REMOVE_ALIAS, project_id=project_id, name=_name(name), alias=quote(alias, safe=""))

    def resolve(self, project_id: int, ref: str) -> m.ModelVersion:
        """The version `models/<name>@<alias>` or `models/<name>/<version>` names right now."""
        return self.client.one(ep.RESOLVE_MODEL, params={"ref": model_ref(ref)}, project_id=project_id)

    def downloads(self, project_id: int, name: str, version: int) -> dict[str, str]:
        """Short-lived URLs: `weights`, and one per export format attached to the version."""
        found: dict[str, str] = self.client.raw(
            ep.VERSION_DOWNLOADS, project_id=project_id, name=_name(name), version=version
        )
        return found

    def download_version(
        self,
        project_id: int,
        ref: str,
        dest: str | Path = ".",
        *,
        format: str = "weights",
        progress: Progress | None = None,
    ) -> Path:
        """A registered version's weights (`format="weights"`) or one of its exports (`onnx`, ...);
        `ref` is `models/<name>@<alias>` or `models/<name>/<version>`; `dest` a file or folder."""
        found = self.resolve(project_id, ref)
        urls = self.downloads(project_id, found.model, found.version)
        if format not in urls:
            have = ", ".join(sorted(urls))
            raise NotFound(f"{found.ref} has no {format!r} to download (it has: {have})")
        if format == "weights":
            filename = found.filename or found.weights_uri.rsplit("/", 1)[-1]
        else:
            uri = next((e.uri for e in found.exports if e.format == format), f"{format}.bin")
            filename = uri.rsplit("/", 1)[-1]
        target = Path(dest)
        if target.is_dir() or str(dest).endswith(os.sep):
            target = target / f"{found.model}-v{found.version}-{filename}"
        return self.client.download_url(urls[format], target, progress=progress)


# What `BatchInference.download` fetches for each format it is asked for.
BATCH_FILES = {"jsonl": "predictions_jsonl", "csv": "predictions_csv", "summary": "inference_summary"}


class BatchInference(_Resource):
    """Batch runs: a model over every image of a dataset version, or of a zip you upload. Each is a
    queued job like training (progress, cancel via `jobs.cancel`); it writes its predictions as
    JSON Lines and CSV, and a summary (counts per class, score histogram, gallery).

        job = vtp.batch.start(pid, "models/shapes@champion", dataset_version_id=3)
        vtp.batch.wait(pid, job.id, raise_on_failure=True)
        jsonl, csv = vtp.batch.download(pid, job.id, "results/")
    """

    def start(
        self,
        project_id: int,
        model: str | int,
        *,
        dataset_version_id: int,
        conf: float = 0.25,
        name: str = "",
    ) -> m.Job:
        """Queue a run of `model` (a job id, `jobs/<id>`, `models/<name>@<alias>` or
        `models/<name>/<version>`) over every image (all splits) of a dataset version."""
        body = m.BatchCreate(
            model=model_ref(model), dataset_version_id=dataset_version_id, conf=conf, name=name
        )
        return self.client.one(ep.CREATE_BATCH, body=body, project_id=project_id)

    def start_zip(
        self,
        project_id: int,
        model: str | int,
        images: str | Path,
        *,
        conf: float = 0.25,
        name: str = "",
        progress: Progress | None = None,
    ) -> m.Job:
        """Queue a run over a local `.zip` of PNG/JPEG/WebP/BMP/TIFF images."""
        path = Path(images)
        if not path.is_file():
            raise InvalidInput(f"{path}: no such file")
        if not zipfile.is_zipfile(path):
            raise InvalidInput(f"{path}: not a zip file; pack the images with `zip -r images.zip folder/`")
        total = path.stat().st_size
        with path.open("rb") as handle:
            body: Any = _CountingReader(handle, total, progress) if progress else handle
            files = {"images": (path.name, body, "application/zip")}
            data = {"model": model_ref(model), "conf": str(conf), "name": name}
            return self.client.one(ep.UPLOAD_BATCH, files=files, data=data, project_id=project_id)

    def results(self, project_id: int, job_id: int) -> dict[str, Any]:
        """`state`, `images_done`/`images_total`; once it succeeded, `summary` (counts per class,
        score histogram), `gallery` (drawn images' URLs) and `downloads` (short-lived URLs)."""
        found: dict[str, Any] = self.client.raw(ep.BATCH_RESULTS, project_id=project_id, job_id=job_id)
        return found

    def wait(
        self,
        project_id: int,
        job_id: int,
        *,
        on_update: Callable[[m.JobDetail], None] | None = None,
        poll_s: float = 2.0,
        timeout_s: float | None = None,
        raise_on_failure: bool = False,
    ) -> m.JobDetail:
        """Poll until the run finishes; `on_update(job)` on each change of state or of images done
        (`job.current_epoch` of `job.total_epochs` for a batch run). Returns the finished job."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last: tuple[str, int | None, int | None] | None = None
        while True:
            job = self.client.jobs.get(project_id, job_id)
            now = (job.state, job.current_epoch, job.total_epochs)
            if on_update is not None and now != last:
                on_update(job)
            last = now
            if job.finished:
                if raise_on_failure and job.state != "succeeded":
                    reason = job.error_message or job.state
                    raise JobFailed(f"Batch run {job_id} {job.state}: {reason}", job=job)
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"Batch run {job_id} still {job.state} after {timeout_s:.0f} s")
            time.sleep(poll_s)

    def download(
        self,
        project_id: int,
        job_id: int,
        dest: str | Path = ".",
        *,
        formats: tuple[str, ...] = ("jsonl", "csv"),
        progress: Progress | None = None,
    ) -> builtins.list[Path]:
        """Download a finished run's predictions (`jsonl`, `csv`) and/or `summary` into folder `dest`."""
        unknown = [f for f in formats if f not in BATCH_FILES]
        if unknown:
            raise InvalidInput(f"formats: choose from {', '.join(BATCH_FILES)}; got {', '.join(unknown)}")
        job = self.client.jobs.get(project_id, job_id)
        if job.kind != "batch_inference":
            raise InvalidInput(f"Job {job_id} is a {job.kind} job, not a batch inference run")
        urls = self.results(project_id, job_id).get("downloads") or {}
        folder = Path(dest)
        saved = []
        for name in formats:
            key = BATCH_FILES[name]
            if key not in urls or key not in job.artifacts:
                raise NotFound(f"Batch run {job_id} ({job.state}) has no {name} results yet")
            target = folder / job.artifacts[key].rsplit("/", 1)[-1]
            saved.append(self.client.download_url(urls[key], target, progress=progress))
        return saved
