"""Weights brought from outside: inspect an uploaded file, and load a start point for training.

A `.pt` file is a pickle, and unpickling runs whatever code the file names. So nothing here
calls a full `torch.load`:

- Ultralytics checkpoints (they pickle the model's classes) load with
  `torch.load(weights_only=True)` plus Ultralytics' own allow-list of its model and torch layer
  classes (`torch_safe_load(..., safe_only=True)`); any other global is refused by name.
- timm weights load as a plain `state_dict` with `torch.load(weights_only=True)` (tensors,
  containers and numbers only), or from `.safetensors`, which holds no code at all.
- Refused outright: a pickled whole model (`torch.save(model)`), TorchScript archives, and any
  file whose pickle names a global outside those lists (`os.system`, `__main__.*`, ...).

The trainer inspects on `POST /inspect` (docs/trainer-protocol.md, v1.5) and loads the same way
for `init_weights` of a job, so a file that passed inspection is what training starts from.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer_runner.plugins.spec import FieldError

log = logging.getLogger(__name__)

SAFE_MODES = {
    "ultralytics": "torch.load(weights_only=True) with Ultralytics' allow-list of model classes",
    "timm": "torch.load(weights_only=True): tensors and plain containers only",
    "safetensors": "safetensors (no code in the file)",
}
REFUSED_MODES = [
    "torch.load(weights_only=False): a pickle may run any code when loaded",
    "a whole pickled model (torch.save(model)): save model.state_dict() instead",
    "TorchScript archives: upload the original .pt weights",
]
# Globals a plain state_dict or our own timm checkpoint may name under weights_only=True.
_PLAIN_PREFIXES = ("torch.", "collections.OrderedDict", "builtins.", "_codecs.encode", "numpy.")
_ULTRALYTICS_PREFIXES = (
    "ultralytics.",
    "torch.",
    "collections.",
    "builtins.",
    "pathlib.",
    "numpy.",
    "_codecs.",
)


@dataclass
class WeightsInfo:
    """What an uploaded file is, as `POST /inspect` answers it."""

    framework: str  # "ultralytics" | "timm"
    task: str
    architecture: str  # a model YAML ("yolo11n.yaml") or a timm model name ("resnet18")
    classes: list[str]
    num_classes: int
    load_mode: str
    imgsz: int | None = None
    parameters: int = 0
    refused_modes: list[str] = field(default_factory=lambda: list(REFUSED_MODES))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _refuse(message: str) -> FieldError:
    return FieldError(("weights_uri",), message)


def _globals(path: Path) -> list[str]:
    """Every global the pickle would import; ValueError when it is no torch.save zip archive."""
    import torch

    return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))


def _looks_like_torchscript(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return any(
                name.endswith(("constants.pkl", "/code/")) or "/code/" in name for name in zf.namelist()
            )
    except zipfile.BadZipFile:
        return False


def _pickle_mentions(path: Path, needle: bytes) -> bool:
    """Whether the archive's pickle names `needle` (a module), without unpickling it."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            name = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
            return name is not None and needle in zf.read(name)
    except (zipfile.BadZipFile, OSError):
        return False


def classify_file(path: Path, filename: str) -> str:
    """ "ultralytics", "timm" or "safetensors" from the file's bytes alone; FieldError otherwise."""
    if filename.lower().endswith(".safetensors"):
        return "safetensors"
    if not filename.lower().endswith((".pt", ".pth")):
        raise _refuse(f"{filename!r}: upload a .pt/.pth PyTorch file or a .safetensors file")
    if _looks_like_torchscript(path):
        raise _refuse(f"{filename!r} is a TorchScript archive, not trainable weights: {REFUSED_MODES[2]}")
    try:
        names = _globals(path)
    except Exception as exc:  # torch raises ValueError/RuntimeError for non-archives
        raise _refuse(
            f"{filename!r} is not a PyTorch checkpoint (not a torch.save archive: the file is "
            "empty, truncated or of another kind)"
        ) from exc
    # Ultralytics registers its classes as safe globals for the whole process once it has loaded a
    # checkpoint, and torch then leaves them out of the "unsafe" list: so also read the pickle.
    if any(name.startswith("ultralytics.") for name in names) or _pickle_mentions(path, b"ultralytics."):
        foreign = [n for n in names if not n.startswith(_ULTRALYTICS_PREFIXES)]
        if foreign:
            raise _refuse(f"{filename!r} names code outside Ultralytics and torch: {sorted(foreign)[:5]}")
        return "ultralytics"
    foreign = [n for n in names if not n.startswith(_PLAIN_PREFIXES)]
    if any(n.startswith("torch.nn.modules.") for n in names) or foreign:
        what = sorted(foreign or [n for n in names if n.startswith("torch.nn.modules.")])[:5]
        raise _refuse(
            f"{filename!r} is a pickled object, not a state_dict (it names {what}); "
            f"refused: {REFUSED_MODES[1]}"
        )
    return "timm"


# -- Ultralytics ----------------------------------------------------------------------------------


def load_ultralytics(path: Path) -> tuple[Any, dict[str, Any]]:
    """(model module, checkpoint dict), loaded with weights_only=True and the allow-list."""
    from ultralytics.nn.tasks import torch_safe_load

    if path.suffix != ".pt":  # Ultralytics loads only files named *.pt
        named = path.with_suffix(".pt")
        shutil.copyfile(path, named)
        path = named
    try:
        ckpt, _ = torch_safe_load(str(path), safe_only=True)
    except (TypeError, ModuleNotFoundError) as exc:
        raise _refuse(f"Ultralytics refused the checkpoint: {str(exc).splitlines()[0][:300]}") from exc
    if not isinstance(ckpt, dict):
        raise _refuse("the Ultralytics file holds no checkpoint dictionary")
    module = ckpt.get("ema") or ckpt.get("model")
    import torch

    if not isinstance(module, torch.nn.Module):
        raise _refuse("the Ultralytics checkpoint holds no model (neither 'model' nor 'ema')")
    return module.float(), ckpt


