"""The fleet as the backend sees it: what a job asks for, what the trainer gateway has free, and
which waiting jobs to hand over next.

Everything here is pure (no database, no HTTP) so that the one rule that decides placement can be
read and tested on its own. The trainer applies the same rule (protocol v1.4,
docs/trainer-protocol.md) to refuse what it cannot place now; the backend applies it to choose
what to dispatch and to tell a user what a waiting job waits for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from services.infra.trainer_protocol import Capacity, NodeCapacity, Resources

__all__ = ["Capacity", "NodeCapacity", "Resources"]  # the wire models this module's rules take

# What a user sees for a job that waits on nothing more specific than a free place.
THE_TRAINER = "the trainer"


def cpus_on(need: Resources, node: NodeCapacity) -> float:
    """CPUs the job takes on `node`: a GPU job's CPU ask is capped at what the node has."""
    return min(need.cpus, node.cpus_total) if need.gpus > 0 else need.cpus


_EPSILON = 1e-9  # CPU amounts are floats: 0.1 + 0.2 must fit in 0.3


def fits(need: Resources, node: NodeCapacity) -> bool:
    """The placement rule of the contract: alive, enough GPUs and CPUs free, and the right type.
    Memory is passed on to the executor, not part of the rule (as on the trainer's side)."""
    return (
        node.alive
        and need.gpus <= node.gpus_free
        and cpus_on(need, node) <= node.cpus_free + _EPSILON
        and (need.accelerator is None or need.accelerator == node.accelerator)
    )


def could_ever_fit(need: Resources, nodes: Iterable[NodeCapacity]) -> bool:
    """Whether some alive node could place the job once it is idle (same rule, totals for free)."""
    return any(
        fits(need, node.model_copy(update={"gpus_free": node.gpus_total, "cpus_free": node.cpus_total}))
        for node in nodes
    )


def describe(need: Resources) -> str:
    """What the job waits for, as a user reads it after "waiting for": "1 GPU (A100)", "4 CPUs"."""
    if need.gpus > 0:
        text = f"{need.gpus} GPU{'s' if need.gpus != 1 else ''}"
        return f"{text} ({need.accelerator})" if need.accelerator else text
    if need.accelerator:
        return f"a node with {need.accelerator}"
    if need.cpus > 1:
        return f"{need.cpus:g} CPUs"
    return THE_TRAINER


def describe_ask(need: Resources) -> str:
    """The whole ask, for the job page: "1 GPU (A100), 4 CPUs, 16 GB" or "1 CPU"."""
    parts = []
    if need.gpus:
        parts.append(
            f"{need.gpus} GPU{'s' if need.gpus != 1 else ''}"
            + (f" ({need.accelerator})" if need.accelerator else "")
        )
    elif need.accelerator:
        parts.append(need.accelerator)
    parts.append(f"{need.cpus:g} CPU{'s' if need.cpus != 1 else ''}")
    if need.memory_gb:
        parts.append(f"{need.memory_gb:g} GB")
    return ", ".join(parts)


def waiting_text(need: Resources, nodes: Sequence[NodeCapacity]) -> str:
    """`describe`, plus a plain warning when no node of the fleet could ever place the job."""
    text = describe(need)
    if nodes and not could_ever_fit(need, nodes):
        if need.accelerator and not any(n.alive and n.accelerator == need.accelerator for n in nodes):
            return f"{text}; no node in the fleet has {need.accelerator}"
        return f"{text}; no node in the fleet is that large"
    return text


def free_summary(capacity: Capacity) -> str:
    """One line for the train form: nodes, GPUs free/total by accelerator type, CPUs free."""
    alive = [n for n in capacity.nodes if n.alive]
    if not alive:
        return "No trainer node is up right now."
    by_type: dict[str, list[int]] = {}
    for node in alive:
        if node.gpus_total:
            counts = by_type.setdefault(node.accelerator or "GPU", [0, 0])
            counts[0] += node.gpus_free
            counts[1] += node.gpus_total
    gpus = ", ".join(f"{free}/{total} {kind} free" for kind, (free, total) in sorted(by_type.items()))
    cpus = f"{sum(n.cpus_free for n in alive):g}/{sum(n.cpus_total for n in alive):g} CPUs free"
    nodes = f"{len(alive)} node{'s' if len(alive) != 1 else ''} ({capacity.executor})"
    return " · ".join(part for part in (nodes, gpus or "no GPUs", cpus) if part)


