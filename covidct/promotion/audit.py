"""Whether the registry's aliases are where the gate's ledger says they should be (issue 33 item 5).

The embedded default's MLflow has no authentication: anyone can put ``@champion`` on any version
in the UI. Every alias the gate itself moves is recorded in the append-only ledger
(:mod:`covidct.promotion.registry`): ``@champion`` by ``promote`` and ``rollback`` records,
``@baseline-resnet152`` by ``baseline`` records. A refused version gets no alias (its
``gate_verdict`` tag says ``refused``), so ``@challenger`` and any other alias is expected on no
version at all.

* :func:`alias_status`: each alias of the registry and of the ledger, with the version each side
  names and whether they agree (``covidct registry status`` prints it).
* :func:`alias_disagreements`: only those that disagree (the run report and
  ``gate_and_promote``'s alert use it).
* :func:`disagreement_alert`: one :class:`~covidct.promotion.alerts.Alert` naming them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from covidct.promotion.alerts import Alert, AlertKind, Severity
from covidct.promotion.registry import LedgerStore, read_ledger
from covidct.schema import ALIAS_BASELINE, ALIAS_CHAMPION

#: ledger actions that put ``@champion`` on their ``version``
CHAMPION_ACTIONS: tuple[str, ...] = ("promote", "rollback")
#: the ledger action that puts ``@baseline-resnet152`` on its ``version``
BASELINE_ACTION = "baseline"


@dataclass(frozen=True)
class AliasState:
    """One alias: the version the registry gives it and the version the ledger expects.

    ``registry_version``/``ledger_version``: version numbers as strings, None where that side
    has no such alias; ``agrees``: the two are equal; ``detail``: one sentence for people.
    """

    alias: str
    registry_version: str | None
    ledger_version: str | None
    agrees: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the fields."""
        return asdict(self)

    def line(self) -> str:
        """One line, e.g. ``@champion  v3  ledger v3  agrees`` or ``... DISAGREES: <detail>``."""
        mine = "none" if self.registry_version is None else f"v{self.registry_version}"
        theirs = "none" if self.ledger_version is None else f"v{self.ledger_version}"
        verdict = "agrees" if self.agrees else f"DISAGREES: {self.detail}"
        return f"@{self.alias:<20} {mine:<6} ledger {theirs:<6} {verdict}"


def registry_aliases(mlflow_client: Any, model_name: str) -> dict[str, str]:
    """``{alias: version}`` of ``model_name`` in the registry; empty when the model is absent.

    Raises what the MLflow client raises for anything but a missing model.
    """
    from mlflow.exceptions import MlflowException

    try:
        model = mlflow_client.get_registered_model(model_name)
    except MlflowException as error:
        if getattr(error, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST",):
            return {}
        raise
    return {str(alias): str(version) for alias, version in (model.aliases or {}).items()}


def ledger_aliases(store: LedgerStore, model_name: str) -> dict[str, str]:
    """``{alias: version}`` the ledger's records of ``model_name`` leave behind (oldest first,
    the last record of each alias wins): ``champion`` and ``baseline-resnet152`` at most."""
    expected: dict[str, str] = {}
    for record in read_ledger(store):
        if record.get("model") != model_name or record.get("version") in (None, ""):
            continue
        if record.get("action") in CHAMPION_ACTIONS:
            expected[ALIAS_CHAMPION] = str(record["version"])
        elif record.get("action") == BASELINE_ACTION:
            expected[ALIAS_BASELINE] = str(record["version"])
    return expected


def _detail(alias: str, mine: str | None, theirs: str | None, refused: bool) -> str:
    if mine is None:
        return f"the ledger puts @{alias} on v{theirs} but the registry has no @{alias}"
    if theirs is None:
        why = " (a version the gate refused)" if refused else ""
        return f"@{alias} is on v{mine}{why}, and no gate decision put it there"
    return f"@{alias} is on v{mine} but the last gate decision put it on v{theirs}"


def alias_status(mlflow_client: Any, store: LedgerStore, model_name: str) -> list[AliasState]:
    """Every alias of the registry or the ledger for ``model_name``, sorted by name, with the
    version each side names and whether they agree. Raises what the MLflow client or the lake
    store raises."""
    mine = registry_aliases(mlflow_client, model_name)
    theirs = ledger_aliases(store, model_name)
    states = []
    for alias in sorted(set(mine) | set(theirs)):
        here, there = mine.get(alias), theirs.get(alias)
        refused = False
        if here is not None and there is None:
            tags = mlflow_client.get_model_version(model_name, here).tags or {}
            refused = tags.get("gate_verdict") == "refused"
        agrees = here == there
        detail = "" if agrees else _detail(alias, here, there, refused)
        states.append(AliasState(alias, here, there, agrees, detail))
    return states


def alias_disagreements(
    mlflow_client: Any, store: LedgerStore, model_name: str
) -> list[AliasState]:
    """The aliases of :func:`alias_status` whose registry version the ledger does not explain
    (moved outside the gate, e.g. by hand in the MLflow UI); empty when all agree."""
    return [state for state in alias_status(mlflow_client, store, model_name) if not state.agrees]


def disagreement_alert(
    disagreements: Sequence[AliasState], model_name: str, *, dag_id: str = "", run_id: str = ""
) -> Alert | None:
    """A critical :class:`Alert` (kind ``registry_disagrees``) naming each disagreement, or
    None when there is none."""
    if not disagreements:
        return None
    summary = f"{model_name}: an alias moved outside the gate: " + "; ".join(
        state.detail for state in disagreements
    )
    details = {"model": model_name, "aliases": [state.to_dict() for state in disagreements]}
    return Alert(AlertKind.REGISTRY_DISAGREES, Severity.CRITICAL, summary, details, dag_id, run_id)
