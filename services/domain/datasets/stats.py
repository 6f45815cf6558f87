"""Statistics of a dataset version, computed once from its manifest (versions never change)."""

from __future__ import annotations

from collections import Counter
from statistics import median
from typing import Any

from services.domain.datasets.formats import SPLITS
from services.domain.datasets.splits import class_counts, split_counts


def compute(manifest: dict[str, Any]) -> dict[str, Any]:
    """Plain JSON for charts: per-class counts per split, image sizes, objects per image."""
    images = manifest["images"]
    classes: list[str] = manifest["classes"]
    instances = {s: dict.fromkeys(classes, 0) for s in SPLITS}
    per_image: dict[str, Counter[int]] = {s: Counter() for s in SPLITS}
    sizes: Counter[tuple[int, int]] = Counter()
    for image in images:
        split = image["split"]
        sizes[(image["width"], image["height"])] += 1
        if image.get("label") is not None:
            instances[split][classes[image["label"]]] += 1
            continue
        per_image[split][len(image["labels"])] += 1
        for row in image["labels"]:
            instances[split][classes[int(row[0])]] += 1
    present = [s for s in SPLITS if any(i["split"] == s for i in images)]
    widths = [i["width"] for i in images]
    heights = [i["height"] for i in images]
    return {
        "task": manifest["task"],
        "classes": classes,
        "num_images": len(images),
        "split_counts": split_counts(images),
        "images_per_class": class_counts(images, classes),
        "instances_per_class": {s: instances[s] for s in present},
        "objects_per_image": {
            s: {str(k): v for k, v in sorted(per_image[s].items())} for s in present if per_image[s]
        },
        "background_images": sum(1 for i in images if not i["labels"] and i.get("label") is None),
        "image_sizes": [{"width": w, "height": h, "count": n} for (w, h), n in sizes.most_common(200)],
        "width": _summary(widths),
        "height": _summary(heights),
    }


def _summary(values: list[int]) -> dict[str, float]:
    if not values:
        return {"min": 0, "max": 0, "mean": 0, "median": 0}
    return {
        "min": min(values),
        "max": max(values),
        "mean": round(sum(values) / len(values), 2),
        "median": median(values),
    }


def version_stats(version_uri: str) -> dict[str, Any]:
    """Stored stats.json of a version (written with it), computed from the manifest if absent."""
    from services.domain.datasets.queries import STATS, load_json, load_manifest
    from services.domain.datasets.thumbnails import colour_hex

    stats = load_json(version_uri, STATS) or compute(load_manifest(version_uri))
    stats["class_colours"] = [colour_hex(i) for i in range(len(stats["classes"]))]
    return stats
