"""The job page (`/jobs/[job_id]`): live status, metrics chart, logs, artifacts and Cancel."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any

import plotly.graph_objects as go
import reflex as rx

from components.charts import flatten_points, metrics_figure_json
from components.metrics_panel import chart_title, per_class_headers, per_class_table
from components.training_charts import (
    confusion_matrix_figure,
    empty_figure,
    pr_curve_figure,
    score_histogram_figure,
)
from services.actions import batch_inference, jobs, models, predictions
from services.actions import experiments as runs_actions
from services.actions.core import optional_web_actor, web_actor
from services.domain import fleet
from services.domain.jobs import queue_text
from services.domain.permissions import Action
from services.domain.schemas import JobDetail
from services.errors import DomainError, Overloaded
from services.infra import live as live_channels
from services.infra.settings import get_settings
from state.auth_state import AuthState, login_redirect
from state.formatting import FINISHED_STATES, artifact_rows, checkpoint_progress, epoch_progress, format_time
from state.page_helpers import human_bytes, role_allows
from state.polling import (
    IDLE_LOOK_S,
    LIVE_REFRESH_S,
    PAUSED_MESSAGE,
    DisconnectTimer,
    client_connected,
    next_change,
    route_id,
    watch,
)
from state.predictions_state import page_rows
from state.shared_reads import shared
from state.training_helpers import mlflow_run_url, stale_in, staleness

JOB_ROUTE = "/jobs/[job_id]"


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


_JOB_ROUTE_ID = route_id(JOB_ROUTE)
LOG_LINES = 20


@dataclass
class JobSnapshot:
    """What one poll of the database found (None fields: signed out / not visible)."""

    signed_in: bool = True
    error: str = ""
    detail: JobDetail | None = None
    role: str = ""
    own: bool = False  # the user launched this job (members may cancel and retry their own)
    points: list[dict[str, float]] = field(default_factory=list)
    busy: bool = False  # the server was saturated: keep what is shown, say so, the next poll retries


BUSY_RETRYING = "The server is busy: retrying…"


def load_job(token: str, job_id: int) -> JobSnapshot:
    """Read one job for the user behind `token`, checking the viewer role (blocking; run in a thread)."""
    try:
        return _load_job(token, job_id)
    except Overloaded:
        return JobSnapshot(busy=True)


def _load_job(token: str, job_id: int) -> JobSnapshot:
    actor = optional_web_actor(token)
    if actor is None:
        return JobSnapshot(signed_in=False)
    try:
        view = jobs.job_view(actor, job_id=job_id)
    except Overloaded:
        raise  # "busy, retrying" (load_job), not "not found": the job is still there
    except DomainError:
        # Same answer for "no such job" and "not your project": existence is not leaked.
        return JobSnapshot(error=f"Job {job_id} was not found, or you do not have access to it.")
    return JobSnapshot(
        detail=view.detail, role=view.role, own=view.own, points=flatten_points(view.detail.metrics)
    )


def viewer_access(token: str, job_id: int) -> jobs.JobAccess | JobSnapshot:
    """The check of one viewer of a job whose data was read for all its viewers: their access,
    or the snapshot that says why they see nothing (blocking; run in a thread)."""
    try:
        actor = optional_web_actor(token)
        if actor is None:
            return JobSnapshot(signed_in=False)
        return jobs.job_access(actor, job_id=job_id)
    except Overloaded:
        return JobSnapshot(busy=True)
    except DomainError:
        return JobSnapshot(error=f"Job {job_id} was not found, or you do not have access to it.")


def with_access(token: str, job_id: int, shared: JobSnapshot) -> JobSnapshot:
    """The job of `shared` (read once for every viewer of the job) as the user behind `token` may
    see it: their own check and role, the shared data (blocking; run in a thread)."""
    access = viewer_access(token, job_id)
    if isinstance(access, JobSnapshot):
        return access
    # A list of its own: a page's state must never share a mutable list with another page's.
    return JobSnapshot(detail=shared.detail, role=access.role, own=access.own, points=list(shared.points))


async def watched_job(token: str, job_id: int, version: tuple[int, int] | None) -> JobSnapshot:
    """The job as a watching page re-reads it after a notice. With a `version` (push is up), the
    job's data is read once per version for all the pages of this process that watch it, and
    each page is checked on its own; without one, the page reads for itself."""
    if version is None:
        return await asyncio.to_thread(load_job, token, job_id)
    found = await shared("job-page", JobSnapshot).get(job_id, version, lambda: load_job(token, job_id))
    if found.detail is None:  # the page that read it was signed out, refused or shed: read alone
        return await asyncio.to_thread(load_job, token, job_id)
    return await asyncio.to_thread(with_access, token, job_id, found)


def parse_job_id(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and 0 < int(raw) < 2**63 else None


@dataclass
class JobExtras:
    """What the validation tab, the artifacts list and the MLflow link show (one background load)."""

    signed_in: bool = True
    error: str = ""
    epoch: int | None = None
    per_class: dict | None = None  # per_class.json; its columns follow the job's task
    confusion: dict | None = None
    pr_curve: dict | None = None
    gallery: list[dict[str, str]] = field(default_factory=list)
    artifacts: list[dict[str, str]] = field(default_factory=list)
    mlflow_url: str = ""
    batch: dict | None = None  # a batch run's summary and downloads (services.actions.batch_inference)


@dataclass(frozen=True)
class BatchView:
    """What a batch run's page shows: a run over images has no best checkpoint and no metrics;
    it has images done and failed, predictions, and the files it wrote."""

    text: str  # one line: "11 of 12 images done, 1 failed (unreadable); 30 predictions at 45.0 images/s."
    facts: list[dict[str, str]]  # {"label", "value"} rows
    counts: list[list[str]]  # [class, predictions]
    links: list[dict[str, str]]  # the results files: {"label", "url"}


BATCH_FILE_LABELS = {
    "predictions_jsonl": "JSON Lines",
    "predictions_csv": "CSV",
    "inference_summary": "Summary",
}


def batch_view(batch: dict) -> BatchView:
    """A batch run's summary as what it is (images done, failed, results files), its counts per
    class and its download links."""
    summary = batch.get("summary") or {}
    if not summary:
        return BatchView("Results appear when the run finishes.", [], [], [])
    images, failed = int(summary.get("images", 0)), int(summary.get("failed_images", 0))
    predictions = int(summary.get("predictions", 0))
    speed = f"{summary['images_per_s']:.1f} images/s" if summary.get("images_per_s") else ""
    text = (
        f"{images - failed} of {images} images done, {failed} failed (unreadable); "
        f"{predictions} predictions{' at ' + speed if speed else ''}."
    )
    links = [
        {"label": BATCH_FILE_LABELS.get(k, k), "url": v} for k, v in (batch.get("downloads") or {}).items()
    ]
    facts = [
        {"label": "Images done", "value": f"{images - failed} of {images}"},
        {"label": "Failed (unreadable)", "value": str(failed)},
        {"label": "Predictions", "value": str(predictions)},
        {"label": "Results files", "value": ", ".join(link["label"] for link in links) or "none"},
    ]
    if speed:
        facts.insert(3, {"label": "Speed", "value": speed})
    counts = [[name, str(n)] for name, n in (summary.get("counts") or {}).items()]
    return BatchView(text, facts, counts, links)


def _mlflow_experiment(run_id: str) -> str | None:
    import httpx

    try:
        response = httpx.get(
            f"{get_settings().mlflow_uri}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=3
        )
        return str(response.json()["run"]["info"]["experiment_id"])
    except Exception:  # noqa: BLE001 - the link still works without the experiment id
        return None


def load_extras(token: str, job_id: int) -> JobExtras:
    """Validation documents, prediction images, artifacts with download links (blocking; a thread)."""
    from state.page_helpers import data_uri

    actor = optional_web_actor(token)
    if actor is None:
        return JobExtras(signed_in=False)
    try:
        found = models.job_extras(actor, job_id=job_id)
    except Overloaded:
        return JobExtras(error=BUSY_RETRYING)  # what is shown stays; the next change reads again
    except DomainError:
        return JobExtras(error=f"Job {job_id} was not found, or you do not have access to it.")
    run_id = found.mlflow_run_id
    mlflow = get_settings().mlflow_uri
    gallery = [{"src": data_uri(g["image"], "image/png"), "caption": g["caption"]} for g in found.gallery]
    batch = None
    if found.kind == "batch_inference":
        results = batch_inference.results(actor, job_id=job_id)
        gallery = [
            {"src": data_uri(g["image"], "image/png"), "caption": g["caption"]} for g in results.gallery
        ]
        batch = {"summary": results.summary, "downloads": results.downloads}
    return JobExtras(
        epoch=found.docs.epoch,
        per_class=found.docs.per_class,
        confusion=found.docs.confusion_matrix,
        pr_curve=found.docs.pr_curve,
        gallery=gallery,
        batch=batch,
        artifacts=[
            {"name": r["key"], "size": human_bytes(r["size"]), "kind": r["kind"], "url": r["download_url"]}
            for r in found.artifacts
        ],
        mlflow_url=mlflow_run_url(mlflow, run_id, _mlflow_experiment(run_id) if run_id else None),
    )


async def watched_extras(token: str, job_id: int, version: object | None) -> JobExtras:
    """`load_extras` for a page; with a `version` (push is up), read once per version for all the
    pages of this process that show the job, each page checked on its own."""
    if version is None:
        return await asyncio.to_thread(load_extras, token, job_id)
    found = await shared("job-extras", JobExtras).get(job_id, version, lambda: load_extras(token, job_id))
    if not found.signed_in or found.error:  # the page that read it saw nothing: read alone
        return await asyncio.to_thread(load_extras, token, job_id)
    access = await asyncio.to_thread(viewer_access, token, job_id)
    if isinstance(access, JobSnapshot):
        return JobExtras(signed_in=access.signed_in, error=access.error or BUSY_RETRYING)
    return replace(found, gallery=list(found.gallery), artifacts=list(found.artifacts))


def metric_rows(metrics: dict[str, float], split: str) -> list[dict[str, str]]:
    """A finished job's figures as table rows, each naming the split it was measured on."""
    return [{"name": k, "value": f"{v:.4f}", "split": split} for k, v in sorted(metrics.items())]


