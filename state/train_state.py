"""/projects/[project_id]/train: the training form, generated from the trainer's catalogue."""

from __future__ import annotations

import asyncio
from typing import Any

import reflex as rx

from services.actions import jobs
from services.actions.core import optional_web_actor, web_actor
from services.actions.fleet import fleet_view
from services.domain import catalog, fleet
from services.domain.jobs import DEFAULT_PREDICTIONS_MAX_IMAGES, MAX_PREDICTIONS_IMAGES
from services.domain.permissions import Action
from services.domain.schemas import JobCreate
from services.errors import DomainError, InvalidInput
from state.auth_state import AuthState, login_redirect
from state.page_helpers import project_from_path, role_allows
from state.training_helpers import (
    error_field,
    form_errors,
    form_hyperparameters,
    param_choices,
    param_fields,
)

TRAIN_ROUTE = "/projects/[project_id]/train"
RESOURCE_FIELDS = ("gpus", "cpus", "memory_gb", "accelerator")


def load_train_context(token: str, project_id: int) -> dict[str, Any]:
    """Dataset versions the user may train on, and the catalogue (blocking: run in a thread)."""
    actor = optional_web_actor(token)
    if actor is None:
        return {"signed_in": False}
    context = jobs.train_context(actor, project_id=project_id)
    versions = context.versions
    doc = catalog.get_catalog().doc
    free = fleet_view()
    return {
        "fleet_free": free.summary,
        "accelerators": free.accelerators,
        "signed_in": True,
        "role": context.role,
        "project_name": context.project_name,
        "versions": [
            {"value": str(v.id), "label": f"{v.name} v{v.version} ({v.num_images} images)", "task": v.task}
            for v in versions
        ],
        "catalog": doc,
    }


def predictions_cap(form_data: dict[str, Any]) -> int:
    """The form's "predictions stored" field: val and test images whose predictions the trainer
    keeps at the end (empty: the default 500)."""
    raw = str(form_data.get("predictions_max_images") or "").strip()
    if not raw:
        return DEFAULT_PREDICTIONS_MAX_IMAGES
    if not raw.isdigit() or int(raw) > MAX_PREDICTIONS_IMAGES:
        raise InvalidInput(
            f"predictions_max_images: enter a whole number from 0 (store none) to {MAX_PREDICTIONS_IMAGES}"
        )
    return int(raw)


