"""/projects/[project_id]/registry: registered models, their versions, model card, aliases,
downloads, register and upload, and "Fine-tune from this"."""

from __future__ import annotations

import asyncio
from typing import Any

import reflex as rx

from services.actions import registry
from services.actions.core import optional_web_actor, web_actor
from services.domain.permissions import Action
from services.domain.registry import ModelVersionPublic, RegisteredModelPublic, RegisterRequest
from services.errors import DomainError
from state.auth_state import AuthState, login_redirect
from state.page_helpers import project_from_path, role_allows

REGISTRY_ROUTE = "/projects/[project_id]/registry"
UPLOAD_ID = "weights-upload"
HEADLINE = ("map50", "map50_95", "top1", "precision", "recall", "val_loss")


def metric_text(metrics: dict[str, float]) -> str:
    """The few numbers a table row has room for: headline metrics first."""
    shown = [k for k in HEADLINE if k in metrics] or sorted(metrics)[:3]
    return ", ".join(f"{k} {metrics[k]:.3f}" for k in shown[:3]) or "—"


def version_row(v: ModelVersionPublic) -> dict[str, str]:
    return {
        "version": str(v.version),
        "aliases": ", ".join(v.aliases),
        "source": f"job #{v.job_id}" if v.job_id else f"upload ({v.filename})",
        "job_href": f"/jobs/{v.job_id}" if v.job_id else "",
        "metrics": metric_text(v.val_metrics),
        "registered_by": v.registered_by,
        "created": v.created_at.strftime("%Y-%m-%d %H:%M"),
    }


def model_card(v: ModelVersionPublic, project_id: int) -> dict[str, str]:
    """The model card of one version: what it does, on what data, how well, who registered it."""
    classes = ", ".join(v.classes[:20]) + (f" … ({len(v.classes)} in all)" if len(v.classes) > 20 else "")
    if v.dataset_version_id:
        data = f"dataset version #{v.dataset_version_id} (job #{v.job_id})"
    else:
        data = "not recorded (uploaded weights)"
    return {
        "title": f"{v.model} v{v.version}",
        "task": v.task,
        "framework": f"{v.framework} · {v.architecture}",
        "classes": classes or "—",
        "input_size": f"{v.imgsz} px" if v.imgsz else "not recorded",
        "val_metrics": metric_text(v.val_metrics),
        "test_metrics": metric_text(v.test_metrics) if v.test_metrics else "no test split in the data",
        "training_data": data,
        "registered_by": f"{v.registered_by} on {v.created_at:%Y-%m-%d}",
        "description": v.description or "—",
        "mlflow": f"{v.mlflow_name} v{v.version} (run {v.mlflow_run_id[:8]})",
        "exports": ", ".join(e.format for e in v.exports) or "none yet",
        "fine_tune_href": f"/projects/{project_id}/train?start_from=models/{v.model}/{v.version}",
    }


def load_registry(token: str, project_id: int) -> dict[str, Any]:
    """Models with their versions, and the succeeded jobs that could be registered (blocking)."""
    actor = optional_web_actor(token)
    if actor is None:
        return {"signed_in": False}
    found = registry.list_models(actor, project_id=project_id)
    choices = registry.start_choices(actor, project_id=project_id)
    jobs = [
        {"value": value.removeprefix("job:"), "label": label}
        for label, value in choices
        if value.startswith("job:")
    ]
    role = registry.role_in_project(actor, project_id=project_id)
    return {"signed_in": True, "role": role, "models": found, "jobs": jobs}


