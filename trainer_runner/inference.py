"""`POST /predict` and `POST /export`, run inside the server process (torch imported lazily).

Models come from object storage only. Loaded models stay in a small LRU cache keyed by URI and
ETag, so a replaced checkpoint under the same URI is loaded afresh.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from trainer_runner.errors import UserError
from trainer_runner.plugins import PLUGINS, get_plugin, resolve_device
from trainer_runner.plugins.base import LoadedModel
from trainer_runner.plugins.spec import FieldError
from trainer_runner.schemas import InspectRequest, S3UriStr
from trainer_runner.settings import TrainerSettings
from trainer_runner.storage import (
    S3Client,
    download_file,
    make_s3_client,
    parse_s3_uri,
    upload_file,
)

log = logging.getLogger(__name__)
MAX_IMAGE_BYTES = 50 * 1024 * 1024


class PredictRequest(BaseModel):
    """`POST /predict`: one image, by URI or inline (base64)."""

    model_uri: S3UriStr
    image_uri: S3UriStr | None = None
    image_base64: str | None = None
    framework: str | None = None  # default: recognised from the checkpoint
    conf: float = Field(default=0.25, ge=0.0, le=1.0)
    max_results: int = Field(default=100, ge=1, le=1000)

    @model_validator(mode="after")
    def _one_image(self) -> PredictRequest:
        if (self.image_uri is None) == (self.image_base64 is None):
            raise ValueError("give exactly one of image_uri and image_base64")
        return self


class ExportRequest(BaseModel):
    """`POST /export`: write `model.{format}` under `output_uri` and check parity."""

    model_uri: S3UriStr
    output_uri: S3UriStr
    formats: list[str] = Field(default_factory=lambda: ["onnx", "torchscript"], min_length=1)
    framework: str | None = None
    sample_image_uri: S3UriStr | None = None


def sniff_framework(checkpoint: Path) -> str:
    """Which plugin wrote this checkpoint, without unpickling it (that would import code)."""
    try:
        with zipfile.ZipFile(checkpoint) as zf:
            pickle_name = next(n for n in zf.namelist() if n.endswith("data.pkl"))
            data = zf.read(pickle_name)
    except (zipfile.BadZipFile, StopIteration, OSError) as exc:
        raise FieldError(("model_uri",), "is not a PyTorch checkpoint") from exc
    if b"ultralytics" in data:
        return "ultralytics"
    for name in PLUGINS:
        if name.encode() in data:
            return name
    raise FieldError(("framework",), "cannot tell which framework wrote this checkpoint", sorted(PLUGINS))


def synthetic_sample(size: int = 160) -> Any:
    """A deterministic test picture (gradient and shapes) when no sample image is given."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size))
    image.putdata([(x * 255 // size, y * 255 // size, 128) for y in range(size) for x in range(size)])
    pen = ImageDraw.Draw(image)
    pen.ellipse((20, 30, 80, 90), fill=(240, 200, 40))
    pen.rectangle((90, 70, 150, 140), fill=(30, 220, 240))
    return image


def decode_image(data: bytes, field: str) -> Any:
    from PIL import Image

    if len(data) > MAX_IMAGE_BYTES:
        raise FieldError((field,), f"image is larger than {MAX_IMAGE_BYTES} bytes")
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except Exception as exc:
        raise FieldError((field,), f"is not a readable image ({type(exc).__name__})") from exc


class ModelService:
    """Downloads checkpoints, keeps an LRU of loaded models, predicts and exports."""

    def __init__(self, settings: TrainerSettings) -> None:
        self.settings = settings
        self.cache_dir = Path(settings.scratch_dir) / "models"
        self._models: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()  # one inference at a time: models are not thread-safe
        self._s3: S3Client | None = None
        self.hits = 0
        self.misses = 0

    @property
    def s3(self) -> S3Client:
        if self._s3 is None:
            self._s3 = make_s3_client(self.settings)
        return self._s3

    def _fetch(self, uri: str, field: str, dest_dir: Path, name: str | None = None) -> Path:
        from botocore.exceptions import ClientError

        parsed = parse_s3_uri(uri)
        dest = dest_dir / (name or hashlib.sha256(uri.encode()).hexdigest()[:24])
        try:
            return download_file(self.s3, parsed, dest)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"404", "NoSuchKey", "NoSuchBucket"}:
                raise FieldError((field,), f"no object at {uri}") from exc
            raise

    def _etag(self, uri: str, field: str) -> str:
        from botocore.exceptions import ClientError

        parsed = parse_s3_uri(uri)
        try:
            return str(self.s3.head_object(Bucket=parsed.bucket, Key=parsed.key)["ETag"])
        except ClientError as exc:
            raise FieldError((field,), f"no object at {uri}") from exc

    def model(self, uri: str, framework: str | None) -> tuple[LoadedModel, bool]:
        """The loaded model for `uri` and whether it came from the cache."""
        key = (uri, self._etag(uri, "model_uri"))
        found = self._models.get(key)
        if found is not None:
            self._models.move_to_end(key)
            self.hits += 1
            return found, True
        self.misses += 1
        path = self._fetch(
            uri,
            "model_uri",
            self.cache_dir,
            f"{hashlib.sha256(repr(key).encode()).hexdigest()[:24]}.pt",
        )
        plugin = get_plugin(framework or sniff_framework(path))
        loaded = plugin.load_model(path, resolve_device("auto"))
        self._models[key] = loaded
        while len(self._models) > self.settings.model_cache_size:
            self._models.popitem(last=False)
        return loaded, False

    def predict(self, request: PredictRequest) -> dict[str, Any]:
        if request.image_base64 is not None:
            try:
                data = base64.b64decode(request.image_base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise FieldError(("image_base64",), "is not valid base64") from exc
            image = decode_image(data, "image_base64")
        else:
            assert request.image_uri is not None
            with tempfile.TemporaryDirectory(dir=self._tmp_root()) as tmp:
                path = self._fetch(request.image_uri, "image_uri", Path(tmp), "image")
                image = decode_image(path.read_bytes(), "image_uri")
        with self._lock:
            loaded, cached = self.model(request.model_uri, request.framework)
            started = time.perf_counter()
            result = loaded.predict(image, request.conf)
            elapsed_ms = (time.perf_counter() - started) * 1000
        for key in ("boxes", "probabilities"):
            if key in result:
                result[key] = result[key][: request.max_results]
        return {
            "model_uri": request.model_uri,
            "task": loaded.task,
            "classes": loaded.classes,
            "width": image.width,
            "height": image.height,
            **result,
            "cached": cached,
            "inference_ms": round(elapsed_ms, 2),
        }

    def export(self, request: ExportRequest) -> dict[str, Any]:
        output = parse_s3_uri(request.output_uri)
        with tempfile.TemporaryDirectory(dir=self._tmp_root()) as tmp:
            work = Path(tmp)
            checkpoint = self._fetch(request.model_uri, "model_uri", work, "source.pt")
            framework = request.framework or sniff_framework(checkpoint)
            plugin = get_plugin(framework)
            allowed = list(plugin.spec.export_formats)
            unknown = [f for f in request.formats if f not in allowed]
            if unknown:
                raise FieldError(("formats",), f"unsupported export format(s) {unknown}", allowed)
            if request.sample_image_uri:
                sample_path = self._fetch(request.sample_image_uri, "sample_image_uri", work, "s")
                sample = decode_image(sample_path.read_bytes(), "sample_image_uri")
            else:
                sample = synthetic_sample()
            with self._lock:
                results = plugin.export(
                    checkpoint, list(dict.fromkeys(request.formats)), work / "out", sample
                )
            exports = []
            for result in results:
                uri = upload_file(self.s3, result.path, output.join(result.path.name))
                exports.append(
                    {
                        "format": result.format,
                        "uri": uri,
                        "size_bytes": result.path.stat().st_size,
                        "parity": result.parity,
                    }
                )
        log.info("model exported", extra={"model_uri": request.model_uri, "exports": exports})
        return {"model_uri": request.model_uri, "framework": framework, "exports": exports}

    def inspect(self, request: InspectRequest) -> dict[str, Any]:
        """`POST /inspect` (v1.5): load an uploaded weights file the safe way and describe it.
        A file that cannot be loaded so is a 422 naming the problem (`trainer_runner.weights`)."""
        from trainer_runner.plugins.timm_plugin import SPEC as TIMM_SPEC
        from trainer_runner.weights import inspect

        filename = request.filename or parse_s3_uri(request.weights_uri).key.rsplit("/", 1)[-1]
        with tempfile.TemporaryDirectory(dir=self._tmp_root()) as tmp:
            # The loaders go by the suffix (Ultralytics refuses a .pt without one).
            path = self._fetch(
                request.weights_uri, "weights_uri", Path(tmp), "weights" + Path(filename).suffix
            )
            if PLUGINS.get("ultralytics") is not None:
                # Ultralytics needs its offline settings before the import inspect may do.
                self._ultralytics_ready()
            with self._lock:
                info = inspect(path, filename, request.architecture, TIMM_SPEC.tasks["classify"])
        log.info("weights inspected", extra={"weights_uri": request.weights_uri, **info.as_dict()})
        return {"weights_uri": request.weights_uri, **info.as_dict()}

    def _ultralytics_ready(self) -> None:
        from trainer_runner.plugins.yolo import import_ultralytics

        import_ultralytics(
            Path(self.settings.scratch_dir) / "ultralytics-config", self.settings.resolved_torch_threads()
        )

    def _tmp_root(self) -> Path:
        root = Path(self.settings.scratch_dir) / "tmp"
        root.mkdir(parents=True, exist_ok=True)
        return root


__all__ = ["ExportRequest", "InspectRequest", "ModelService", "PredictRequest", "UserError"]
