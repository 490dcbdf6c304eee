"""The run form and the training spec, free of Keras and TensorFlow (the DAG file and
``covidct check-conf`` import it).

* :class:`RunRequest`: one run's configuration, the DAG's Params form (:data:`FORM_DEFAULTS`),
  checked field by field before any work starts.
* :class:`TrainingSpec`: what a model was trained with (profile, epochs, steps per epoch,
  image size, batch size, initial weights), built once from the form with every value resolved
  (a form's null takes the profile's value, :data:`PROFILE_SCHEDULES`), carried as a JSON-safe
  dict (:meth:`TrainingSpec.to_dict`) through XCom, the serving request and the registered
  version's ``train_params`` tag (:data:`SPEC_TAG`), and read back by :meth:`TrainingSpec.from_dict`
  alone. :meth:`covidct.training.TrainingConfig.from_spec` turns it into a training config.

Every error is one line naming the field, the bad value and the allowed values (a
``ValueError``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

from covidct.schema import BACKBONE_NAMES


class Profile(StrEnum):
    """Training profile: ``paper`` = the seed's Table 5; ``gpu-fast``; ``cpu-smoke`` for CPUs
    (``covidct.training.profiles`` holds each one's full settings)."""

    PAPER = "paper"
    GPU_FAST = "gpu-fast"
    CPU_SMOKE = "cpu-smoke"


@dataclass(frozen=True)
class Schedule:
    """A profile's schedule and input: epochs, optimizer steps per epoch (None: one pass of
    ``images_per_epoch`` images, see ``TrainingConfig``), images per replica and step, and the
    square input side in pixels."""

    epochs: int
    steps_per_epoch: int | None
    batch_size: int
    image_size: int


#: each profile's schedule; ``covidct.training.profiles`` builds its configs from these
PROFILE_SCHEDULES: dict[Profile, Schedule] = {
    Profile.PAPER: Schedule(epochs=100, steps_per_epoch=100, batch_size=10, image_size=512),
    Profile.GPU_FAST: Schedule(epochs=100, steps_per_epoch=None, batch_size=32, image_size=512),
    Profile.CPU_SMOKE: Schedule(epochs=2, steps_per_epoch=3, batch_size=16, image_size=64),
}

#: inclusive bounds of the form's integer fields (the DAG's Params use the same numbers)
FOLDS_RANGE: tuple[int, int] = (2, 10)
IMAGE_SIZE_RANGE: tuple[int, int] = (32, 1024)
#: initial weights a run may ask for besides None (random initialisation)
WEIGHTS_NAMES: tuple[str, ...] = ("imagenet",)
#: the MLflow tag (and XCom / record key) that carries :meth:`TrainingSpec.to_dict`
SPEC_TAG = "train_params"

#: the run form's fields and defaults (``profile`` None: the deployment's default profile,
#: ``covidct.config.default_profile``)
FORM_DEFAULTS: dict[str, Any] = {
    "backbones": ["resnet152", "resnet50", "vgg16"],
    "folds": 5,
    "seed": 0,
    "profile": None,
    "epochs": None,
    "steps_per_epoch": None,
    "image_size": None,
    "weights": None,
    "dry_run": False,
    "force_retrain": False,
}


#: the form's defaults that differ by profile: ``cpu-smoke`` trains 2 backbones x 2 folds (the
#: baseline and one rival; 4 models of a few minutes each on CPU), not 3 x 5
PROFILE_FORM_DEFAULTS: dict[Profile, dict[str, Any]] = {
    Profile.CPU_SMOKE: {"backbones": ["resnet152", "resnet50"], "folds": 2},
}


def form_defaults(profile: str | None) -> dict[str, Any]:
    """The run form's defaults for runs of ``profile`` (the deployment's default profile when the
    form leaves it null): :data:`FORM_DEFAULTS` with :data:`PROFILE_FORM_DEFAULTS` of that
    profile. An unknown profile gets :data:`FORM_DEFAULTS` (its check names the bad value)."""
    chosen = Profile._value2member_map_.get(str(profile))
    extra = PROFILE_FORM_DEFAULTS.get(chosen, {}) if isinstance(chosen, Profile) else {}
    return {**FORM_DEFAULTS, **{k: list(v) if isinstance(v, list) else v for k, v in extra.items()}}


def _choices(values: Any) -> str:
    return ", ".join("null" if v is None else str(v) for v in values)


def _integer(field: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high]; raise ValueError naming ``field`` otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= (high or value):
        return value
    allowed = f"an integer from {low} to {high}" if high else f"an integer >= {low}"
    raise ValueError(f"{field}: expected {allowed}; got {value!r}")


def _optional(field: str, value: Any, low: int, high: int | None = None) -> int | None:
    """None, or ``value`` as an int in [low, high]; raise ValueError naming ``field``."""
    if value is None:
        return None
    try:
        return _integer(field, value, low, high)
    except ValueError as error:
        raise ValueError(str(error).replace("; got", " or null; got", 1)) from None


def _profile(value: Any) -> Profile:
    if isinstance(value, str) and value in Profile._value2member_map_:
        return Profile(value)
    raise ValueError(f"profile: expected one of {_choices(Profile)}; got {value!r}")


def _weights(value: Any) -> str | None:
    if value is None or value in WEIGHTS_NAMES:
        return value
    raise ValueError(f"weights: expected one of {_choices((None, *WEIGHTS_NAMES))}; got {value!r}")


def _known(data: Mapping[str, Any], names: tuple[str, ...], what: str) -> None:
    """Raise ValueError for the first key of ``data`` not in ``names``."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{what}: expected a JSON object; got {data!r}")
    for key in data:
        if key not in names:
            raise ValueError(f"{key}: unknown field of the {what}; expected {', '.join(names)}")


@dataclass(frozen=True)
class TrainingSpec:
    """What a model is trained with; every value resolved (see module docstring).

    ``profile``: :class:`Profile`; ``epochs`` >= 1; ``steps_per_epoch`` >= 1 or None (one pass
    of the profile's ``images_per_epoch`` per epoch); ``image_size``: square model input side in
    pixels, within :data:`IMAGE_SIZE_RANGE`; ``batch_size``: images per replica and step;
    ``weights``: None (random) or ``"imagenet"``. Raises ValueError (one line naming the field,
    the value and the allowed values) for a bad value.
    """

    profile: Profile
    epochs: int
    steps_per_epoch: int | None
    image_size: int
    batch_size: int
    weights: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "profile", _profile(str(self.profile)))
        _integer("epochs", self.epochs, 1)
        _optional("steps_per_epoch", self.steps_per_epoch, 1)
        _integer("image_size", self.image_size, *IMAGE_SIZE_RANGE)
        _integer("batch_size", self.batch_size, 1)
        _weights(self.weights)

    @classmethod
    def of_profile(cls, profile: Profile | str, **overrides: Any) -> TrainingSpec:
        """The profile's schedule (:data:`PROFILE_SCHEDULES`) with ``overrides`` whose value is
        not None. Raises ValueError for an unknown profile, field or bad value."""
        chosen = _profile(str(profile))
        _known(overrides, _FIELDS[1:], "training spec")
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(profile=chosen, **(asdict(PROFILE_SCHEDULES[chosen]) | given))

    @classmethod
    def from_form(cls, form: Mapping[str, Any], *, default_profile: str) -> TrainingSpec:
        """The spec of a run form (the DAG's resolved Params; other form fields are ignored).

        ``form["profile"]`` absent or None takes ``default_profile`` (the deployment's,
        ``covidct.config.default_profile``); a null override takes the profile's value.
        """
        profile = form.get("profile") or default_profile
        overrides = {k: form.get(k) for k in ("epochs", "steps_per_epoch", "image_size")}
        return cls.of_profile(profile, **overrides, weights=_weights(form.get("weights")))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field (the form of XCom, requests and the MLflow tag)."""
        return {**asdict(self), "profile": self.profile.value}

    def to_tag(self) -> str:
        """:meth:`to_dict` as sorted JSON: the value of the version's :data:`SPEC_TAG` tag."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, legacy: bool = False) -> TrainingSpec:
        """Read :meth:`to_dict` back. Raises ValueError on a missing or unknown field or a bad
        value, naming the field, the value and the allowed values.

        ``legacy``: ``data`` is the tag of a version registered before the spec existed
        (then the DAG form's non-null values only: ``profile`` and any of ``epochs``,
        ``steps_per_epoch``, ``image_size``, ``weights``); an absent field then takes the
        profile's value as :data:`PROFILE_SCHEDULES` has it (and absent ``weights`` None),
        exactly what the code of that time did when it read the tag. ``profile`` is required
        either way.
        """
        _known(data, _FIELDS, "training spec")
        if legacy:
            if "profile" not in data:
                raise ValueError(f"profile: missing from the training spec {dict(data)!r}")
            return cls.of_profile(
                data["profile"], **{k: v for k, v in data.items() if k != "profile"}
            )
        for name in _FIELDS:
            if name not in data:
                raise ValueError(
                    f"{name}: missing from the training spec; it needs {', '.join(_FIELDS)}"
                )
        return cls(**dict(data))

    @classmethod
    def from_tag(cls, text: str | None, *, legacy: bool = False) -> TrainingSpec:
        """Read a :data:`SPEC_TAG` tag (JSON text); None or bad JSON is a ValueError."""
        if text is None:
            raise ValueError(f"{SPEC_TAG}: no training spec recorded")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{SPEC_TAG}: not JSON ({error}); got {text!r}") from None
        return cls.from_dict(data, legacy=legacy)

    @classmethod
    def of(cls, value: TrainingSpec | Mapping[str, Any]) -> TrainingSpec:
        """``value`` itself, or :meth:`from_dict` of a dict that crossed a process boundary."""
        return value if isinstance(value, TrainingSpec) else cls.from_dict(value)

    def describe(self) -> str:
        """One line for people, e.g. ``cpu-smoke: 1 epoch x 40 steps, 64 px, batch 16, random``."""
        steps = "one pass" if self.steps_per_epoch is None else f"{self.steps_per_epoch} steps"
        epochs = f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}"
        return (
            f"{self.profile.value}: {epochs} x {steps}, {self.image_size} px, batch "
            f"{self.batch_size}, {self.weights or 'random'} initial weights"
        )


_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TrainingSpec))


@dataclass(frozen=True)
class RunRequest:
    """One run's configuration (the DAG's form, :data:`FORM_DEFAULTS`), checked.

    ``backbones``: names of :data:`covidct.schema.BACKBONE_NAMES`, at least one, duplicates
    dropped in order; ``folds`` within :data:`FOLDS_RANGE`; ``seed`` >= 0; ``training``: the
    :class:`TrainingSpec` of the form.
    """

    backbones: tuple[str, ...]
    folds: int
    seed: int
    dry_run: bool
    force_retrain: bool
    training: TrainingSpec

    @classmethod
    def from_form(cls, form: Mapping[str, Any], *, default_profile: str) -> RunRequest:
        """Check a run form (the DAG's resolved Params, or a run configuration: absent fields
        take :func:`form_defaults` of the run's profile). Raises ValueError, one line naming the
        field, the value and the allowed values, for an unknown field or a bad value."""
        _known(form, tuple(FORM_DEFAULTS), "run configuration")
        full = form_defaults(form.get("profile") or default_profile) | dict(form)
        return cls(
            backbones=_backbones(full["backbones"]),
            folds=_integer("folds", full["folds"], *FOLDS_RANGE),
            seed=_integer("seed", full["seed"], 0),
            dry_run=_flag("dry_run", full["dry_run"]),
            force_retrain=_flag("force_retrain", full["force_retrain"]),
            training=TrainingSpec.from_form(
                {**full, **_checked_overrides(full)}, default_profile=default_profile
            ),
        )

    def plan(self) -> dict[str, Any]:
        """The DAG's plan (XCom): ``{"backbones": [...] (none on a dry run), "train_params":
        TrainingSpec.to_dict()}``."""
        backbones = [] if self.dry_run else list(self.backbones)
        return {"backbones": backbones, SPEC_TAG: self.training.to_dict()}


def _checked_overrides(form: Mapping[str, Any]) -> dict[str, Any]:
    """The form's training overrides, each null or in its range (one-line errors)."""
    return {
        "epochs": _optional("epochs", form["epochs"], 1),
        "steps_per_epoch": _optional("steps_per_epoch", form["steps_per_epoch"], 1),
        "image_size": _optional("image_size", form["image_size"], *IMAGE_SIZE_RANGE),
    }


def _backbones(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple) and value:
        for name in value:
            if name not in BACKBONE_NAMES:
                raise ValueError(
                    f"backbones: expected names among {_choices(BACKBONE_NAMES)}; got {name!r}"
                )
        return tuple(dict.fromkeys(value))
    raise ValueError(
        f"backbones: expected a non-empty list of {_choices(BACKBONE_NAMES)}; got {value!r}"
    )


def _flag(field: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"{field}: expected true or false; got {value!r}")


def check_conf(text: str, *, default_profile: str) -> RunRequest:
    """Parse and check a run configuration given as JSON text (``DEMO_CONF``, ``airflow dags
    test -c``). Raises ValueError with one line for bad JSON or a bad field."""
    try:
        conf = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"run configuration is not JSON ({error}): {text!r}") from None
    return RunRequest.from_form(conf, default_profile=default_profile)
