"""The training spec and the run form (covidct.training.spec): one reader, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from covidct.training.spec import (
    FORM_DEFAULTS,
    PROFILE_SCHEDULES,
    Profile,
    RunRequest,
    TrainingSpec,
    check_conf,
)

SMOKE = TrainingSpec(Profile.CPU_SMOKE, epochs=1, steps_per_epoch=40, image_size=64, batch_size=16)
FULL = {
    "profile": "cpu-smoke",
    "epochs": 1,
    "steps_per_epoch": 40,
    "image_size": 64,
    "batch_size": 16,
    "weights": None,
}


def test_round_trip_through_json() -> None:
    assert SMOKE.to_dict() == FULL
    assert TrainingSpec.from_dict(json.loads(json.dumps(SMOKE.to_dict()))) == SMOKE
    assert TrainingSpec.from_tag(SMOKE.to_tag()) == SMOKE
    assert TrainingSpec.of(SMOKE) is SMOKE and TrainingSpec.of(FULL) == SMOKE


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({k: v for k, v in FULL.items() if k != "image_size"}, "image_size: missing"),
        ({k: v for k, v in FULL.items() if k != "weights"}, "weights: missing"),
        (FULL | {"imgsize": 64}, "imgsize: unknown field of the training spec; expected profile,"),
        (
            FULL | {"profile": "gpu"},
            "profile: expected one of paper, gpu-fast, cpu-smoke; got 'gpu'",
        ),
        (FULL | {"image_size": 16}, "image_size: expected an integer from 32 to 1024; got 16"),
        (FULL | {"image_size": "64"}, "image_size: expected an integer from 32 to 1024; got '64'"),
        (FULL | {"epochs": True}, "epochs: expected an integer >= 1; got True"),
        (FULL | {"steps_per_epoch": 0}, "steps_per_epoch: expected an integer >= 1 or null; got 0"),
        (
            FULL | {"weights": "imagenett"},
            "weights: expected one of null, imagenet; got 'imagenett'",
        ),
        ([1, 2], "training spec: expected a JSON object; got [1, 2]"),
    ],
    ids=[
        "missing",
        "missing-weights",
        "unknown",
        "profile",
        "small",
        "text",
        "bool",
        "zero",
        "w",
        "list",
    ],
)
def test_bad_spec_is_one_line_naming_field_value_and_allowed(data, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError) as caught:
        TrainingSpec.from_dict(data)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        # written before the typed spec: the form's non-null values only
        ({"profile": "cpu-smoke", "epochs": 1, "steps_per_epoch": 40}, SMOKE),
        ({"profile": "paper"}, TrainingSpec("paper", 100, 100, 512, 10)),
        (
            {"profile": "gpu-fast", "weights": "imagenet"},
            TrainingSpec("gpu-fast", 100, None, 512, 32, "imagenet"),
        ),
    ],
)
def test_legacy_tags_take_the_profiles_values_explicitly(tag: dict, expected: TrainingSpec) -> None:
    assert TrainingSpec.from_tag(json.dumps(tag), legacy=True) == expected
    with pytest.raises(ValueError, match="missing from the training spec"):
        TrainingSpec.from_tag(json.dumps(tag))  # never silently outside the legacy reader


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        (None, "train_params: no training spec recorded"),
        ("{}", "profile: missing"),
        ("{not json", "train_params: not JSON"),
        ('{"profile": "paper", "lr": 1}', "lr: unknown field"),
    ],
)
def test_legacy_reader_still_refuses_what_it_cannot_read(tag: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainingSpec.from_tag(tag, legacy=True)


@pytest.mark.parametrize(
    ("form", "default_profile", "expected"),
    [
        ({}, "cpu-smoke", TrainingSpec("cpu-smoke", 2, 3, 64, 16)),  # the deployment's default
        ({}, "gpu-fast", TrainingSpec("gpu-fast", 100, None, 512, 32)),
        ({"profile": None}, "cpu-smoke", TrainingSpec("cpu-smoke", 2, 3, 64, 16)),
        (
            {"profile": "paper", "image_size": 256},
            "cpu-smoke",
            TrainingSpec("paper", 100, 100, 256, 10),
        ),
        (
            {"profile": "cpu-smoke", "epochs": 1, "steps_per_epoch": 40, "weights": "imagenet"},
            "paper",
            TrainingSpec("cpu-smoke", 1, 40, 64, 16, "imagenet"),
        ),
    ],
)
def test_from_form_resolves_every_value(
    form: dict, default_profile: str, expected: TrainingSpec
) -> None:
    assert TrainingSpec.from_form(form, default_profile=default_profile) == expected
    assert RunRequest.from_form(form, default_profile=default_profile).training == expected


def test_profile_schedules_cover_every_profile() -> None:
    assert set(PROFILE_SCHEDULES) == set(Profile)


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ('{"profile": "gpu"}', "profile: expected one of paper, gpu-fast, cpu-smoke; got 'gpu'"),
        (
            '{"profle": "paper"}',
            "profle: unknown field of the run configuration; expected backbones,",
        ),
        ('{"folds": 1}', "folds: expected an integer from 2 to 10; got 1"),
        ('{"seed": -1}', "seed: expected an integer >= 0; got -1"),
        ('{"backbones": []}', "backbones: expected a non-empty list of resnet152,"),
        ('{"backbones": ["alexnet"]}', "backbones: expected names among resnet152,"),
        (
            '{"image_size": 2048}',
            "image_size: expected an integer from 32 to 1024 or null; got 2048",
        ),
        ('{"dry_run": "yes"}', "dry_run: expected true or false; got 'yes'"),
        ("profile=gpu", "run configuration is not JSON"),
        ("[]", "run configuration: expected a JSON object"),
    ],
)
def test_bad_run_configuration_is_one_line(conf: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_conf(conf, default_profile="cpu-smoke")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_run_request_plan() -> None:
    conf = {"backbones": ["vgg16", "resnet152", "vgg16"], "folds": 2, "epochs": 1}
    request = RunRequest.from_form(conf, default_profile="cpu-smoke")
    assert request.backbones == ("vgg16", "resnet152")  # duplicates dropped, order kept
    assert request.plan() == {
        "backbones": ["vgg16", "resnet152"],
        "train_params": TrainingSpec("cpu-smoke", 1, 3, 64, 16).to_dict(),
    }
    dry = RunRequest.from_form(conf | {"dry_run": True}, default_profile="cpu-smoke")
    assert dry.plan()["backbones"] == []
    assert set(RunRequest.from_form({}, default_profile="paper").plan()) == {
        "backbones",
        "train_params",
    }
    assert list(FORM_DEFAULTS) == [
        "backbones", "folds", "seed", "profile", "epochs", "steps_per_epoch", "image_size",
        "weights", "dry_run", "force_retrain",
    ]  # fmt: skip


def test_the_spec_module_imports_no_heavy_library() -> None:
    code = (
        "import sys, covidct.training.spec, covidct.cli;"
        "print(','.join(m for m in ('tensorflow', 'keras', 'mlflow', 'pandas', 'numpy')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("profile", list(Profile))
def test_a_profiles_spec_is_the_profiles_config(profile: Profile) -> None:
    from covidct.training import TrainingConfig

    spec = TrainingSpec.of_profile(profile)
    assert TrainingConfig.from_spec(spec) == TrainingConfig.from_profile(profile)


def test_training_config_carries_every_field_of_the_spec() -> None:
    from covidct.training import TrainingConfig

    spec = TrainingSpec("gpu-fast", epochs=3, steps_per_epoch=7, image_size=128, batch_size=8,
                        weights="imagenet")  # fmt: skip
    config = TrainingConfig.from_spec(spec)
    assert (config.profile, config.epochs, config.steps_per_epoch, config.image_size) == (
        Profile.GPU_FAST, 3, 7, 128,
    )  # fmt: skip
    assert (config.batch_size, config.weights, config.mixed_precision) == (8, "imagenet", True)
