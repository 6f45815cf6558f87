"""The web app's built frontend, kept between starts of `vtp up` (`VTP_WEB_BUILD_CACHE`).

`reflex run --env prod` compiles the pages and builds the frontend with bun on every start: 20 to
30 s of both cores each time, for the same sources, and a 360 MB work folder per data dir. The
built pages depend on the sources that make them (pages, state, components and the services they
import, assets, the Reflex version, the bun lock) and on one thing more: the web port, which
Reflex writes into one small module of the build (`assets/reflex-env-*.js`, the websocket and
upload addresses). Nothing in the pages comes from settings: a build is reused for any settings,
as the container image's one build is (services.runtime.web serves it the same way).

So a start whose sources were built before copies that build (11 MB) into its data dir, points
its env module at its own port, and serves it with services.runtime.web; a start that finds none
builds as before and keeps its build afterwards. `VTP_WEB_BUILD_CACHE=` (empty) turns this off.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What the frontend is made from: the Python the pages import and the files the build reads.
SOURCE_DIRS = ("app", "components", "state", "services", "assets")
SOURCE_FILES = ("rxconfig.py", "reflex.lock/bun.lock")
KEEP = 3  # builds kept; older ones (sources since changed) are removed
ENV_MODULE = "reflex-env-*.js"
_ADDRESS = re.compile(r"(//localhost:)(\d+)/")


def sources_key(root: Path = ROOT) -> str:
    """A digest of everything the build is made from; any edit makes a new one."""
    digest = hashlib.sha256(f"reflex {metadata.version('reflex')}\n".encode())
    files = [root / name for name in SOURCE_FILES]
    for name in SOURCE_DIRS:
        files += (p for p in (root / name).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in sorted(f for f in files if f.exists()):
        digest.update(f"{path.relative_to(root)}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:32]


def _client(web_dir: Path) -> Path:
    return web_dir / "build" / "client"


def restore(cache: Path, key: str, web_dir: Path, port: int) -> bool:
    """Put the kept build of `key` into `web_dir`, serving on `port`; False if there is none (or
    it does not look like one this module kept, in which case the start builds afresh)."""
    entry = cache / key
    if not (entry / "client" / "index.html").is_file():
        return False
    client = _client(web_dir)
    shutil.rmtree(client, ignore_errors=True)
    client.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(entry / "client", client)
    shutil.copyfile(entry / "reflex.json", web_dir / "reflex.json")
    if not _point_at(client, port):
        shutil.rmtree(client, ignore_errors=True)
        return False
    os.utime(entry)  # recently used: kept the longest
    return True


def _point_at(client: Path, port: int) -> bool:
    """Rewrite the env module's addresses (and its precompressed copy) to `port`."""
    modules = sorted((client / "assets").glob(ENV_MODULE))
    modules = [m for m in modules if m.suffix == ".js"]
    if len(modules) != 1:
        return False
    text = modules[0].read_text()
    changed, count = _ADDRESS.subn(rf"\g<1>{port}/", text)
    if count == 0:
        return False
    modules[0].write_text(changed)
    packed = modules[0].with_name(modules[0].name + ".gz")
    if packed.exists():
        packed.write_bytes(gzip.compress(changed.encode(), mtime=0))
    return True


def keep(cache: Path, key: str, web_dir: Path) -> bool:
    """Keep `web_dir`'s fresh build under `key` for the next start (whole or not at all: copied
    beside, then renamed into place; a start that kept the same key meanwhile wins)."""
    client = _client(web_dir)
    if not (client / "index.html").is_file() or (cache / key).exists():
        return False
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache))
    try:
        shutil.copytree(client, staging / "client")
        shutil.copyfile(web_dir / "reflex.json", staging / "reflex.json")
        staging.rename(cache / key)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        return False
    kept = sorted((p for p in cache.iterdir() if not p.name.startswith(".")), key=lambda p: p.stat().st_mtime)
    for old in kept[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return True
