"""Export formats: how each is named and stored, how it is run for the parity check.

Every format is checked the same way: the exported file is run by its own runtime (onnxruntime,
torch.jit, OpenVINO, ncnn) on the sample image and its raw output is compared with the PyTorch
model's. Formats written as a folder (OpenVINO's `.xml` + `.bin`, ncnn's `.param` + `.bin`) are
stored as one zip so a download is one file. The runtimes are imported lazily and only here, in
the trainer (the `trainer` extra of pyproject.toml).

CoreML is not offered: coremltools converts on Linux but can only run a model on macOS, so its
output could never pass the parity check here.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer_runner.errors import UserError


@dataclass(frozen=True)
class ExportFormat:
    """One choice of `POST /export`'s `formats`."""

    name: str
    base: str  # onnx | torchscript | openvino | ncnn
    half: bool  # FP16 weights
    filename: str  # the object's name under output_uri

    @property
    def tolerance(self) -> float:
        """Relative tolerance of the parity check: FP16 keeps about three significant digits."""
        return 1e-2 if self.half else 1e-3


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("onnx", "onnx", False, "model.onnx"),
        ExportFormat("torchscript", "torchscript", False, "model.torchscript"),
        ExportFormat("openvino", "openvino", False, "model_openvino.zip"),
        ExportFormat("openvino_fp16", "openvino", True, "model_openvino_fp16.zip"),
        ExportFormat("ncnn", "ncnn", False, "model_ncnn.zip"),
        ExportFormat("ncnn_fp16", "ncnn", True, "model_ncnn_fp16.zip"),
    )
}
ALL_FORMATS = tuple(FORMATS)
# The file a folder format's zip must hold, per base format.
_FOLDER_FILES = {"openvino": ("model.xml", "model.bin"), "ncnn": ("model.ncnn.param", "model.ncnn.bin")}


def package(written: Path, fmt: ExportFormat, out_dir: Path) -> Path:
    """Move or zip what an exporter wrote into `out_dir/fmt.filename`."""
    target = out_dir / fmt.filename
    if not written.is_dir():
        written.replace(target)
        return target
    wanted = _FOLDER_FILES[fmt.base]
    missing = [name for name in wanted if not (written / name).is_file()]
    if missing:
        found = sorted(p.name for p in written.iterdir())
        raise UserError(f"{fmt.name} export wrote no {missing} (found {found})")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(written.iterdir()):
            if path.is_file() and not path.name.endswith(".py"):  # pnnx's generated scripts
                zf.write(path, path.name)
    shutil.rmtree(written)  # the next format may write a folder of the same name
    return target


def run_exported(fmt: ExportFormat, path: Path, x: Any) -> Any:
    """Run an exported file on `x` (1x3xHxW float tensor) with its own runtime; the first output."""
    if fmt.base == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    if fmt.base == "torchscript":
        import torch

        with torch.no_grad():
            loaded = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
            output = loaded(x)
            while isinstance(output, list | tuple):
                output = output[0]
            return output.detach().float().cpu().numpy()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with zipfile.ZipFile(path) as zf:
            zf.extractall(folder)
        if fmt.base == "openvino":
            return _run_openvino(folder / "model.xml", x)
        if fmt.base == "ncnn":
            return _run_ncnn(folder / "model.ncnn.param", folder / "model.ncnn.bin", x, fmt.half)
    raise UserError(f"unsupported export format {fmt.name!r}")


def _run_openvino(xml: Path, x: Any) -> Any:
    import openvino

    # f32: the CPU plugin would otherwise pick bf16 on CPUs that have it, and parity would
    # measure the hint rather than the export.
    compiled = openvino.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled(x.numpy())[0]


def _run_ncnn(param: Path, weights: Path, x: Any, half: bool) -> Any:
    import ncnn
    import numpy as np

    net = ncnn.Net()
    for option in ("use_fp16_storage", "use_fp16_arithmetic", "use_fp16_packed"):
        setattr(net.opt, option, half)
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        raise UserError("ncnn could not load the exported model")
    extractor = net.create_extractor()
    extractor.input("in0", ncnn.Mat(x[0].numpy()).clone())
    _code, output = extractor.extract("out0")
    return np.array(output)[None]


def export_torch_module(module: Any, x: Any, fmt: ExportFormat, work: Path) -> Path:
    """OpenVINO or ncnn from a plain PyTorch module (timm); returns the written folder."""
    folder = work / f"{fmt.name}_model"
    folder.mkdir(parents=True, exist_ok=True)
    if fmt.base == "openvino":
        import openvino

        converted = openvino.convert_model(module, example_input=x)
        openvino.save_model(converted, str(folder / "model.xml"), compress_to_fp16=fmt.half)
        return folder
    if fmt.base == "ncnn":
        import pnnx

        pnnx.export(
            module,
            str(folder / "model.pt"),
            inputs=x,
            pnnxparam=str(folder / "model.pnnx.param"),
            pnnxbin=str(folder / "model.pnnx.bin"),
            pnnxpy=str(folder / "model_pnnx.py"),
            pnnxonnx=str(folder / "model.pnnx.onnx"),
            ncnnparam=str(folder / "model.ncnn.param"),
            ncnnbin=str(folder / "model.ncnn.bin"),
            ncnnpy=str(folder / "model_ncnn.py"),
            fp16=fmt.half,
            device="cpu",
        )
        for name in ("model.pt", "model.pnnx.param", "model.pnnx.bin", "model.pnnx.onnx"):
            (folder / name).unlink(missing_ok=True)
        return folder
    raise UserError(f"{fmt.name} is not written from a plain PyTorch module")


def parity(expected: Any, actual: Any, rel: float = 1e-3) -> dict[str, Any]:
    """Did the exported model give the PyTorch model's output? Tolerance scales with magnitude."""
    import numpy as np

    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if expected.shape != actual.shape:
        return {
            "ok": False,
            "reason": f"shape {list(actual.shape)} != {list(expected.shape)}",
            "output_shape": list(expected.shape),
        }
    tolerance = rel * max(1.0, float(np.abs(expected).max()))
    diff = float(np.abs(expected - actual).max()) if expected.size else 0.0
    return {
        "ok": diff <= tolerance,
        "max_abs_diff": diff,
        "tolerance": tolerance,
        "relative_tolerance": rel,
        "output_shape": list(expected.shape),
    }
