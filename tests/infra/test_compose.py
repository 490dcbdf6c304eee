"""Static checks of docker-compose.yaml, .env.example and the images (issue 8, item 3).

No Docker engine is needed: the file is validated against the Compose Specification's JSON
schema (vendored from check-jsonschema: ``compose-spec.json``), interpolated the way Compose
does it, and linted for security (``compose_lint``); the Dockerfiles are checked for pinned
base images and a non-root user.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from compose_lint import (
    MIN_WAIVER_REASON,
    InterpolationError,
    check_service,
    interpolate,
    interpolate_tree,
    lint,
    one_shot,
    variables,
    waivers,
)

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
SCHEMA = Path(__file__).with_name("compose-spec.json")
DOCKERFILES = sorted((REPO / "infra").glob("*.Dockerfile"))
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker", "airflow-worker-gpu")  # fmt: skip


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (comments and blank lines skipped)."""
    env = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.lstrip().startswith("#"):
            env[key.strip()] = value.strip()
    return env


def _load_script(name: str) -> Any:
    """Import ``infra/init/<name>.py`` (a script, not a package) as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "infra" / "init" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("template", "env", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("$A/b", {"A": "x"}, "x/b"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A-d}", {}, "d"),
        ("${A:+on}", {"A": "x"}, "on"),
        ("${A:+on}", {"A": ""}, ""),
        ("$$A and $${B}", {"A": "x"}, "$A and ${B}"),
        ("${A?unset}", {"A": ""}, ""),
    ],
)
def test_interpolation_follows_compose_rules(template: str, env: dict, expected: str) -> None:
    assert interpolate(template, env) == expected


@pytest.mark.parametrize("env", [{}, {"A": ""}])
def test_required_reference_refuses_unset_or_empty(env: dict) -> None:
    with pytest.raises(InterpolationError, match="A: set A in .env"):
        interpolate("pw=${A:?set A in .env}", env)


@pytest.fixture(scope="module")
def text() -> str:
    return COMPOSE.read_text()


@pytest.fixture(scope="module")
def compose(text: str) -> dict:
    return dict(yaml.safe_load(text))


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_compose_file_validates_against_the_compose_specification(
    compose: dict, validator: jsonschema.protocols.Validator
) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


@pytest.mark.parametrize(
    "mutation",
    [
        lambda c: c["services"]["postgres"].update(restart_policy="always"),
        lambda c: c["services"]["redis"].update(healthcheck={"interval": 10}),
        lambda c: c["services"]["airflow-worker"].update(depends_on={"redis": {"when": "ok"}}),
    ],
    ids=["unknown-key", "healthcheck-interval-not-duration", "bad-depends-on"],
)
def test_schema_rejects_a_broken_compose_file(
    compose: dict, validator: jsonschema.protocols.Validator, mutation: Any
) -> None:
    broken = copy.deepcopy(compose)
    mutation(broken)
    assert list(validator.iter_errors(broken))


def test_compose_file_is_valid_once_interpolated_with_the_example_env(
    compose: dict, validator: jsonschema.protocols.Validator
) -> None:
    rendered = interpolate_tree(compose, _env_file(ENV_EXAMPLE))
    assert list(validator.iter_errors(rendered)) == []
    assert rendered["services"]["airflow-worker"]["command"][:4] == [
        "celery", "worker", "--queues", "default"
    ]  # fmt: skip


def test_security_lint_passes_and_every_waiver_is_explained(compose: dict, text: str) -> None:
    assert lint(compose, text) == []
    for (rule, service), reason in waivers(text).items():
        assert service in compose["services"], f"waiver for unknown service {service}"
        assert len(reason) >= MIN_WAIVER_REASON, f"waiver {rule} {service}: explain why"


BAD_SERVICES = [
    ("privileged", {"privileged": True}),
    ("host-namespace", {"network_mode": "host"}),
    ("host-mount", {"volumes": ["/var/run/docker.sock:/var/run/docker.sock"]}),
    ("public-port", {"ports": ["8080:8080"]}),
    ("public-port", {"ports": ["0.0.0.0:5000:5000"]}),
    ("image-tag", {"image": "redis:latest"}),
    ("image-tag", {"image": "postgres"}),
    ("literal-secret", {"environment": {"POSTGRES_PASSWORD": "airflow"}}),
    ("literal-secret", {"environment": {"AIRFLOW__CORE__FERNET_KEY": "${FERNET:-abc}"}}),
    ("literal-secret", {"environment": {"BROKER": "redis://:hunter2hunter2@redis:6379/0"}}),
    ("healthcheck", {}),
    ("depends-condition", {"depends_on": ["postgres"]}),
    ("cap-add", {"cap_add": ["SYS_ADMIN"]}),
    ("security-opt", {"security_opt": ["seccomp:unconfined"]}),
]


@pytest.mark.parametrize(("rule", "override"), BAD_SERVICES)
def test_lint_catches_each_rule(rule: str, override: dict) -> None:
    service = {
        "image": "redis:7.2-bookworm",
        "healthcheck": {"test": ["CMD", "true"]},
        **override,
    }
    if rule == "healthcheck":
        del service["healthcheck"]
    assert rule in {finding.rule for finding in check_service("probe", service)}


def test_a_waiver_comment_silences_exactly_its_finding(compose: dict, text: str) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["mlflow"]["ports"] = ["5000:5000"]
    assert [f.rule for f in lint(broken, text)] == ["public-port"]
    waived = text + "\n# lint-waiver public-port mlflow: served behind the site's TLS proxy\n"
    assert lint(broken, waived) == []


def test_every_service_has_a_healthcheck_and_only_one_shot_jobs_disable_it(
    compose: dict,
) -> None:
    for name, service in compose["services"].items():
        assert "healthcheck" in service, name
        if service["healthcheck"].get("disable"):
            assert one_shot(name, compose), f"{name} disables its healthcheck but is no job"
        else:
            assert service["healthcheck"]["test"], name


def test_dependencies_wait_for_health_or_completion(compose: dict) -> None:
    conditions = {"service_healthy", "service_completed_successfully"}
    for name, service in compose["services"].items():
        for other, spec in (service.get("depends_on") or {}).items():
            assert other in compose["services"], f"{name} depends on unknown {other}"
            assert spec["condition"] in conditions, (name, other)
            waits_for_health = spec["condition"] == "service_healthy"
            assert not waits_for_health or not compose["services"][other]["healthcheck"].get(
                "disable"
            ), f"{name} waits for the health of {other}, which has none"


def test_stack_topology_matches_issue_8(compose: dict) -> None:
    services = interpolate_tree(compose, _env_file(ENV_EXAMPLE))["services"]
    for name in (*AIRFLOW_SERVICES, "postgres", "redis", "seaweedfs", "mlflow", "airflow-init",
                 "flower", "s3-init", "secrets-check"):  # fmt: skip
        assert name in services, name
    worker, gpu = services["airflow-worker"], services["airflow-worker-gpu"]
    assert worker["command"][worker["command"].index("--queues") + 1] == "default"
    assert gpu["entrypoint"][-1] == "/opt/covidct/infra/init/gpu-workers.sh"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert device["count"] == "1"  # GPU_COUNT of .env.example: one GPU, one worker
    assert services["airflow-init"]["environment"]["GPU_POOL_SLOTS"] == device["count"]
    assert "trainer" in gpu["image"] and "trainer" in gpu["build"]["dockerfile"]
    assert services["flower"]["profiles"] == ["flower"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["COVIDCT_LAKE_URI"].startswith("s3://"), name
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name
        # scheduled runs train a profile the GPU workers run, not the embedded cpu-smoke
        assert env["COVIDCT_DEFAULT_PROFILE"] in ("gpu-fast", "paper"), name
        assert services[name]["depends_on"]["airflow-init"]["condition"] == (
            "service_completed_successfully"
        )
    for name in ("postgres", "redis", "seaweedfs"):
        assert services[name]["depends_on"]["secrets-check"]["condition"] == (
            "service_completed_successfully"
        ), f"{name} must not start before the secrets are checked"


def test_gpu_worker_script_starts_one_worker_per_gpu_pinned_with_cuda_visible_devices() -> None:
    script = (REPO / "infra" / "init" / "gpu-workers.sh").read_text()
    assert re.search(r"CUDA_VISIBLE_DEVICES=\$gpu airflow celery worker --queues gpu", script)
    assert "--concurrency 1" in script


def test_every_required_variable_is_in_env_example_and_the_stack_refuses_empty_ones(
    compose: dict,
) -> None:
    refs = variables("\n".join(_strings(compose)))
    required = {name for name, op in refs.items() if op in (":?", "?")}
    example = _env_file(ENV_EXAMPLE)
    assert required, "no ${VAR:?...} reference: secrets would default silently"
    assert required <= set(example), sorted(required - set(example))
    for name in sorted(required):
        with pytest.raises(InterpolationError, match=name):
            interpolate_tree(compose, {**example, name: ""})
    assert sorted(set(refs) - set(example)) == []


def test_secrets_check_job_receives_every_required_secret(compose: dict) -> None:
    secret_vars = _load_script("check_secrets").SECRET_VARS
    job_env = compose["services"]["secrets-check"]["environment"]
    assert set(job_env) == set(secret_vars)
    refs = variables("\n".join(_strings(compose)))
    secret_like = {n for n, op in refs.items() if op == ":?" and re.search("PASS|SECRET|KEY", n)}
    assert secret_like <= set(secret_vars)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_pin_base_images_and_run_as_non_root(dockerfile: Path) -> None:
    lines = [line.strip() for line in dockerfile.read_text().splitlines()]
    bases = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    assert bases
    for base in bases:
        tag = base.rsplit("/", 1)[-1].partition(":")[2]
        assert tag and tag != "latest", f"{dockerfile.name}: FROM {base} is not pinned"
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), f"{dockerfile.name} runs as root"
    assert any("--frozen" in line for line in lines), f"{dockerfile.name} ignores uv.lock"


def test_dockerfiles_copy_only_what_the_images_need() -> None:
    names = {path.name for path in DOCKERFILES}
    assert names == {"airflow.Dockerfile", "trainer.Dockerfile"}
    for dockerfile in DOCKERFILES:
        copies = [line for line in dockerfile.read_text().splitlines() if line.startswith("COPY")]
        assert not any(re.match(r"COPY\s+\.\s", line) for line in copies), dockerfile.name
        assert not any(".env" in line for line in copies), dockerfile.name
        ignore = dockerfile.with_name(dockerfile.name + ".dockerignore").read_text().split()
        assert ignore[ignore.index("**") if "**" in ignore else 0] == "**", dockerfile.name
        assert "**/.env" in ignore and "!.venv/" not in ignore, dockerfile.name


def test_mlflow_server_jobs_are_disabled_wherever_a_server_starts(compose: dict) -> None:
    """MLflow's job runners burn CPU while idle and nothing here uses server jobs (issue 18)."""
    environment = compose["services"]["mlflow"]["environment"]
    assert environment["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    start = (REPO / "infra" / "mlflow" / "start.sh").read_text()
    assert (
        'MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"' in start
    )
    makefile = (REPO / "Makefile").read_text()
    (ui,) = [line for line in makefile.splitlines() if "mlflow ui" in line]
    assert "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false" in ui


def test_mlflow_server_authenticates_and_the_pipeline_has_its_own_account(compose: dict) -> None:
    """Issue 17 item 4: basic-auth app; the workers use the pipeline's account, never a person's."""
    services = interpolate_tree(compose, _env_file(ENV_EXAMPLE))["services"]
    server = services["mlflow"]["environment"]
    start = (REPO / "infra" / "mlflow" / "start.sh").read_text()
    assert "exec mlflow server --app-name basic-auth" in start
    assert "default_permission = READ" in start  # people read; grants come from auth_init.py
    assert len({server["MLFLOW_ADMIN_USER"], server["MLFLOW_PIPELINE_USER"],
                server["MLFLOW_VIEWER_USER"]}) == 3  # fmt: skip
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["MLFLOW_TRACKING_USERNAME"] == server["MLFLOW_PIPELINE_USER"], name
        assert env["MLFLOW_TRACKING_PASSWORD"] == server["MLFLOW_PIPELINE_PASSWORD"], name
