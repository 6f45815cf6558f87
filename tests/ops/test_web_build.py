"""`vtp up` keeps the built frontend and reuses it while the sources are unchanged
(services.runtime.web_build): a reused build must talk to its own stack's port."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from services.runtime import web_build

pytestmark = pytest.mark.ops

ENV_MODULE = (
    "var e={PING:`http://localhost:{port}/ping`,EVENT:`ws://localhost:{port}/_event`,"
    "UPLOAD:`http://localhost:{port}/_upload`,TRANSPORT:`websocket`};export{e as t};"
)


def built(web_dir: Path, port: int) -> Path:
    """What `reflex run --env prod` leaves in a data dir's web folder, in small."""
    client = web_dir / "build" / "client"
    (client / "assets").mkdir(parents=True)
    (client / "index.html").write_text("<html>jobs</html>")
    (client / "assets" / "app-1a2b.js").write_text("console.log('app')")
    module = client / "assets" / "reflex-env-Xy12.js"
    module.write_text(ENV_MODULE.replace("{port}", str(port)))
    (client / "assets" / "reflex-env-Xy12.js.gz").write_bytes(gzip.compress(module.read_bytes()))
    (web_dir / "reflex.json").write_text('{"version": "0.10.1"}')
    return client


def test_a_kept_build_is_served_at_the_new_stack_s_port(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    built(tmp_path / "first" / "web", 38513)
    assert web_build.keep(cache, "k1", tmp_path / "first" / "web")

    second = tmp_path / "second" / "web"
    assert web_build.restore(cache, "k1", second, 41007)
    client = second / "build" / "client"
    module = (client / "assets" / "reflex-env-Xy12.js").read_text()
    assert module == ENV_MODULE.replace("{port}", "41007")
    # Browsers that accept gzip get the precompressed copy: it must say the same.
    assert gzip.decompress((client / "assets" / "reflex-env-Xy12.js.gz").read_bytes()).decode() == module
    assert (client / "assets" / "app-1a2b.js").read_text() == "console.log('app')"
    assert (second / "reflex.json").exists()
    # The kept build itself is untouched: a third stack gets its own port too.
    assert web_build.restore(cache, "k1", tmp_path / "third" / "web", 5000)
    assert "localhost:5000/" in (tmp_path / "third/web/build/client/assets/reflex-env-Xy12.js").read_text()


def test_no_kept_build_or_an_unknown_one_means_building(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert not web_build.restore(cache, "missing", tmp_path / "web", 3000)
    # A build whose env module has no address this module knows how to point: built afresh.
    client = built(tmp_path / "odd" / "web", 3000)
    (client / "assets" / "reflex-env-Xy12.js").write_text("var e={EVENT:`/_event`};")
    assert web_build.keep(cache, "odd", tmp_path / "odd" / "web")
    assert not web_build.restore(cache, "odd", tmp_path / "web", 3001)
    assert not (tmp_path / "web" / "build" / "client").exists()


def test_only_the_newest_builds_are_kept(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for n in range(web_build.KEEP + 2):
        built(tmp_path / f"s{n}" / "web", 3000 + n)
        assert web_build.keep(cache, f"k{n}", tmp_path / f"s{n}" / "web")
        os.utime(cache / f"k{n}", (1_000_000 + n, 1_000_000 + n))
    kept = sorted(p.name for p in cache.iterdir())
    assert kept == [f"k{n}" for n in range(2, web_build.KEEP + 2)]
    # Keeping a key that is there already changes nothing.
    assert not web_build.keep(cache, "k3", tmp_path / "s0" / "web")


def test_any_source_edit_makes_a_new_key_and_caches_do_not(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    for name in (*web_build.SOURCE_DIRS, "reflex.lock"):
        (root / name).mkdir(parents=True)
    (root / "app" / "page.py").write_text("TITLE = 'Jobs'\n")
    (root / "services" / "rules.py").write_text("LIMIT = 3\n")
    (root / "rxconfig.py").write_text("config = None\n")
    first = web_build.sources_key(root)
    (root / "app" / "__pycache__").mkdir()
    (root / "app" / "__pycache__" / "page.cpython-311.pyc").write_bytes(b"\0")
    assert web_build.sources_key(root) == first
    (root / "services" / "rules.py").write_text("LIMIT = 4\n")
    second = web_build.sources_key(root)
    assert second != first
    (root / "assets" / "extra.css").write_text("body {}")
    assert web_build.sources_key(root) not in {first, second}