def accelerators(capacity: Capacity) -> list[str]:
    """Accelerator types the fleet's alive nodes have, for the train form's choice."""
    return sorted({n.accelerator for n in capacity.nodes if n.alive and n.accelerator})


def parse_resources(value: Resources | dict[str, object] | None) -> Resources:
    """A job's ask, checked; InvalidInput names the field (`resources.gpus: ...`)."""
    from pydantic import ValidationError

    from services.errors import InvalidInput

    if isinstance(value, Resources):
        return value
    try:
        return Resources.model_validate(value or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"resources.{where}: {first['msg']}") from exc


def resources_from_form(form: dict[str, str]) -> Resources:
    """The train form's text boxes as a `resources` ask; blanks are the defaults. InvalidInput
    names the field (`resources.gpus: enter a whole number of GPUs, ...`)."""
    from services.errors import InvalidInput

    ask: dict[str, object] = {}
    numbers = (
        ("gpus", int, "a whole number of GPUs"),
        ("cpus", float, "a number of CPUs"),
        ("memory_gb", float, "a number of GB"),
    )
    for name, kind, what in numbers:
        raw = str(form.get(f"resources_{name}", "")).strip()
        if not raw:
            continue
        try:
            ask[name] = kind(raw)
        except ValueError:
            raise InvalidInput(f"resources.{name}: enter {what}, or leave it empty") from None
    accelerator = str(form.get("resources_accelerator", "")).strip()
    if accelerator:
        ask["accelerator"] = accelerator
    return parse_resources(ask)


@dataclass(frozen=True)
class WaitingJob:
    """A queued (or retrying) job as the dispatcher sees it, in dispatch order."""

    job_id: int
    project_id: int
    resources: Resources


@dataclass
class ProjectRoom:
    """A project's running limits and what its dispatching/running jobs hold now."""

    max_running_jobs: int | None = None
    max_gpus: int | None = None
    running: int = 0
    gpus: int = 0

    def blocks(self, need: Resources) -> str:
        """Why the project's quota holds the job back now ("" when it does not)."""
        if self.max_running_jobs is not None and self.running >= self.max_running_jobs:
            return f"the project's quota ({self.running} of {self.max_running_jobs} jobs running)"
        if self.max_gpus is not None and need.gpus and self.gpus + need.gpus > self.max_gpus:
            return f"the project's GPU quota ({self.gpus} of {self.max_gpus} GPUs in use)"
        return ""


@dataclass
class Plan:
    """What one dispatcher pass does: jobs to hand over now (in order) and why the others wait."""

    dispatch: list[int] = field(default_factory=list)
    waiting_for: dict[int, str] = field(default_factory=dict)


def plan(waiting: Sequence[WaitingJob], capacity: Capacity, rooms: dict[int, ProjectRoom]) -> Plan:
    """Walk the waiting jobs in order and place each that fits on what is still free.

    A job that does not fit does not hold back later jobs that ask for something else (a CPU job
    behind one waiting for an A100 still runs), while jobs that ask for the same thing start in
    their order, since a later one fits only where an earlier one would have. Placement here is
    only the backend's choice of what to offer; the trainer decides where it really runs.
    """
    nodes = [node.model_copy() for node in capacity.nodes]
    result = Plan()
    for job in waiting:
        room = rooms.setdefault(job.project_id, ProjectRoom())
        held = room.blocks(job.resources)
        if held:
            result.waiting_for[job.job_id] = held
            continue
        node = next((n for n in nodes if fits(job.resources, n)), None)
        if node is None:
            result.waiting_for[job.job_id] = waiting_text(job.resources, capacity.nodes)
            continue
        node.cpus_free -= cpus_on(job.resources, node)
        node.gpus_free -= job.resources.gpus
        room.running += 1
        room.gpus += job.resources.gpus
        result.dispatch.append(job.job_id)
    return result