class RegistryState(AuthState):
    project_id: int = 0
    role: str = ""
    loaded: bool = False
    load_error: str = ""
    message: str = ""
    error: str = ""
    busy: bool = False
    models: list[dict[str, str]] = []
    chosen: str = ""
    chosen_version: str = ""
    versions: list[dict[str, str]] = []
    card: dict[str, str] = {}
    chosen_aliases: list[str] = []
    downloads: list[dict[str, str]] = []
    jobs: list[dict[str, str]] = []
    upload_name: str = ""
    _found: list[RegisteredModelPublic] = []

    @rx.var
    def can_register(self) -> bool:
        return role_allows(self.role, Action.model_register)

    @rx.var
    def can_alias(self) -> bool:
        return role_allows(self.role, Action.model_alias)

    def _show(self) -> None:
        """Fill the tables and the card from `_found` for the chosen model and version."""
        self.models = [
            {
                "name": m.name,
                "latest": f"v{m.latest_version}" if m.latest_version else "—",
                "aliases": ", ".join(f"{a} → v{v}" for a, v in m.aliases.items()) or "—",
                "count": str(len(m.versions)),
            }
            for m in self._found
        ]
        names = [m.name for m in self._found]
        if self.chosen not in names:
            self.chosen = names[0] if names else ""
        model = next((m for m in self._found if m.name == self.chosen), None)
        self.versions = [version_row(v) for v in model.versions] if model else []
        numbers = [r["version"] for r in self.versions]
        if self.chosen_version not in numbers:
            self.chosen_version = numbers[0] if numbers else ""
        version = (
            next((v for v in model.versions if str(v.version) == self.chosen_version), None)
            if model
            else None
        )
        self.card = model_card(version, self.project_id) if version else {}
        self.chosen_aliases = list(version.aliases) if version else []

    async def _reload(self) -> Any:
        async with self:
            token, project_id, path = self.token, self.project_id, self.router.url.path
        try:
            found = await asyncio.to_thread(load_registry, token, project_id)
        except DomainError as exc:
            async with self:
                self.load_error, self.loaded = exc.message, True
            return None
        async with self:
            if not found["signed_in"]:
                self._remember(None)
                return login_redirect(path)
            self._found, self.role, self.jobs = found["models"], found["role"], found["jobs"]
            self.loaded, self.load_error = True, ""
            self._show()
        return await self._load_downloads()

    async def _load_downloads(self) -> None:
        async with self:
            token, project_id, name, version = self.token, self.project_id, self.chosen, self.chosen_version
        if not name or not version:
            return
        try:
            actor = await asyncio.to_thread(web_actor, token)
            urls = await asyncio.to_thread(
                registry.downloads, actor, project_id=project_id, name=name, version=int(version)
            )
        except DomainError as exc:
            async with self:
                self.error = exc.message
            return
        async with self:
            self.downloads = [{"label": k, "url": v} for k, v in urls.items()]

    @rx.event(background=True)
    async def load(self):
        async with self:
            project_id = project_from_path(self.router.url.path)
            if project_id is None:
                self.load_error, self.loaded = "This is not a project address.", True
                return
            if project_id != self.project_id:
                self._found, self.chosen, self.chosen_version, self.downloads = [], "", "", []
            self.project_id, self.message, self.error = project_id, "", ""
            self._refresh_user()
        return await self._reload()

    @rx.event(background=True)
    async def choose(self, name: str, version: str):
        async with self:
            self.chosen, self.chosen_version, self.downloads = name, version, []
            self._show()
        await self._load_downloads()

    async def _act(self, call: Any, done: str) -> Any:
        """Run one registry action in a thread with the busy flag; then reload."""
        async with self:
            if self.busy:
                return None
            self.busy, self.message, self.error = True, "", ""
            token = self.token
        try:
            actor = await asyncio.to_thread(web_actor, token)
            await asyncio.to_thread(call, actor)
            message, error = done, ""
        except DomainError as exc:
            message, error = "", exc.message
        finally:
            async with self:
                self.busy = False
        async with self:
            self.message, self.error = message, error
        return await self._reload()

    @rx.event(background=True)
    async def register(self, form_data: dict[str, Any]):
        async with self:
            project_id = self.project_id
        name = str(form_data.get("name") or "").strip()
        job = str(form_data.get("job_id") or "")
        if not name or not job.isdigit():
            async with self:
                self.error = "Choose a succeeded job and name the model."
            return None
        request = RegisterRequest(
            job_id=int(job), name=name, description=str(form_data.get("description") or "")
        )
        async with self:
            self.chosen = name
        return await self._act(
            lambda actor: registry.register(actor, project_id=project_id, request=request),
            f"Registered job #{job} as a new version of {name}.",
        )

    @rx.event(background=True)
    async def set_alias(self, form_data: dict[str, Any]):
        async with self:
            project_id, name, version = self.project_id, self.chosen, self.chosen_version
        alias = str(form_data.get("alias") or "").strip()
        return await self._act(
            lambda actor: registry.set_alias(
                actor, project_id=project_id, name=name, alias=alias, version=int(version or 0)
            ),
            f"{alias} now points at {name} v{version}.",
        )

    @rx.event(background=True)
    async def remove_alias(self, alias: str):
        async with self:
            project_id, name = self.project_id, self.chosen
        return await self._act(
            lambda actor: registry.remove_alias(actor, project_id=project_id, name=name, alias=alias),
            f"Removed alias {alias} of {name}.",
        )

    @rx.event
    def set_upload_name(self, value: str):
        self.upload_name = value

    @rx.event
    async def upload_weights(self, files: list[rx.UploadFile]):
        """Read the weights file, then hand it to the registry (the trainer checks it)."""
        if not files or not self.upload_name.strip():
            self.error = "Name the model and choose a .pt, .pth or .safetensors file."
            return
        upload = files[0]
        data = await upload.read()
        filename = upload.name or upload.filename or "weights.pt"
        name, project_id, token = self.upload_name.strip(), self.project_id, self.token
        self.message, self.error = "", ""
        try:
            actor = await asyncio.to_thread(web_actor, token)
            found = await asyncio.to_thread(
                registry.upload, actor, project_id=project_id, name=name, filename=filename, data=data
            )
        except DomainError as exc:
            self.error = exc.message
            return
        self.chosen, self.chosen_version = name, str(found.version)
        self.message = f"Uploaded {filename} as {name} v{found.version} ({found.framework}, {found.task})."
        return RegistryState.load
