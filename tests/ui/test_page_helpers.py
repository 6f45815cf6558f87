"""Pure helpers of the datasets and people pages (no browser, no servers)."""

from __future__ import annotations

import pytest

from components import tokens
from components.chart_style import chart_layout
from components.dataset_charts import boxes_per_image_figure, class_counts_figure, image_sizes_figure
from services.domain.permissions import Action
from services.errors import InvalidInput
from state.account_state import BADGE_COLOURS
from state.admin_state import parse_day
from state.page_helpers import (
    human_bytes,
    name_fields,
    parse_ratio,
    plural,
    problem_rows,
    progress_percent,
    project_from_path,
    project_path_ids,
    quota_input,
    role_allows,
    split_text,
)

STATS = {
    "instances_per_class": {"train": {"cat": 3, "dog": 1}, "val": {"cat": 1, "dog": 0}},
    "image_sizes": [{"width": 64, "height": 48, "count": 5}],
    "objects_per_image": {"train": {"0": 1, "2": 4}},
}


def test_project_path_ids():
    assert project_path_ids("/projects/7/datasets/12") == (7, 12)
    assert project_path_ids("/projects/7/members/") == (7, None)
    assert project_path_ids("/jobs/3") == (None, None)
    assert project_path_ids("/projects/12x/train") == (None, None), "ids are whole path segments"


def test_project_from_path_is_the_one_project_path_parser():
    assert project_from_path("/projects/12/train") == 12 and project_from_path("/jobs/3") is None


def test_role_allows_follows_the_permission_table():
    assert role_allows("member", Action.dataset_write) and not role_allows("viewer", Action.dataset_write)
    assert role_allows("admin", Action.members_manage) and not role_allows("member", Action.members_manage)
    assert not role_allows("", Action.dataset_read)
    assert role_allows("admin", Action.quotas_manage) and not role_allows("member", Action.quotas_manage)


def test_role_allows_own_jobs_with_the_lower_role():
    for action in (Action.job_cancel, Action.job_retry):
        assert role_allows("member", action, own=True) and not role_allows("member", action)
        assert not role_allows("viewer", action, own=True)
        assert role_allows("admin", action) and role_allows("owner", action)
    # `own` changes nothing for actions without an own-target minimum.
    assert not role_allows("member", Action.members_manage, own=True)


def test_quota_input_and_field_labels():
    assert quota_input("", field="max_queued_jobs") is None
    assert quota_input(" 12 ", field="max_queued_jobs") == 12
    assert quota_input("0", field="max_queued_jobs") == 0  # the range is the service's to refuse
    with pytest.raises(InvalidInput, match="^max_queued_jobs: enter a whole number"):
        quota_input("2.5", field="max_queued_jobs")
    labels = {"max_queued_jobs": "Jobs waiting"}
    assert name_fields("max_queued_jobs: too many", labels) == "Jobs waiting: too many"
    assert name_fields("device: unknown", labels) == "device: unknown"
    assert name_fields("no field here", labels) == "no field here"


def test_progress_and_sizes():
    assert progress_percent(0, 0) == 0
    assert progress_percent(50, 200) == 25
    assert progress_percent(300, 200) == 100
    assert human_bytes(512) == "512 B" and human_bytes(2048) == "2.0 KB"


def test_problem_rows_and_split_text():
    rows = problem_rows([{"file": "a.txt", "line": 3, "message": "bad"}, {"file": "b", "message": "x"}])
    assert rows == [
        {"file": "a.txt", "line": "3", "message": "bad"},
        {"file": "b", "line": "", "message": "x"},
    ]
    assert split_text({"val": 2, "train": 8, "test": 0}) == "train 8 · val 2"


def test_parse_ratio_accepts_fractions_and_percent():
    assert parse_ratio("0.7", name="Train") == 0.7
    assert parse_ratio("20", name="Val") == 0.2
    with pytest.raises(ValueError, match="Train"):
        parse_ratio("abc", name="Train")
    with pytest.raises(ValueError):
        parse_ratio("-1", name="Test")


def test_parse_day():
    assert parse_day("") is None
    assert parse_day("2024-05-01", end=True).hour == 23
    with pytest.raises(Exception, match="not a date"):
        parse_day("05/01/2024")


def test_dataset_charts_use_the_one_chart_style():
    base = chart_layout()
    for figure in (class_counts_figure(STATS), image_sizes_figure(STATS), boxes_per_image_figure(STATS)):
        assert figure.layout.paper_bgcolor == base["paper_bgcolor"]
        assert figure.layout.xaxis.gridcolor == tokens.GRID
    assert [t.name for t in class_counts_figure(STATS).data] == ["train", "val"]
    assert list(boxes_per_image_figure(STATS).data[0].x) == [0, 2]


def test_badge_colours_meet_aa_with_white_initials():
    assert all(tokens.contrast_ratio(tokens.PRIMARY_TEXT, c) >= 4.5 for c in BADGE_COLOURS)


def test_plural_says_one_object_and_two_objects():
    assert plural(1, "object") == "1 object"
    assert plural(0, "object") == "0 objects"
    assert plural(2, "image") == "2 images"
    assert plural(1, "class") == "1 class"
    assert plural(3, "class") == "3 classes"
    assert plural(2, "box") == "2 boxes"
    assert plural(2, "child", "children") == "2 children"


def test_dataset_page_sentences_use_the_right_number():
    from datetime import UTC, datetime

    from services.domain.datasets.schemas import GalleryImage, ReportPublic, UploadResult
    from state.datasets_state import gallery_tiles, stats_sentence, upload_message

    one = {"num_images": 1, "classes": ["cat"], "background_images": 0, "width": {"min": 8, "max": 8}}
    assert stats_sentence(one).startswith("1 image, 1 class, 0 without objects")
    two = {**one, "num_images": 2, "classes": ["cat", "dog"]}
    assert stats_sentence(two).startswith("2 images, 2 classes,")

    image = GalleryImage(
        index=0,
        path="a/b.png",
        split="train",
        width=4,
        height=3,
        classes=["cat"],
        num_objects=1,
        thumbnail_uri="s3://x",
    )
    (tile,) = gallery_tiles([image], [b"jpeg"])
    assert (
        tile["objects"] == "1 object"
        and tile["name"] == "b.png"
        and tile["src"].startswith("data:image/jpeg")
    )

    report = ReportPublic(format="yolo", task="detect", counts={}, errors=[], warnings=[])
    result = UploadResult(
        id=1,
        dataset_id=1,
        version=1,
        format="yolo",
        task="detect",
        uri="s3://b/p/",
        classes=["cat"],
        num_images=1,
        num_labels=1,
        split_counts={"train": 1},
        size_bytes=10,
        created_at=datetime.now(UTC),
        report=report,
    )
    assert upload_message(result) == "Stored version 1 with 1 image; no problems found."
    warned = result.model_copy(
        update={
            "num_images": 5,
            "report": report.model_copy(update={"warnings": [{"file": "a", "message": "m"}]}),
        }
    )
    assert upload_message(warned) == "Stored version 1 with 5 images and 1 warning (below)."
