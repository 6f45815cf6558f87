"""Print the third-party requirements of one image (`backend` or `trainer`), one per line.

The images install wheels built on the host (`make compose-images`); this reads the lists from
the project's own pyproject files, so the images follow them without a second copy.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def requirements(image: str) -> list[str]:
    backend = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    if image == "trainer":
        return list(backend["optional-dependencies"]["trainer"])
    if image != "backend":
        raise SystemExit(f"unknown image {image!r}: use backend or trainer")
    client = tomllib.loads((ROOT / "client/pyproject.toml").read_text())["project"]
    own = {backend["name"], client["name"]}
    found = [*backend["dependencies"], *client["dependencies"], *client["optional-dependencies"]["cli"]]
    extra = [
        # The editable installs of our two packages inside the image need a current setuptools.
        "setuptools>=68",
        "wheel",
        # redis needs it below Python 3.11.3: Debian's is 3.11.2, but pip resolves for this
        # machine's Python, which may be newer and leave it out.
        "async-timeout>=4.0.3",
    ]
    return [r for r in found if r.split("[")[0] not in own] + extra


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1])))
