"""The fit rule of protocol v1.4: may a job with these resources start on this node now?

One small pure function per side: the backend has its own copy (to choose what to dispatch next
and to explain waiting), the trainer uses this one to refuse what it cannot place now. Both
follow docs/trainer-protocol.md, "Resources and capacity".
"""

from __future__ import annotations

from collections.abc import Sequence

from trainer_runner.schemas import NodeCapacity, Resources

_EPSILON = 1e-9  # CPU amounts are floats: 0.1 + 0.2 must fit in 0.3


def cpus_needed(resources: Resources, node: NodeCapacity) -> float:
    """CPUs the job takes on `node`: a GPU job asking for more CPUs than the node has is capped."""
    if resources.gpus > 0:
        return min(resources.cpus, node.cpus_total)
    return resources.cpus


def fits(resources: Resources, node: NodeCapacity) -> bool:
    """True when the job can start on `node` now (alive, enough free GPUs and CPUs, the
    accelerator asked for). Memory is passed on to the executor but not part of the rule."""
    if not node.alive:
        return False
    if resources.accelerator is not None and resources.accelerator != node.accelerator:
        return False
    if resources.gpus > node.gpus_free:
        return False
    return cpus_needed(resources, node) <= node.cpus_free + _EPSILON


def could_ever_fit(resources: Resources, node: NodeCapacity) -> bool:
    """True when `node` would take the job once it is idle: waiting makes sense."""
    idle = node.model_copy(update={"gpus_free": node.gpus_total, "cpus_free": node.cpus_total})
    return fits(resources, idle)


def describe(resources: Resources) -> str:
    """What a waiting job waits for, in the words the UI shows: '1 GPU (A100)', 'a CPU slot'."""
    if resources.gpus > 0:
        noun = "GPU" if resources.gpus == 1 else "GPUs"
        what = f"{resources.gpus} {noun}"
    elif resources.cpus == 1:
        what = "a CPU slot"
    else:
        what = f"{resources.cpus:g} CPUs"
    return f"{what} ({resources.accelerator})" if resources.accelerator else what


def waiting_for(resources: Resources, nodes: Sequence[NodeCapacity]) -> tuple[str, str] | None:
    """None when some node fits now; else `(waiting_for, detail)` for the 429.

    The detail says whether the job only has to wait (the fleet is busy) or whether no node
    could ever take it (an accelerator nobody has, more GPUs than any machine holds), which
    waiting alone will not fix.
    """
    if any(fits(resources, node) for node in nodes):
        return None
    what = describe(resources)
    alive = [node for node in nodes if node.alive]
    if any(could_ever_fit(resources, node) for node in alive):
        return what, f"no room for {what} now: every node that could take it is busy"
    if resources.accelerator is not None and not any(n.accelerator == resources.accelerator for n in alive):
        known = sorted({n.accelerator for n in alive if n.accelerator})
        return what, (
            f"no node has accelerator {resources.accelerator!r} (the fleet has: "
            f"{', '.join(known) or 'no accelerators'}); it waits until such a node joins"
        )
    return what, f"no node is large enough for {what}; it waits until such a node joins"