class TrainState(AuthState):
    project_id: int = 0
    project_name: str = ""
    role: str = ""
    load_error: str = ""
    loading: bool = False
    frameworks: list[dict[str, str]] = []
    framework: str = ""
    tasks: list[dict[str, str]] = []
    task: str = ""
    models: list[dict[str, str]] = []
    model: str = ""
    any_model: bool = False
    versions: list[dict[str, str]] = []
    version_options: list[dict[str, str]] = []
    fields: list[dict[str, str]] = []
    choices: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    form_error: str = ""
    submitting: bool = False
    fleet_free: str = ""
    accelerators: list[str] = []
    _doc: dict[str, Any] = {}

    @rx.var
    def can_train(self) -> bool:
        return role_allows(self.role, Action.job_create)

    @rx.var
    def form_key(self) -> str:
        return f"{self.framework}|{self.task}"

    def _specs(self) -> list[dict[str, Any]]:
        try:
            return catalog.Catalog(self._doc).hyperparameters(self.framework, self.task)
        except InvalidInput:
            return []

    def _refresh_choices(self) -> None:
        cat = catalog.Catalog(self._doc)
        names = [f["name"] for f in cat.frameworks]
        if self.framework not in names:
            self.framework = names[0] if names else ""
        self.frameworks = [{"value": f["name"], "label": f["name"]} for f in cat.frameworks]
        if not self.framework:
            return
        spec = cat.framework(self.framework)
        self.any_model = bool(spec.get("any_model"))
        tasks = [t["name"] for t in spec.get("tasks") or []]
        # Prefer a task the project has data for.
        with_data = [t for t in tasks if any(v["task"] == t for v in self.versions)]
        if self.task not in tasks:
            self.task = (with_data or tasks or [""])[0]
        self.tasks = [
            {"value": t, "label": t + ("" if t in with_data else " (no dataset yet)")} for t in tasks
        ]
        models = cat.task(self.framework, self.task).get("models") or []
        if not self.model or (self.model not in models and not self.any_model):
            self.model = models[0] if models else ""
        self.models = [{"value": m, "label": m.removesuffix(".yaml")} for m in models]
        self.version_options = [v for v in self.versions if v["task"] == self.task]
        specs = self._specs()
        self.fields, self.choices, self.errors = param_fields(specs), param_choices(specs), {}

    @rx.event(background=True)
    async def load(self):
        async with self:
            self.loading, self.load_error, self.form_error, self.errors = True, "", "", {}
            token = self.token
            project_id = project_from_path(self.router.url.path)
            path = self.router.url.path
        if project_id is None:
            async with self:
                self.loading, self.load_error = False, "This is not a project address."
            return
        try:
            context = await asyncio.to_thread(load_train_context, token, project_id)
        except DomainError as exc:
            async with self:
                self.loading, self.load_error = False, exc.message
            return
        async with self:
            self.loading = False
            if not context["signed_in"]:
                self._remember(None)
                return login_redirect(path)
            self._refresh_user()
            self.project_id, self.role = project_id, context["role"]
            self.project_name, self.versions, self._doc = (
                context["project_name"],
                context["versions"],
                context["catalog"],
            )
            self.fleet_free, self.accelerators = context["fleet_free"], context["accelerators"]
            self._refresh_choices()

    @rx.event
    def set_framework(self, value: str):
        self.framework, self.task, self.model = value, "", ""
        self._refresh_choices()

    @rx.event
    def set_task(self, value: str):
        self.task, self.model = value, ""
        self._refresh_choices()

    @rx.event
    def set_model(self, value: str):
        self.model = value.strip()

    @rx.event
    def check_field(self, name: str, value: str):
        """Field-level validation as the user leaves a field (same rules as the server's)."""
        specs = [s for s in self._specs() if s["name"] == name]
        found = form_errors(specs, {name: value})
        errors = {k: v for k, v in self.errors.items() if k != name}
        self.errors = {**errors, **found}

    @rx.event(background=True)
    async def submit(self, form_data: dict[str, Any]):
        async with self:
            if self.submitting:
                return
            self.submitting, self.form_error = True, ""
            specs, token, project_id = self._specs(), self.token, self.project_id
            framework, task, model = self.framework, self.task, self.model
        errors = form_errors(specs, form_data)
        if not form_data.get("dataset_version_id"):
            errors["dataset_version_id"] = f"Choose a dataset version for {task} (upload one first)."
        if not model:
            errors["model"] = "Choose a model."
        if errors:
            async with self:
                self.errors, self.submitting = errors, False
                self.form_error = f"{len(errors)} field(s) need attention before the job can start."
            return
        try:
            resources = fleet.resources_from_form(form_data)
            predictions_cap(form_data)
        except InvalidInput as exc:
            async with self:
                self.errors, self.submitting = {exc.message.split(":")[0]: exc.message}, False
                self.form_error = "1 field(s) need attention before the job can start."
            return
        request = JobCreate(
            dataset_version_id=int(form_data["dataset_version_id"]),
            name=str(form_data.get("name", ""))[:120],
            framework=framework,
            task=task,
            model=model,
            device=str(form_data.get("device") or "auto"),
            hyperparameters=form_hyperparameters(specs, form_data),
            resources=resources,
            predictions_max_images=predictions_cap(form_data),
        )
        try:
            actor = await asyncio.to_thread(web_actor, token)
            submitted = await jobs.create(actor, project_id=project_id, request=request)
        except DomainError as exc:
            async with self:
                names = [s["name"] for s in specs] + [f"resources.{n}" for n in RESOURCE_FIELDS]
                field = error_field(exc, names) if isinstance(exc, InvalidInput) else ""
                self.errors = {field: exc.message} if field else {}
                self.form_error, self.submitting = exc.message, False
            return
        job_id = submitted.job.id
        async with self:
            self.submitting = False
            if not submitted.queued:
                self.form_error = (
                    f"Job {job_id} is saved but the queue is unreachable right now; it starts by itself "
                    "once the queue is back."
                )
                return
        return rx.redirect(f"/jobs/{job_id}")