def final_figures(detail: JobDetail) -> list[dict[str, str]]:
    """best.pt's validation figures, then its test figures (`test/<metric>`), with their splits.

    None for a batch run: it trained nothing, and the counts it reports when it finishes are its
    summary (`batch_view`), not a checkpoint's metrics."""
    if detail.kind == "batch_inference":
        return []
    splits = detail.metric_splits or {}
    return metric_rows(detail.val_metrics, splits.get("val_metrics", "val")) + metric_rows(
        detail.test_metrics, splits.get("test_metrics", "test")
    )


DRILL_PAGE = 12


def load_cell(token: str, job_id: int, predicted: str, true: str, offset: int) -> dict[str, Any]:
    """The images behind one confusion-matrix cell, with the job's predictions drawn (a thread)."""
    actor = optional_web_actor(token)
    if actor is None:
        return {"signed_in": False}
    page = predictions.confusion_cell(
        actor, job_id=job_id, predicted=predicted, true=true, offset=offset, limit=DRILL_PAGE
    )
    return {"signed_in": True, "rows": page_rows(page), "total": page.total}


class JobPageState(AuthState):
    page_job_id: int = 0
    final_figures: list[dict[str, str]] = []  # best.pt on val and on test, each with its split
    confusion_names: list[str] = []
    drill_true: str = ""
    drill_predicted: str = ""
    drill_rows: list[dict[str, Any]] = []
    drill_total: int = 0
    drill_offset: int = 0
    drill_message: str = ""
    drill_loading: bool = False
    not_found: str = ""
    busy_message: str = ""  # shown above the page while the server sheds load; polling retries
    loaded: bool = False
    job_name: str = ""
    job_state: str = ""
    state_label: str = ""  # what the status shows: the state, or "pruned" for a stopped sweep trial
    sweep_text: str = ""  # "Trial 3 of sweep 2 · pruned at epoch 1"
    sweep_href: str = ""
    model: str = ""
    task: str = ""
    epoch_text: str = ""
    progress_label: str = "Epoch"
    checkpoint_text: str = ""
    device: str = ""
    mlflow_run_id: str = ""
    error_kind: str = ""
    error_message: str = ""
    created: str = ""
    artifacts: list[dict[str, str]] = []
    log_lines: list[str] = []
    # Backend-only: the browser gets the chart (`figure`) and the count, not the points twice.
    _points: list[dict[str, float]] = []
    role: str = ""
    own_job: bool = False
    cancel_message: str = ""
    cancelling: bool = False
    stale_message: str = ""
    queue_message: str = ""  # "Queued · position 2 · waiting for 1 GPU (A100)"
    resources_text: str = ""
    live_message: str = ""
    retrying: bool = False
    retry_message: str = ""
    validation_epoch: str = ""
    per_class_headers: list[str] = []
    per_class: list[list[str]] = []
    confusion_figure: go.Figure = empty_figure("No confusion matrix yet")
    pr_figure: go.Figure = empty_figure("No precision-recall curve yet")
    has_confusion: bool = False
    has_pr: bool = False
    gallery: list[dict[str, str]] = []
    is_batch: bool = False
    batch_text: str = ""
    batch_facts: list[dict[str, str]] = []
    batch_counts: list[list[str]] = []
    batch_histogram: go.Figure = empty_figure("No predictions yet")
    batch_downloads: list[dict[str, str]] = []
    files: list[dict[str, str]] = []
    mlflow_url: str = ""
    extras_loading: bool = False
    job_project_id: int = 0
    tags_text: str = ""  # "baseline paper"
    tags_message: str = ""
    _extras_for: str = ""
    _confusion_doc: dict | None = None  # what confusion_figure and pr_figure were drawn from
    _pr_doc: dict | None = None
    _watch_generation: int = 0

    @rx.var
    def points_count(self) -> int:
        return len(self._points)

    @rx.var
    def points_label(self) -> str:
        return f"{len(self._points)} epoch{'' if len(self._points) == 1 else 's'} plotted"

    @rx.var
    def figure(self) -> dict[str, Any]:
        """The chart as Plotly JSON, built once per distinct points and task for all pages."""
        return metrics_figure_json(self._points, self.task)

    @rx.var
    def chart_title(self) -> str:
        return chart_title(self.task)

    @rx.var
    def finished(self) -> bool:
        return self.job_state in FINISHED_STATES

    @rx.var
    def retryable(self) -> bool:
        return self.job_state in {"failed", "cancelled"}

    @rx.var
    def can_retry(self) -> bool:
        """The role allows it (members their own jobs, admins anyone's); the server decides again."""
        return role_allows(self.role, Action.job_retry, own=self.own_job)

    @rx.var
    def cancellable(self) -> bool:
        return bool(self.job_state) and self.job_state not in FINISHED_STATES

    @rx.var
    def can_cancel(self) -> bool:
        return role_allows(self.role, Action.job_cancel, own=self.own_job)

    @rx.var
    def can_tag(self) -> bool:
        return role_allows(self.role, Action.job_tag)

    @rx.event(background=True)
    async def save_tags(self, form: dict[str, Any]):
        """Replace the run's tags with the words typed (find them again with tag:<name> on Compare)."""
        async with self:
            token, job_id, project_id = self.token, self.page_job_id, self.job_project_id
        words = str(form.get("tags", "")).replace(",", " ").split()
        try:
            actor = await asyncio.to_thread(web_actor, token)
            saved = await asyncio.to_thread(
                runs_actions.set_run_tags, actor, project_id=project_id, job_id=job_id, tags=words
            )
        except DomainError as exc:
            async with self:
                self.tags_message = exc.message
            return
        async with self:
            self.tags_text = " ".join(saved)
            self.tags_message = "Tags saved" if saved else "Tags removed"

    def _apply(self, snap: JobSnapshot) -> None:
        if snap.busy:
            self.busy_message = BUSY_RETRYING
            return
        self.loaded, self.busy_message = True, ""
        if snap.detail is None:
            self.not_found, self.job_state = snap.error, ""
            return
        job = snap.detail
        self.not_found = ""
        self.job_name, self.job_state, self.model, self.role = job.name, job.state, job.model, snap.role
        self.state_label = job.label
        self.sweep_text, self.sweep_href = "", ""
        if job.sweep_id is not None:
            pruned = "" if job.pruned_epoch is None else f" · pruned at epoch {job.pruned_epoch + 1}"
            self.sweep_text = f"Trial {job.sweep_trial} of sweep {job.sweep_id}{pruned}"
            self.sweep_href = f"/sweeps/{job.sweep_id}"
        self.task = job.task
        self.own_job = snap.own
        self.job_project_id, self.tags_text = job.project_id, " ".join(job.tags)
        self.epoch_text = epoch_progress(job.current_epoch, job.total_epochs)
        self.progress_label = "Epoch"
        if job.kind == "batch_inference":  # heartbeats count images done (protocol v1.5)
            self.progress_label = "Images"
            self.epoch_text = f"{job.current_epoch or 0}/{job.total_epochs or '?'}"
        self.checkpoint_text = checkpoint_progress(job.checkpoint_epoch)
        self.device = job.trainer_device or f"{job.device} (requested)"
        self.mlflow_run_id = job.mlflow_run_id or ""
        self.error_kind, self.error_message = job.error_kind or "", job.error_message or ""
        self.created = format_time(job.created_at)
        self.artifacts = artifact_rows(job.artifacts)
        self.log_lines = job.log_tail[-LOG_LINES:]
        if snap.points != self._points:
            self._points = snap.points
        self.stale_message = staleness(job.state, job.last_heartbeat_at, job.started_at, _now())
        self.queue_message = queue_text(job.state, job.queue_position, job.waiting_for)
        self.resources_text = fleet.describe_ask(fleet.Resources.model_validate(job.resources or {}))
        self.final_figures = final_figures(job)

    def _apply_extras(self, extras: JobExtras) -> None:
        self.validation_epoch = "" if extras.epoch is None else str(int(extras.epoch) + 1)
        self.per_class_headers = per_class_headers(self.task, extras.per_class)
        self.per_class = per_class_table(self.task, extras.per_class)
        self.has_confusion, self.has_pr = bool(extras.confusion), bool(extras.pr_curve)
        # Rebuilt (and sent to the browser) only when the document changed: extras are re-read on
        # every epoch, and a figure per page per epoch cost the web process more than the read.
        if extras.confusion != self._confusion_doc or not self._extras_for:
            self.confusion_figure = confusion_matrix_figure(extras.confusion)
            self._confusion_doc = extras.confusion
        self.confusion_names = [str(n) for n in (extras.confusion or {}).get("names") or []]
        if extras.pr_curve != self._pr_doc or not self._extras_for:
            self.pr_figure = pr_curve_figure(extras.pr_curve)
            self._pr_doc = extras.pr_curve
        self.gallery, self.files, self.mlflow_url = extras.gallery, extras.artifacts, extras.mlflow_url
        self.is_batch = extras.batch is not None
        if extras.batch is not None:
            view = batch_view(extras.batch)
            self.batch_text, self.batch_facts = view.text, view.facts
            self.batch_counts, self.batch_downloads = view.counts, view.links
            self.batch_histogram = score_histogram_figure(
                (extras.batch.get("summary") or {}).get("score_histogram")
            )

    @rx.event(background=True)
    async def load_extras(self):
        """The validation tab, artifacts and MLflow link: S3 and MLflow reads, off the state lock."""
        async with self:
            if self.extras_loading or not self.page_job_id:
                return
            self.extras_loading = True
            token, job_id = self.token, self.page_job_id
            key = f"{job_id}:{self.job_state}:{len(self._points)}"
        hub = live_channels.hub()
        channel = live_channels.job_channel(job_id)
        # Shared with the job's other pages only while notices arrive (the version then moves
        # with every change); an unwatched job has no version and each page reads alone.
        version = (key, hub.version(channel)) if hub.connected and hub.watching(channel) else None
        try:
            extras = await watched_extras(token, job_id, version)
        finally:
            async with self:
                self.extras_loading = False
        async with self:
            if job_id == self.page_job_id and extras.signed_in and not extras.error:
                self._apply_extras(extras)
                self._extras_for = key

    @rx.event
    def set_drill_true(self, value: str):
        self.drill_true = value

    @rx.event
    def set_drill_predicted(self, value: str):
        self.drill_predicted = value

    @rx.event
    def drill_from_plot(self, points: list[dict[str, Any]]):
        """A click on a heatmap cell: x is the true class, y the predicted one."""
        if not points:
            return
        self.drill_true, self.drill_predicted = str(points[0].get("x", "")), str(points[0].get("y", ""))
        self.drill_offset = 0
        return JobPageState.drill

    @rx.event
    def drill_cell(self):
        self.drill_offset = 0
        return JobPageState.drill

    @rx.event
    def drill_next(self):
        if self.drill_offset + DRILL_PAGE < self.drill_total:
            self.drill_offset += DRILL_PAGE
            return JobPageState.drill

    @rx.event
    def drill_previous(self):
        if self.drill_offset > 0:
            self.drill_offset = max(0, self.drill_offset - DRILL_PAGE)
            return JobPageState.drill

    @rx.event(background=True)
    async def drill(self):
        """List the images behind the chosen cell of the confusion matrix (S3 reads: a thread)."""
        async with self:
            if self.drill_loading or not self.page_job_id:
                return
            if not self.drill_true or not self.drill_predicted:
                self.drill_message = "Choose a true class and a predicted class (or click a cell)."
                return
            self.drill_loading = True
            args = (self.token, self.page_job_id, self.drill_predicted, self.drill_true, self.drill_offset)
        try:
            data = await asyncio.to_thread(load_cell, *args)
        except DomainError as exc:
            async with self:
                self.drill_loading, self.drill_rows, self.drill_total = False, [], 0
                self.drill_message = exc.message
            return
        async with self:
            self.drill_loading = False
            if not data["signed_in"]:
                return
            self.drill_rows, self.drill_total = data["rows"], data["total"]
            what = (
                f"missed {self.drill_true}"
                if self.drill_predicted == "background"
                else f"true {self.drill_true} predicted as {self.drill_predicted}"
            )
            self.drill_message = f"{self.drill_total} image{'' if self.drill_total == 1 else 's'}: {what}"

    @rx.event(background=True)
    async def retry(self, resume: bool):
        async with self:
            if self.retrying or not self.page_job_id:
                return
            self.retrying, self.retry_message = True, ""
            token, job_id = self.token, self.page_job_id
        try:
            actor = await asyncio.to_thread(web_actor, token)
            submitted = await jobs.retry(actor, job_id=job_id, resume=bool(resume))
        except DomainError as exc:
            async with self:
                self.retrying, self.retry_message = False, exc.message
            return
        async with self:
            self.retrying = False
        return rx.redirect(f"/jobs/{submitted.job.id}")

    @rx.event
    async def load(self):
        self.cancel_message, self.loaded = "", False
        if self._refresh_user() is None:
            return login_redirect(self.router.url.path)
        job_id = parse_job_id(str(self.router.url.path).rstrip("/").rsplit("/", 1)[-1])
        if job_id is None:
            self.page_job_id, self.loaded, self.job_state = 0, True, ""
            self.not_found = "This is not a job address: job ids are whole numbers."
            return
        if job_id != self.page_job_id:
            self._points, self.artifacts, self.log_lines = [], [], []
            self.per_class, self.gallery, self.files, self.mlflow_url = [], [], [], ""
            self.has_confusion = self.has_pr = False
            self.validation_epoch, self.retry_message = "", ""
            self.final_figures, self.confusion_names, self.drill_rows = [], [], []
            self.drill_true = self.drill_predicted = self.drill_message = ""
            self.drill_total = self.drill_offset = 0
        self.page_job_id = job_id
        self._apply(await asyncio.to_thread(load_job, self.token, job_id))
        self._watch_generation += 1
        return [JobPageState.watch(self._watch_generation), JobPageState.load_extras]

    @rx.event(background=True)
    async def watch(self, generation: int):
        """Follow the job while this page is open and the job unfinished: pushed, not polled.

        The page re-reads the job when the backend announces a change to it (an epoch, a state
        move), so a new point shows without a reload. Between notices nothing it shows changes
        but how long a silent trainer has been silent: it looks again when that crosses the
        staleness line, or after IDLE_LOOK_S, without reading. Without push it re-reads every
        few seconds and says so. The loop ends when the job finishes, the user leaves the page,
        the tab has been gone for a while, or a newer page load started its own loop.
        """
        async with self:
            job_id = self.page_job_id
        gone = DisconnectTimer()
        channel = live_channels.job_channel(job_id)
        seen: tuple[int, int] | None = None  # the notice the page's last re-read followed
        heard: JobDetail | None = None
        with watch([channel]) as watching:
            while True:
                async with self:
                    if generation != self._watch_generation or self.router.route_id != _JOB_ROUTE_ID:
                        return
                    if self.finished or not self.page_job_id or self.not_found:
                        return
                    if gone.update(await client_connected(self.router.session.client_token)):
                        return
                    token = self.token
                    if heard is not None:  # no delta unless the warning moved
                        stale = staleness(heard.state, heard.last_heartbeat_at, heard.started_at, _now())
                        if stale != self.stale_message:
                            self.stale_message = stale
                look = LIVE_REFRESH_S  # nothing read yet by this loop: look soon
                if heard is not None:
                    due = stale_in(heard.state, heard.last_heartbeat_at, heard.started_at, _now())
                    look = min(IDLE_LOOK_S, due + 0.5) if due is not None else IDLE_LOOK_S
                pushed = await next_change(watching, look)
                version = watching.version(channel) if pushed else None
                if version is not None and version == seen and heard is not None:
                    continue  # no notice since the last re-read: only the staleness may move
                snap = await watched_job(token, job_id, version)
                seen, heard = version, snap.detail
                async with self:
                    if generation != self._watch_generation or job_id != self.page_job_id:
                        return
                    self.live_message = "" if pushed else PAUSED_MESSAGE
                    if not snap.signed_in:
                        self._remember(None)
                        redirect = login_redirect(self.router.url.path)
                    else:
                        redirect = None
                if redirect is not None:
                    yield redirect
                    return
                async with self:
                    before = (len(self._points), self.job_state)
                    self._apply(snap)
                    changed = (len(self._points), self.job_state) != before
                if changed:
                    yield JobPageState.load_extras

    @rx.event(background=True)
    async def cancel(self):
        async with self:
            if self.cancelling or not self.page_job_id:
                return
            self.cancelling, self.cancel_message = True, ""
            token, job_id = self.token, self.page_job_id
        try:
            actor = await asyncio.to_thread(web_actor, token)
            state = (await jobs.cancel(actor, job_id=job_id)).state
            message = (
                "Job cancelled."
                if state == "cancelled"
                else "Cancel requested: the trainer stops at the next batch and keeps what it has."
            )
        except DomainError as exc:
            message = exc.message
        snap = await asyncio.to_thread(load_job, token, job_id)
        async with self:
            self.cancel_message, self.cancelling = message, False
            if snap.signed_in:
                self._apply(snap)
