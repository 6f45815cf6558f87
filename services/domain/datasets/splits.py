"""Train/val/test splits with a seed, stratified so rare classes reach every split.

Classification images are grouped by their class, detection/segmentation images by their
rarest class (background images form their own group). Each group is shuffled with the seed
and cut by the ratios with largest remainders, giving every split at least one image of a group
of three or more. A repair pass then moves images so that every class present on at least three
images appears in every split with a positive ratio (an image's other classes may otherwise
all land in one split).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from services.domain.datasets.formats import SPLITS
from services.errors import InvalidInput


def check_ratios(ratios: dict[str, float]) -> dict[str, float]:
    unknown = set(ratios) - set(SPLITS)
    if unknown:
        raise InvalidInput(f"Unknown split(s) {sorted(unknown)}: use train, val and test")
    clean = {s: float(ratios.get(s, 0.0)) for s in SPLITS}
    if any(not math.isfinite(v) or v < 0 for v in clean.values()):
        raise InvalidInput("Split ratios must be numbers >= 0")
    total = sum(clean.values())
    if abs(total - 1.0) > 1e-6:
        raise InvalidInput(f"Split ratios must add up to 1, got {total:g}")
    if clean["train"] <= 0:
        raise InvalidInput("The train ratio must be above 0")
    return clean


def image_classes(image: dict[str, Any]) -> set[int]:
    if image.get("label") is not None:
        return {int(image["label"])}
    return {int(row[0]) for row in image.get("labels", [])}


def _allocate(n: int, ratios: dict[str, float]) -> list[str]:
    """Split names for n shuffled items: largest remainders, one per live split when n >= 3."""
    live = [s for s in SPLITS if ratios[s] > 0]
    exact = {s: n * ratios[s] for s in live}
    counts = {s: math.floor(exact[s]) for s in live}
    for s in sorted(live, key=lambda s: exact[s] - counts[s], reverse=True)[: n - sum(counts.values())]:
        counts[s] += 1
    if n >= len(live) and n >= 3:
        for s in live:
            if counts[s] == 0:
                donor = max(live, key=lambda d: counts[d])
                counts[donor] -= 1
                counts[s] += 1
    return [s for s in live for _ in range(counts[s])]


def stratified_split(images: Sequence[dict[str, Any]], *, ratios: dict[str, float], seed: int) -> list[str]:
    """The split of each image, in order. Deterministic for a given seed."""
    ratios = check_ratios(ratios)
    rng = random.Random(seed)
    per_class = Counter(c for image in images for c in image_classes(image))
    groups: dict[int, list[int]] = {}
    for index, image in enumerate(images):
        classes = image_classes(image)
        key = min(classes, key=lambda c: (per_class[c], c)) if classes else -1
        groups.setdefault(key, []).append(index)
    result = [""] * len(images)
    for key in sorted(groups):
        members = groups[key]
        rng.shuffle(members)
        for index, split in zip(members, _allocate(len(members), ratios), strict=True):
            result[index] = split
    _repair(images, result, ratios, per_class, rng)
    return result


def _repair(
    images: Sequence[dict[str, Any]],
    result: list[str],
    ratios: dict[str, float],
    per_class: Counter[int],
    rng: random.Random,
) -> None:
    live = [s for s in SPLITS if ratios[s] > 0]
    classes_of = [image_classes(image) for image in images]

    def counts() -> dict[str, Counter[int]]:
        table: dict[str, Counter[int]] = {s: Counter() for s in live}
        for index, split in enumerate(result):
            table[split].update(classes_of[index])
        return table

    for cls in sorted(per_class, key=lambda c: (per_class[c], c)):
        if per_class[cls] < 3:
            continue
        for target in live:
            table = counts()
            if table[target][cls]:
                continue
            donor = max(live, key=lambda s: table[s][cls])
            candidates = [
                i
                for i, split in enumerate(result)
                if split == donor
                and cls in classes_of[i]
                and all(table[donor][c] > 1 for c in classes_of[i] if per_class[c] >= 3)
            ]
            if not candidates:
                candidates = [i for i, split in enumerate(result) if split == donor and cls in classes_of[i]]
            candidates.sort(key=lambda i: len(classes_of[i]))
            result[candidates[0] if len(candidates) == 1 else rng.choice(candidates[:3])] = target


def class_counts(manifest_images: Sequence[dict[str, Any]], classes: list[str]) -> dict[str, dict[str, int]]:
    """split -> class name -> number of images holding the class (zero counts included)."""
    table = {s: dict.fromkeys(classes, 0) for s in SPLITS}
    for image in manifest_images:
        for c in image_classes(image):
            table[image["split"]][classes[c]] += 1
    return {s: counts for s, counts in table.items() if any(i["split"] == s for i in manifest_images)}


def split_counts(manifest_images: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(image["split"] for image in manifest_images)
    return {s: counts[s] for s in SPLITS if counts[s]}
