"""The story's figure of each task's return value (issue 33 item 3), on results shaped as the
pipeline returns them (keys from the functions' docstrings)."""

from __future__ import annotations

import pytest

from covidct.pipeline.story import describe, end_line, figure, start_line
from covidct.training.spec import RunRequest


@pytest.mark.parametrize(
    ("task_id", "result", "expected"),
    [
        ("validate", {"batch_id": "b", "passed": True, "n_slices": 959},
         "passed, 959 slices validated"),
        ("validate", {"batch_id": "f", "passed": False, "n_slices": 18},
         "FAILED validation, 18 slices validated"),
        ("train", {"backbone": "resnet50", "fold": 1, "steps": 20, "final_loss": 0.8601},
         "20 steps trained, final loss 0.860"),
        ("train", {"steps": 20, "final_loss": None}, "20 steps trained, final loss undefined"),
        ("evaluate", {"metrics": {"image_roc_auc": 0.5514}},
         "image ROC AUC 0.551 on the fold's test set"),
        ("gate_and_promote",
         {"candidate": "resnet152", "version": "1", "verdict": {"passed": False},
          "champion_before": None, "champion_after": None},
         "resnet152 v1 refused; @champion none -> none"),
        ("regression_check", {"compared_with": None, "regressions": [],
                              "reason": "no champion yet"},
         "nothing compared: no champion yet"),
        ("make_folds", [{"fold": 1}, {"fold": 2}], "2 folds"),
        ("no_such_task", {"x": 1}, ""),
        ("train", None, ""),
        ("evaluate", {"metrics": "not a dict"}, ""),
    ],
)  # fmt: skip
def test_figure(task_id: str, result: object, expected: str) -> None:
    assert figure(task_id, result) == expected


def test_a_dry_runs_plan_says_so() -> None:
    dry = RunRequest.from_form({"dry_run": True}, default_profile="cpu-smoke").plan()
    assert figure("plan", dry).startswith("DRY RUN: nothing is trained (cpu-smoke:")
    full = RunRequest.from_form({}, default_profile="cpu-smoke").plan()
    assert figure("plan", full).startswith("2 backbones (resnet152, resnet50); cpu-smoke:")


def test_lines() -> None:
    assert start_line(41.2, "validate") == "[   41s] > validate"
    assert end_line(49.0, "validate b", "success", 8.0, "passed") == (
        "[   49s]   validate b: passed (8.0 s)"
    )
    assert end_line(5, "make_folds", "skipped", 0.04) == "[    5s]   make_folds: SKIPPED (0.0 s)"
    assert describe("train", {"rendered_map_index": "resnet50 fold 1"}) == "train resnet50 fold 1"
    assert describe("validate", {"rendered_map_index": None, "map_index": 2}) == "validate [2]"
    assert describe("plan", {"map_index": -1}) == "plan"
