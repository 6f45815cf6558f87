"""MLflow's Model Registry and artifact store, spoken over MLflow's REST API (2.0) with httpx.

The registry of record is MLflow's: a registered version is an artifact of an MLflow run plus a
model version pointing at it, so MLflow's UI and client (`MlflowClient().get_model_version_by_alias`)
see exactly what the platform shows. The platform's database keeps the lineage beside it
(services.domain.registry).

Artifacts go through the tracking server's proxy (`mlflow-artifacts:/`, the stack serves MLflow with
`--artifacts-destination`), so the backend needs no credentials of MLflow's store. The `mlflow`
package is not imported: the calls are few, and importing its client costs seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from services.errors import DomainError
from services.infra.settings import get_settings

PROXY_SCHEME = "mlflow-artifacts:/"


class MlflowUnavailable(DomainError):
    """MLflow could not be reached or refused the call: nothing was registered."""

    status_code = 503


@dataclass
class MlflowRegistry:
    base_url: str
    timeout_s: float = 60.0

    @classmethod
    def from_settings(cls) -> MlflowRegistry:
        return cls(get_settings().mlflow_uri.rstrip("/"))

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = httpx.request(
                method, f"{self.base_url}/api/2.0/mlflow/{path}", timeout=self.timeout_s, **kwargs
            )
        except httpx.HTTPError as exc:
            raise MlflowUnavailable(
                f"MLflow at {self.base_url} could not be reached ({type(exc).__name__}); try again shortly"
            ) from exc
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"message": response.text[:300]}
            error = MlflowUnavailable(f"MLflow refused {path}: {body.get('message', '')}"[:500])
            error.reason = str(body.get("error_code", response.status_code))
            raise error
        return response.json() if response.content else {}

    # -- runs and artifacts ----------------------------------------------------------------------
    def experiment_id(self, name: str) -> str:
        try:
            found = self._call("GET", "experiments/get-by-name", params={"experiment_name": name})
            return str(found["experiment"]["experiment_id"])
        except MlflowUnavailable as exc:
            if exc.reason != "RESOURCE_DOES_NOT_EXIST":
                raise
        return str(self._call("POST", "experiments/create", json={"name": name})["experiment_id"])

    def create_run(self, experiment: str, run_name: str, tags: dict[str, str]) -> str:
        """A finished run that only carries an artifact (an uploaded model has no training run)."""
        now = int(time.time() * 1000)
        created = self._call(
            "POST",
            "runs/create",
            json={
                "experiment_id": self.experiment_id(experiment),
                "run_name": run_name,
                "start_time": now,
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
            },
        )
        run_id = str(created["run"]["info"]["run_id"])
        self._call("POST", "runs/update", json={"run_id": run_id, "status": "FINISHED", "end_time": now})
        return run_id

    def run_exists(self, run_id: str) -> bool:
        try:
            self._call("GET", "runs/get", params={"run_id": run_id})
        except MlflowUnavailable as exc:
            if exc.reason == "RESOURCE_DOES_NOT_EXIST":
                return False
            raise
        return True

    def log_artifact(self, run_id: str, artifact_path: str, data: bytes) -> str:
        """Store `data` as the run's artifact `artifact_path`; returns its artifact URI."""
        run = self._call("GET", "runs/get", params={"run_id": run_id})
        root = str(run["run"]["info"]["artifact_uri"]).rstrip("/")
        if not root.startswith(PROXY_SCHEME):
            raise MlflowUnavailable(
                f"MLflow stores this run's artifacts at {root!r}, which the platform cannot write "
                "through the server: serve MLflow with --artifacts-destination"
            )
        where = root[len(PROXY_SCHEME) :].lstrip("/")
        target = f"{self.base_url}/api/2.0/mlflow-artifacts/artifacts/{where}/{artifact_path}"
        try:
            response = httpx.put(target, content=data, timeout=max(self.timeout_s, 300.0))
        except httpx.HTTPError as exc:
            raise MlflowUnavailable(f"MLflow could not store the artifact ({type(exc).__name__})") from exc
        if response.status_code >= 400:
            raise MlflowUnavailable(f"MLflow refused the artifact upload ({response.status_code})")
        return f"{root}/{artifact_path}"

    # -- the Model Registry ----------------------------------------------------------------------
    def ensure_registered_model(self, name: str, description: str) -> None:
        try:
            self._call("POST", "registered-models/create", json={"name": name, "description": description})
        except MlflowUnavailable as exc:
            if exc.reason != "RESOURCE_ALREADY_EXISTS":
                raise

    def create_version(
        self, name: str, *, source: str, run_id: str, description: str, tags: dict[str, str]
    ) -> int:
        created = self._call(
            "POST",
            "model-versions/create",
            json={
                "name": name,
                "source": source,
                "run_id": run_id,
                "description": description,
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
            },
        )
        return int(created["model_version"]["version"])

    def delete_version(self, name: str, version: int) -> None:
        self._call("DELETE", "model-versions/delete", json={"name": name, "version": str(version)})

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self._call(
            "POST", "registered-models/alias", json={"name": name, "alias": alias, "version": str(version)}
        )

    def delete_alias(self, name: str, alias: str) -> None:
        self._call("DELETE", "registered-models/alias", json={"name": name, "alias": alias})

    def version_by_alias(self, name: str, alias: str) -> int | None:
        try:
            found = self._call("GET", "registered-models/alias", params={"name": name, "alias": alias})
        except MlflowUnavailable as exc:
            if exc.reason in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
                return None
            raise
        return int(found["model_version"]["version"])
