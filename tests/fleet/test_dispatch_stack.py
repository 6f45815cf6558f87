"""`vtp up --ray`: the local stack's wiring of a Ray head and the trainer gateway in ray mode."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from services.infra.settings import Settings
from services.runtime.stack import children, ray_temp_dir
from trainer_runner.settings import TrainerSettings

pytestmark = pytest.mark.fleet


def test_ray_mode_starts_a_head_and_points_the_trainer_at_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, ray_port=16389, ray_dashboard_port=18265)
    by_name = {c.name: c for c in children(settings, ray=True)}
    head = by_name["ray"]
    assert head.argv[1:4] == ["start", "--head", "--block"]
    assert "--dashboard-port=18265" in head.argv and "--port=16389" in head.argv
    assert f"--temp-dir={ray_temp_dir(settings)}" in head.argv
    assert not head.stop_group  # Ray stops its own processes; signalled all at once it hangs
    # Ray's socket paths must stay under the Unix limit, whatever the data dir.
    assert len(str(ray_temp_dir(settings))) < 40
    # The trainer reads exactly these names (its own settings object, not ours).
    trainer = TrainerSettings(
        **{
            k.removeprefix("TRAINER_").lower(): v
            for k, v in by_name["trainer"].env.items()
            if k in {"TRAINER_EXECUTOR", "TRAINER_RAY_ADDRESS", "TRAINER_RAY_PYTHON"}
        }
    )
    assert (trainer.executor, trainer.ray_address) == ("ray", "http://127.0.0.1:18265")
    assert trainer.ray_python == sys.executable


def test_plain_mode_has_no_ray(tmp_path: Path) -> None:
    by_name = {c.name: c for c in children(Settings(data_dir=tmp_path))}
    assert "ray" not in by_name
