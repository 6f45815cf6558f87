"""/projects/[project_id]/models: checkpoints and exports per job, export buttons, inference."""

from __future__ import annotations

import asyncio
from typing import Any

import reflex as rx

from services.actions import batch_inference, datasets, models
from services.actions.core import optional_web_actor, web_actor
from services.domain import model_ops
from services.domain.permissions import Action
from services.errors import DomainError
from state.auth_state import AuthState, login_redirect
from state.page_helpers import data_uri, project_from_path, role_allows
from state.training_helpers import box_overlays, prediction_rows

MODELS_ROUTE = "/projects/[project_id]/models"
# Button and badge labels, in the order shown; the keys are model_ops.EXPORT_FORMATS.
EXPORT_LABELS = {
    "onnx": "ONNX",
    "torchscript": "TorchScript",
    "openvino": "OpenVINO",
    "openvino_fp16": "OpenVINO FP16",
    "ncnn": "NCNN",
    "ncnn_fp16": "NCNN FP16",
}


def model_row(job: Any) -> dict[str, str]:
    artifacts = job.artifacts or {}
    return {
        "id": str(job.id),
        "name": job.name,
        "state": job.state,
        "model": job.model.removesuffix(".yaml"),
        "task": job.task,
        "best": "yes" if artifacts.get("best_checkpoint") else "—",
        "last": "yes" if artifacts.get("last_checkpoint") else "—",
        "exports": ", ".join(label for fmt, label in EXPORT_LABELS.items() if artifacts.get(f"export_{fmt}")),
        "href": f"/jobs/{job.id}",
    }


def load_models(token: str, project_id: int) -> dict[str, Any]:
    actor = optional_web_actor(token)
    if actor is None:
        return {"signed_in": False}
    role, items = models.succeeded_jobs(actor, project_id=project_id)
    found = datasets.list_datasets(actor, project_id=project_id)
    versions = [
        {"value": str(v.id), "label": f"{v.name} v{v.version} ({v.num_images} images)"}
        for v in found.datasets
    ]
    return {"signed_in": True, "role": role, "rows": [model_row(j) for j in items], "versions": versions}


def start_batch(token: str, project_id: int, ref: str, version_id: int) -> str:
    """Queue a batch run from the models page; the message links nothing, the page adds the link."""
    actor = web_actor(token)
    request = batch_inference.BatchRequest(model=ref, dataset_version_id=version_id)
    submitted = asyncio.run(batch_inference.create(actor, project_id=project_id, request=request))
    return str(submitted.job.id)


def export_summary(result: dict[str, Any]) -> str:
    parts = []
    for item in result.get("exports") or []:
        parity = item.get("parity") or {}
        tolerance = parity.get("tolerance")
        bound = f" (max diff {parity.get('max_abs_diff'):.2g} <= {tolerance:.2g})" if tolerance else ""
        check = ("parity ok" + bound) if parity.get("ok") else f"parity off by {parity.get('max_abs_diff')}"
        parts.append(f"{item.get('format')}: {item.get('size_bytes', 0) // 1024} KB, {check}")
    return "Exported " + "; ".join(parts) if parts else "The trainer exported nothing."


