"""Tier 3: every overlay renders, and every object it renders is valid for a pinned Kubernetes.

No API server can run here, so the checks are offline: `kubectl kustomize` renders, and
kubernetes-validate checks each object against the bundled OpenAPI schemas with unknown fields
rejected (--strict). KubeRay's RayCluster is no built-in kind: it is checked against a schema of
our own covering the fields the manifests use, with the names and types of KubeRay's API
reference (ray.io/v1), and its pod templates as core PodTemplates.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.deploy.manifests import KUBERNETES_VERSION, OVERLAYS, named, of_kind, render

pytestmark = pytest.mark.deploy

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_POD_TEMPLATE = {"type": "object", "required": ["spec"]}  # checked as a core PodTemplate below
_RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"requests": _STRING_MAP, "limits": _STRING_MAP},
}
# ray.io/v1 RayCluster: the fields used here, as KubeRay's API reference names and types them
# (RayClusterSpec, AutoscalerOptions, HeadGroupSpec, WorkerGroupSpec).
RAYCLUSTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayCluster"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["headGroupSpec"],
            "properties": {
                "rayVersion": {"type": "string"},
                "enableInTreeAutoscaling": {"type": "boolean"},
                "autoscalerOptions": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "upscalingMode": {"enum": ["Default", "Aggressive", "Conservative"]},
                        "idleTimeoutSeconds": {"type": "integer", "minimum": 0},
                        "resources": _RESOURCES,
                        "securityContext": {"type": "object"},
                    },
                },
                "headGroupSpec": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["template"],
                    "properties": {
                        "serviceType": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                        "rayStartParams": _STRING_MAP,
                        "template": _POD_TEMPLATE,
                    },
                },
                "workerGroupSpecs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["groupName", "maxReplicas", "template"],
                        "properties": {
                            "groupName": {"type": "string", "minLength": 1},
                            "replicas": {"type": "integer", "minimum": 0},
                            "minReplicas": {"type": "integer", "minimum": 0},
                            "maxReplicas": {"type": "integer", "minimum": 1},
                            "rayStartParams": _STRING_MAP,
                            "template": _POD_TEMPLATE,
                        },
                    },
                },
            },
        },
    },
}


def _validate(obj: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        raise AssertionError(f"{name}: {exc.message} at {'.'.join(map(str, exc.path))}") from exc


def _pod_template(template: dict[str, Any], name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name}, "template": template}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_every_object_is_valid(overlay: str) -> None:
    objects = render(overlay)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "Job", "ConfigMap", "Ingress", "PodDisruptionBudget"} <= kinds
    for obj in objects:
        if obj["kind"] == "RayCluster":
            continue  # no built-in schema: checked below
        _validate(obj)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_raycluster_matches_kuberay_fields_and_gpu_fleet(overlay: str) -> None:
    cluster = named(render(overlay), "RayCluster", "vtp-ray")
    jsonschema.validate(cluster, RAYCLUSTER_SCHEMA)
    spec = cluster["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    _validate(_pod_template(spec["headGroupSpec"]["template"], "ray-head"))
    (gpu,) = spec["workerGroupSpecs"]
    _validate(_pod_template(gpu["template"], "ray-gpu-worker"))
    assert gpu["minReplicas"] <= gpu.get("replicas", 0) <= gpu["maxReplicas"]
    container = gpu["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # The gateway submits to this cluster's head service (KubeRay names it <cluster>-head-svc).
    configs = of_kind(render(overlay), "ConfigMap")
    trainer_config = next(o for o in configs if o["metadata"]["name"].startswith("vtp-trainer-config"))
    assert trainer_config["data"]["TRAINER_EXECUTOR"] == "ray"
    assert trainer_config["data"]["TRAINER_RAY_ADDRESS"] == "http://vtp-ray-head-svc:8265"


def test_the_schema_catches_what_kuberay_would_refuse() -> None:
    """The RayCluster check can fail: a misspelt field and a wrong type are refused."""
    cluster = named(render("local"), "RayCluster", "vtp-ray")
    misspelt = {**cluster, "spec": {**cluster["spec"], "enableInTreeAutoScaling": True}}
    with pytest.raises(jsonschema.ValidationError, match="enableInTreeAutoScaling"):
        jsonschema.validate(misspelt, RAYCLUSTER_SCHEMA)
    group = {**cluster["spec"]["workerGroupSpecs"][0], "maxReplicas": "8"}
    wrong_type = {**cluster, "spec": {**cluster["spec"], "workerGroupSpecs": [group]}}
    with pytest.raises(jsonschema.ValidationError, match="'8' is not of type 'integer'"):
        jsonschema.validate(wrong_type, RAYCLUSTER_SCHEMA)
    web = named(render("local"), "Deployment", "web")
    unknown = {**web, "spec": {**web["spec"], "replica": 2}}
    with pytest.raises(AssertionError, match="replica"):
        _validate(unknown)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_unprivileged_with_probes_and_requests(overlay: str) -> None:
    objects = render(overlay)
    workloads = [*of_kind(objects, "Deployment"), *of_kind(objects, "StatefulSet"), *of_kind(objects, "Job")]
    assert {w["metadata"]["name"] for w in workloads} >= {"web", "worker", "trainer", "mlflow", "migrate"}
    for workload in workloads:
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["requests"], name
            if workload["kind"] != "Job":
                assert "readinessProbe" in container and "livenessProbe" in container, name
    pdb = named(objects, "PodDisruptionBudget", "web")
    web = named(objects, "Deployment", "web")
    assert pdb["spec"]["selector"]["matchLabels"] == web["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["minAvailable"] < web["spec"]["replicas"] or web["spec"]["replicas"] == 1
    # The trainer gets the trainer's settings only: no database URL, no Redis.
    trainer = named(objects, "Deployment", "trainer")["spec"]["template"]["spec"]["containers"][0]
    sources = {ref.get("configMapRef", ref.get("secretRef", {}))["name"] for ref in trainer["envFrom"]}
    assert all(s.startswith("vtp-trainer-") for s in sources), sources


def test_local_runs_its_own_stateful_services_and_production_points_elsewhere() -> None:
    local, production = render("local"), render("production")
    assert {s["metadata"]["name"] for s in of_kind(local, "StatefulSet")} == {"postgres", "redis", "s3"}
    assert not of_kind(production, "StatefulSet")
    configs = of_kind(production, "ConfigMap")
    config = next(o for o in configs if o["metadata"]["name"].startswith("vtp-config"))
    assert not config["data"]["VTP_S3_ENDPOINT_URL"].startswith("http://s3:")
    assert not config["data"]["VTP_REDIS_URL"].startswith("redis://redis:")
    # No credentials of any kind are rendered for production: the operator creates the Secrets.
    assert not of_kind(production, "Secret")
    assert named(production, "Ingress", "web")["spec"]["tls"]
