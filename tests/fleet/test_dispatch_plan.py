"""The dispatcher's choice (services.domain.fleet.plan) and what a waiting job shows, without servers."""

from __future__ import annotations

import pytest

from services.domain import fleet, jobs
from services.domain.fleet import ProjectRoom, WaitingJob
from services.infra.trainer_protocol import Capacity, NodeCapacity, Resources

pytestmark = pytest.mark.fleet


def _node(
    node_id: str, *, cpus: float | None = None, gpus: int = 0, accelerator: str | None = None
) -> NodeCapacity:
    """An idle node; a GPU node has 8 CPUs unless told otherwise."""
    cpus = (8 if gpus else 1) if cpus is None else cpus
    return NodeCapacity(
        node_id=node_id,
        cpus_total=cpus,
        cpus_free=cpus,
        gpus_total=gpus,
        gpus_free=gpus,
        accelerator=accelerator,
    )


def _job(job_id: int, project_id: int = 1, **ask: object) -> WaitingJob:
    return WaitingJob(job_id, project_id, Resources.model_validate(ask))


def test_jobs_that_ask_the_same_start_in_queue_order() -> None:
    capacity = Capacity(nodes=[_node("n", cpus=2)])
    chosen = fleet.plan([_job(i) for i in range(1, 6)], capacity, {})
    assert chosen.dispatch == [1, 2]
    assert chosen.waiting_for == {3: "the trainer", 4: "the trainer", 5: "the trainer"}


def test_a_job_nobody_can_place_does_not_hold_back_others_and_says_why() -> None:
    capacity = Capacity(nodes=[_node("a", gpus=1, accelerator="A100"), _node("c", cpus=1)])
    waiting = [_job(1, gpus=1, accelerator="H100"), _job(2, gpus=1, accelerator="A100"), _job(3), _job(4)]
    chosen = fleet.plan(waiting, capacity, {})
    # CPU jobs may use a GPU node's spare CPUs, as Ray would place them.
    assert chosen.dispatch == [2, 3, 4]
    assert chosen.waiting_for == {1: "1 GPU (H100); no node in the fleet has H100"}
    small = Capacity(nodes=[_node("c", cpus=1)])
    assert fleet.plan(waiting, small, {}).waiting_for == {
        1: "1 GPU (H100); no node in the fleet has H100",
        2: "1 GPU (A100); no node in the fleet has A100",
        4: "the trainer",
    }


def test_gpu_jobs_wait_for_gpus_of_their_type() -> None:
    capacity = Capacity(nodes=[_node("a", gpus=2, accelerator="A100")])
    waiting = [_job(1, gpus=1, accelerator="A100"), _job(2, gpus=2), _job(3, gpus=1)]
    chosen = fleet.plan(waiting, capacity, {})
    assert chosen.dispatch == [1, 3]
    assert chosen.waiting_for == {2: "2 GPUs"}
    too_big = fleet.plan([_job(4, gpus=8)], capacity, {})
    assert too_big.waiting_for == {4: "8 GPUs; no node in the fleet is that large"}


def test_project_quotas_hold_jobs_back_and_say_so() -> None:
    capacity = Capacity(nodes=[_node("a", cpus=8, gpus=4, accelerator="A100")])
    rooms = {1: ProjectRoom(max_running_jobs=1, running=0), 2: ProjectRoom(max_gpus=2, gpus=1)}
    waiting = [_job(1, 1), _job(2, 1), _job(3, 2, gpus=1), _job(4, 2, gpus=1), _job(5, 3)]
    chosen = fleet.plan(waiting, capacity, rooms)
    assert chosen.dispatch == [1, 3, 5]
    assert chosen.waiting_for == {
        2: "the project's quota (1 of 1 jobs running)",
        4: "the project's GPU quota (2 of 2 GPUs in use)",
    }


def test_a_dead_node_places_nothing() -> None:
    dead = _node("a", cpus=4).model_copy(update={"alive": False})
    chosen = fleet.plan([_job(1)], Capacity(nodes=[dead]), {})
    assert chosen.dispatch == [] and chosen.waiting_for == {
        1: "the trainer; no node in the fleet is that large"
    }


def test_what_a_waiting_job_shows() -> None:
    assert jobs.queue_text("queued", 3, "1 GPU (A100)") == "Queued · position 3 · waiting for 1 GPU (A100)"
    assert jobs.queue_text("queued", 1, None) == "Queued · position 1 · waiting for the trainer"
    assert (
        jobs.queue_text("retrying", 2, "the trainer")
        == "Waiting to retry · position 2 · waiting for the trainer"
    )
    assert jobs.queue_text("running", None, "stale") == ""
    assert fleet.describe(Resources(cpus=4)) == "4 CPUs"
    assert fleet.describe_ask(Resources(gpus=2, accelerator="A100", cpus=8, memory_gb=32)) == (
        "2 GPUs (A100), 8 CPUs, 32 GB"
    )


def test_fleet_summary_for_the_train_form() -> None:
    capacity = Capacity(
        executor="ray",
        nodes=[
            _node("a", gpus=2, accelerator="A100").model_copy(update={"gpus_free": 1}),
            _node("b", gpus=1, accelerator="L4"),
            _node("c", cpus=4),
        ],
    )
    assert fleet.free_summary(capacity) == "3 nodes (ray) · 1/2 A100 free, 1/1 L4 free · 20/20 CPUs free"
    assert fleet.accelerators(capacity) == ["A100", "L4"]
    assert fleet.free_summary(Capacity(nodes=[])) == "No trainer node is up right now."


def test_form_resources_are_checked_with_the_field_named() -> None:
    from services.errors import InvalidInput

    asked = fleet.resources_from_form({"resources_gpus": " 2 ", "resources_accelerator": "A100"})
    assert asked == Resources(gpus=2, accelerator="A100")
    assert fleet.resources_from_form({"resources_cpus": "", "resources_memory_gb": "8.5"}) == Resources(
        memory_gb=8.5
    )
    with pytest.raises(InvalidInput, match=r"^resources\.gpus: enter a whole number of GPUs"):
        fleet.resources_from_form({"resources_gpus": "1.5"})
    with pytest.raises(InvalidInput, match=r"^resources\.gpus: "):
        fleet.resources_from_form({"resources_gpus": "-1"})
    with pytest.raises(InvalidInput, match=r"^resources\.cpus: "):
        fleet.parse_resources({"cpus": 0})
    with pytest.raises(InvalidInput, match=r"^resources\.accelerator: "):
        fleet.parse_resources({"accelerator": "A100; rm -rf"})