def _inspect_ultralytics(path: Path) -> WeightsInfo:
    module, ckpt = load_ultralytics(path)
    names = getattr(module, "names", None) or {}
    classes = [str(names[i]) for i in sorted(names)] if isinstance(names, dict) else [str(n) for n in names]
    yaml = getattr(module, "yaml", None) or {}
    architecture = str(yaml.get("yaml_file") or "") if isinstance(yaml, dict) else ""
    architecture = Path(architecture).name if architecture else "custom.yaml"
    args = ckpt.get("train_args") or {}
    imgsz = args.get("imgsz") if isinstance(args, dict) else None
    task = str(
        getattr(module, "task", "") or (args.get("task") if isinstance(args, dict) else "") or "detect"
    )
    return WeightsInfo(
        framework="ultralytics",
        task=task,
        architecture=architecture,
        classes=classes,
        num_classes=len(classes),
        load_mode=SAFE_MODES["ultralytics"],
        imgsz=int(imgsz) if isinstance(imgsz, int) else None,
        parameters=sum(p.numel() for p in module.parameters()),
    )


# -- timm -----------------------------------------------------------------------------------------


def load_state_dict(path: Path, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state_dict, metadata) from a safetensors file, a bare state_dict, or our timm checkpoint."""
    import torch

    if kind == "safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path))), {}
        except Exception as exc:
            raise _refuse(f"not a readable safetensors file ({type(exc).__name__}: {exc})"[:300]) from exc
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _refuse(
            f"torch.load(weights_only=True) refused the file: {str(exc).splitlines()[0][:300]}"
        ) from exc
    if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict):
        meta = {k: v for k, v in loaded.items() if k not in {"model", "optimizer", "scheduler"}}
        return dict(loaded["model"]), meta
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        return dict(loaded["state_dict"]), {}
    if isinstance(loaded, dict) and loaded and all(isinstance(v, torch.Tensor) for v in loaded.values()):
        return dict(loaded), {}
    raise _refuse("the file holds no state_dict (a mapping of parameter names to tensors)")


def _classifier_size(model: Any, state: dict[str, Any]) -> int | None:
    """The number of classes the state's classifier was trained for, as `model` names its head."""
    head = model.get_classifier()
    for name, param in model.named_parameters():
        if param is next(iter(head.parameters()), None):
            weight = state.get(name)
            return int(weight.shape[0]) if weight is not None else None
    return None


def timm_model_from_state(architecture: str, state: dict[str, Any]) -> tuple[Any, int]:
    """A timm model of `architecture` whose head fits the state; FieldError if it cannot load."""
    import timm

    if not timm.is_model(architecture):
        raise _refuse(f"{architecture!r} is not a timm model name")
    probe = timm.create_model(architecture, pretrained=False)
    num_classes = _classifier_size(probe, state) or 1000
    model = timm.create_model(architecture, pretrained=False, num_classes=num_classes)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise _refuse(
            f"the state_dict does not fit timm {architecture!r}: "
            f"{len(result.missing_keys)} missing, {len(result.unexpected_keys)} unexpected "
            f"(e.g. {(result.missing_keys or result.unexpected_keys)[:3]})"
        )
    return model, num_classes


def _inspect_timm(
    path: Path, kind: str, architecture: str | None, candidates: tuple[str, ...]
) -> WeightsInfo:
    state, meta = load_state_dict(path, kind)
    named = str(meta.get("model_name") or architecture or "")
    tried = [named] if named else list(candidates)
    errors = []
    for name in tried:
        try:
            model, num_classes = timm_model_from_state(name, state)
        except FieldError as exc:
            errors.append(exc.message)
            continue
        classes = [str(c) for c in meta.get("classes") or []] or [f"class_{i}" for i in range(num_classes)]
        imgsz = meta.get("imgsz")
        return WeightsInfo(
            framework="timm",
            task="classify",
            architecture=name,
            classes=classes,
            num_classes=num_classes,
            load_mode=SAFE_MODES["safetensors" if kind == "safetensors" else "timm"],
            imgsz=int(imgsz) if isinstance(imgsz, int) else None,
            parameters=sum(p.numel() for p in model.parameters()),
        )
    if named:
        raise _refuse(errors[0])
    raise _refuse(
        f"the state_dict fits none of the timm models {list(candidates)}: name its architecture on upload"
    )


def inspect(
    path: Path, filename: str, architecture: str | None, timm_candidates: tuple[str, ...]
) -> WeightsInfo:
    """Framework, task, architecture and classes of an uploaded file, loaded the safe way."""
    kind = classify_file(path, filename)
    try:
        if kind == "ultralytics":
            return _inspect_ultralytics(path)
        return _inspect_timm(path, kind, architecture, timm_candidates)
    except FieldError:
        raise
    except Exception as exc:  # a file that passed the checks but breaks the framework's loader
        raise _refuse(f"{filename!r} could not be loaded ({type(exc).__name__}: {str(exc)[:300]})") from exc


def adapt_state(model: Any, state: dict[str, Any]) -> tuple[int, list[str]]:
    """Load every tensor whose name and shape fit `model`; (loaded count, skipped names).

    A different class count leaves the classifier at its fresh initialisation: what timm's own
    `pretrained=True, num_classes=N` does with the ImageNet head.
    """
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    skipped = sorted(set(state) - set(fitting))
    model.load_state_dict(fitting, strict=False)
    return len(fitting), skipped