class ModelsState(AuthState):
    project_id: int = 0
    role: str = ""
    rows: list[dict[str, str]] = []
    load_error: str = ""
    loaded: bool = False
    exporting: str = ""
    export_message: str = ""
    chosen_job: str = ""
    predicting: bool = False
    predict_error: str = ""
    image_src: str = ""
    overlays: list[dict[str, str]] = []
    predictions: list[dict[str, str]] = []
    inference_ms: str = ""
    model_ref: str = ""  # jobs/<id> or models/<name>@<alias>; overrides the chosen job when set
    versions: list[dict[str, str]] = []
    batch_version: str = ""
    batch_running: bool = False
    batch_message: str = ""
    batch_job_href: str = ""
    _image: bytes = b""
    _filename: str = ""

    @rx.var
    def model_options(self) -> list[dict[str, str]]:
        return [{"value": r["id"], "label": f"#{r['id']} {r['name']}"} for r in self.rows]

    @rx.var
    def can_export(self) -> bool:
        return role_allows(self.role, Action.model_export)

    @rx.var
    def can_batch(self) -> bool:
        return role_allows(self.role, Action.job_create)

    @rx.var
    def can_predict(self) -> bool:
        return role_allows(self.role, Action.model_predict)

    async def _reload(self) -> Any:
        async with self:
            token, project_id, path = self.token, self.project_id, self.router.url.path
        try:
            found = await asyncio.to_thread(load_models, token, project_id)
        except DomainError as exc:
            async with self:
                self.load_error, self.loaded = exc.message, True
            return None
        async with self:
            if not found["signed_in"]:
                self._remember(None)
                return login_redirect(path)
            self.rows, self.role, self.loaded, self.load_error = found["rows"], found["role"], True, ""
            self.versions = found["versions"]
            if self.batch_version not in [v["value"] for v in self.versions]:
                self.batch_version = self.versions[0]["value"] if self.versions else ""
            ids = [r["id"] for r in self.rows]
            if self.chosen_job not in ids:
                self.chosen_job = ids[0] if ids else ""
        return None

    @rx.event(background=True)
    async def load(self):
        async with self:
            project_id = project_from_path(self.router.url.path)
            if project_id is None:
                self.load_error, self.loaded = "This is not a project address.", True
                return
            if project_id != self.project_id:
                self.rows, self.image_src, self.overlays, self.predictions = [], "", [], []
            self.project_id, self.export_message, self.predict_error = project_id, "", ""
            self._refresh_user()
        return await self._reload()

    @rx.event(background=True)
    async def export(self, job_id: str, formats: list[str]):
        async with self:
            if self.exporting:
                return
            self.exporting, self.export_message = job_id, ""
            token, project_id = self.token, self.project_id
        try:
            actor = await asyncio.to_thread(web_actor, token)
            result = await asyncio.to_thread(
                models.export, actor, project_id=project_id, job_id=int(job_id), formats=list(formats)
            )
            message = f"Job #{job_id}: " + export_summary(result)
        except DomainError as exc:
            message = f"Job #{job_id}: {exc.message}"
        async with self:
            self.exporting, self.export_message = "", message
        return await self._reload()

    @rx.event
    def choose_job(self, job_id: str):
        self.chosen_job = job_id

    @rx.event
    def set_model_ref(self, ref: str):
        self.model_ref = ref[:200]

    @rx.event
    def choose_version(self, version_id: str):
        self.batch_version = version_id

    @rx.event(background=True)
    async def run_batch(self):
        """Queue a batch run of the chosen model (or reference) over the chosen dataset version."""
        async with self:
            if self.batch_running:
                return
            ref = self.model_ref.strip() or (f"jobs/{self.chosen_job}" if self.chosen_job else "")
            if not ref or not self.batch_version:
                self.batch_message = "Choose a model and a dataset version first."
                return
            self.batch_running, self.batch_message, self.batch_job_href = True, "", ""
            token, project_id, version_id = self.token, self.project_id, int(self.batch_version)
        try:
            job_id = await asyncio.to_thread(start_batch, token, project_id, ref, version_id)
            message, href = f"Batch run #{job_id} queued: follow it on its job page.", f"/jobs/{job_id}"
        except DomainError as exc:
            message, href = exc.message, ""
        async with self:
            self.batch_running, self.batch_message, self.batch_job_href = False, message, href

    @rx.event
    async def handle_upload(self, files: list[rx.UploadFile]):
        """Read the one uploaded image, then run inference in the background."""
        if not files:
            return
        upload = files[0]
        data = await upload.read()
        self._image, self._filename = data, upload.name or upload.filename or "image.png"
        self.predict_error, self.overlays, self.predictions, self.inference_ms = "", [], [], ""
        extension = self._filename.rsplit(".", 1)[-1].lower()
        self.image_src = data_uri(data, model_ops.IMAGE_TYPES.get(extension, "image/png"))
        return ModelsState.run_inference

    @rx.event(background=True)
    async def run_inference(self):
        async with self:
            if self.predicting or not self._image or not self.chosen_job:
                if not self.chosen_job:
                    self.predict_error = "Choose a trained model first."
                return
            self.predicting = True
            token, project_id, job_id = self.token, self.project_id, int(self.chosen_job)
            image, filename, ref = self._image, self._filename, self.model_ref.strip()
        try:
            actor = await asyncio.to_thread(web_actor, token)
            if ref:
                result = await models.predict_ref(
                    actor, project_id=project_id, ref=ref, image=image, filename=filename
                )
            else:
                result = await models.predict(
                    actor, project_id=project_id, job_id=job_id, image=image, filename=filename
                )
        except DomainError as exc:
            async with self:
                self.predicting, self.predict_error = False, exc.message
            return
        async with self:
            self.predicting = False
            self.overlays, self.predictions = box_overlays(result), prediction_rows(result)
            self.inference_ms = f"{float(result.get('inference_ms') or 0):.0f} ms"
