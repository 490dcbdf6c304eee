"""TODO"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidct.evaluation.confirmation import (
        DIGEST_TAG as DIGEST_TAG,
    )
    from covidct.evaluation.confirmation import (
        REGISTRY_BOOKKEEPING as REGISTRY_BOOKKEEPING,
    )
    from covidct.evaluation.confirmation import (
        build_deployable as build_deployable,
    )
    from covidct.evaluation.confirmation import (
        champion_record as champion_record,
    )
    from covidct.evaluation.confirmation import (
        confirm as confirm,
    )
    from covidct.evaluation.confirmation import (
        download as download,
    )
    from covidct.evaluation.confirmation import (
        ensemble_model as ensemble_model,
    )
    from covidct.evaluation.confirmation import (
        members_of as members_of,
    )
    from covidct.evaluation.confirmation import (
        model_digest as model_digest,
    )
    from covidct.evaluation.confirmation import (
        score_registered as score_registered,
    )
    from covidct.evaluation.confirmation import (
        seen_patients as seen_patients,
    )
    from covidct.evaluation.confirmation import (
        sequestered_key as sequestered_key,
    )
    from covidct.evaluation.explain import (
        DEFAULT_CLASS_INDEX as DEFAULT_CLASS_INDEX,
    )
    from covidct.evaluation.explain import (
        LUNG_WINDOW as LUNG_WINDOW,
    )
    from covidct.evaluation.explain import (
        TRUNK_FEATURE_LAYERS as TRUNK_FEATURE_LAYERS,
    )
    from covidct.evaluation.explain import (
        Cell as Cell,
    )
    from covidct.evaluation.explain import (
        DisplayWindow as DisplayWindow,
    )
    from covidct.evaluation.explain import (
        cam_from_gradients as cam_from_gradients,
    )
    from covidct.evaluation.explain import (
        confusion_cells as confusion_cells,
    )
    from covidct.evaluation.explain import (
        display_gray as display_gray,
    )
    from covidct.evaluation.explain import (
        feature_layer as feature_layer,
    )
    from covidct.evaluation.explain import (
        feature_layer_names as feature_layer_names,
    )
    from covidct.evaluation.explain import (
        features_and_gradients as features_and_gradients,
    )
    from covidct.evaluation.explain import (
        find_layer as find_layer,
    )
    from covidct.evaluation.explain import (
        gradcam as gradcam,
    )
    from covidct.evaluation.explain import (
        gradcam_batch as gradcam_batch,
    )
    from covidct.evaluation.explain import (
        gradcam_figure as gradcam_figure,
    )
    from covidct.evaluation.explain import (
        gradcam_for_predictions as gradcam_for_predictions,
    )
    from covidct.evaluation.explain import (
        iter_layers as iter_layers,
    )
    from covidct.evaluation.explain import (
        model_input as model_input,
    )
    from covidct.evaluation.explain import (
        overlay as overlay,
    )
    from covidct.evaluation.explain import (
        sample_cases as sample_cases,
    )
    from covidct.evaluation.explain import (
        save_figure as save_figure,
    )
    from covidct.evaluation.explain import (
        tiff_loader as tiff_loader,
    )
    from covidct.evaluation.metrics import (
        CLASS_INDEX as CLASS_INDEX,
    )
    from covidct.evaluation.metrics import (
        COUNT_KEYS as COUNT_KEYS,
    )
    from covidct.evaluation.metrics import (
        DEFAULT_THRESHOLD as DEFAULT_THRESHOLD,
    )
    from covidct.evaluation.metrics import (
        NEGATIVE_CLASS as NEGATIVE_CLASS,
    )
    from covidct.evaluation.metrics import (
        POSITIVE_INDEX as POSITIVE_INDEX,
    )
    from covidct.evaluation.metrics import (
        PREDICTED_AXIS as PREDICTED_AXIS,
    )
    from covidct.evaluation.metrics import (
        SCORE_METRICS as SCORE_METRICS,
    )
    from covidct.evaluation.metrics import (
        TRUE_AXIS as TRUE_AXIS,
    )
    from covidct.evaluation.metrics import (
        ClusteredPredictions as ClusteredPredictions,
    )
    from covidct.evaluation.metrics import (
        Metric as Metric,
    )
    from covidct.evaluation.metrics import (
        UndefinedMetricWarning as UndefinedMetricWarning,
    )
    from covidct.evaluation.metrics import (
        cells_from_confusion as cells_from_confusion,
    )
    from covidct.evaluation.metrics import (
        check_scores as check_scores,
    )
    from covidct.evaluation.metrics import (
        classification_metrics as classification_metrics,
    )
    from covidct.evaluation.metrics import (
        cluster_predictions as cluster_predictions,
    )
    from covidct.evaluation.metrics import (
        compute_metrics as compute_metrics,
    )
    from covidct.evaluation.metrics import (
        confusion as confusion,
    )
    from covidct.evaluation.metrics import (
        confusion_counts as confusion_counts,
    )
    from covidct.evaluation.metrics import (
        confusion_frame as confusion_frame,
    )
    from covidct.evaluation.metrics import (
        encode_labels as encode_labels,
    )
    from covidct.evaluation.metrics import (
        metrics_from_confusion as metrics_from_confusion,
    )
    from covidct.evaluation.metrics import (
        predict_labels as predict_labels,
    )
    from covidct.evaluation.metrics import (
        rates_from_counts as rates_from_counts,
    )
    from covidct.evaluation.metrics import (
        score_metrics as score_metrics,
    )
    from covidct.evaluation.metrics import (
        weighted_metrics as weighted_metrics,
    )
    from covidct.evaluation.predictions import (
        ALL_FOLDS as ALL_FOLDS,
    )
    from covidct.evaluation.predictions import (
        DEFAULT_PATIENT_THRESHOLD as DEFAULT_PATIENT_THRESHOLD,
    )
    from covidct.evaluation.predictions import (
        FOLD as FOLD,
    )
    from covidct.evaluation.predictions import (
        HEADLINE as HEADLINE,
    )
    from covidct.evaluation.predictions import (
        OPTIONAL_COLUMNS as OPTIONAL_COLUMNS,
    )
    from covidct.evaluation.predictions import (
        P_COVID as P_COVID,
    )
    from covidct.evaluation.predictions import (
        PATIENT_ID as PATIENT_ID,
    )
    from covidct.evaluation.predictions import (
        PATIENT_THRESHOLD as PATIENT_THRESHOLD,
    )
    from covidct.evaluation.predictions import (
        REQUIRED_COLUMNS as REQUIRED_COLUMNS,
    )
    from covidct.evaluation.predictions import (
        SELECTED as SELECTED,
    )
    from covidct.evaluation.predictions import (
        SLICE_ID as SLICE_ID,
    )
    from covidct.evaluation.predictions import (
        SPLIT as SPLIT,
    )
    from covidct.evaluation.predictions import (
        TEST_SPLIT as TEST_SPLIT,
    )
    from covidct.evaluation.predictions import (
        VAL_SPLIT as VAL_SPLIT,
    )
    from covidct.evaluation.predictions import (
        Y_TRUE as Y_TRUE,
    )
    from covidct.evaluation.predictions import (
        BootstrapResult as BootstrapResult,
    )
    from covidct.evaluation.predictions import (
        EvaluationResult as EvaluationResult,
    )
    from covidct.evaluation.predictions import (
        PairedBootstrapResult as PairedBootstrapResult,
    )
    from covidct.evaluation.predictions import (
        ThresholdSource as ThresholdSource,
    )
    from covidct.evaluation.predictions import (
        Unit as Unit,
    )
    from covidct.evaluation.predictions import (
        bootstrap_ci as bootstrap_ci,
    )
    from covidct.evaluation.predictions import (
        bootstrap_weights as bootstrap_weights,
    )
    from covidct.evaluation.predictions import (
        choose_patient_threshold as choose_patient_threshold,
    )
    from covidct.evaluation.predictions import (
        evaluate_predictions as evaluate_predictions,
    )
    from covidct.evaluation.predictions import (
        fold_metrics as fold_metrics,
    )
    from covidct.evaluation.predictions import (
        format_text as format_text,
    )
    from covidct.evaluation.predictions import (
        headline_metrics as headline_metrics,
    )
    from covidct.evaluation.predictions import (
        image_metrics as image_metrics,
    )
    from covidct.evaluation.predictions import (
        metric_key as metric_key,
    )
    from covidct.evaluation.predictions import (
        paired_bootstrap as paired_bootstrap,
    )
    from covidct.evaluation.predictions import (
        parse_metric_key as parse_metric_key,
    )
    from covidct.evaluation.predictions import (
        patient_level as patient_level,
    )
    from covidct.evaluation.predictions import (
        patient_metrics as patient_metrics,
    )
    from covidct.evaluation.predictions import (
        patient_report as patient_report,
    )
    from covidct.evaluation.predictions import (
        plot_confusion_matrix as plot_confusion_matrix,
    )
    from covidct.evaluation.predictions import (
        plot_pr_curve as plot_pr_curve,
    )
    from covidct.evaluation.predictions import (
        plot_roc_curves as plot_roc_curves,
    )
    from covidct.evaluation.predictions import (
        read_predictions as read_predictions,
    )
    from covidct.evaluation.predictions import (
        run_evaluate_predictions as run_evaluate_predictions,
    )
    from covidct.evaluation.predictions import (
        summarize_folds as summarize_folds,
    )
    from covidct.evaluation.predictions import (
        validate_predictions as validate_predictions,
    )

#: public name -> the module that defines it (imported on first use, so importing one module of
#: the package does not import the others' dependencies)
_EXPORTS: dict[str, str] = {
    "ALL_FOLDS": "covidct.evaluation.predictions",
    "BootstrapResult": "covidct.evaluation.predictions",
    "CLASS_INDEX": "covidct.evaluation.metrics",
    "COUNT_KEYS": "covidct.evaluation.metrics",
    "Cell": "covidct.evaluation.explain",
    "ClusteredPredictions": "covidct.evaluation.metrics",
    "DEFAULT_CLASS_INDEX": "covidct.evaluation.explain",
    "DEFAULT_PATIENT_THRESHOLD": "covidct.evaluation.predictions",
    "DEFAULT_THRESHOLD": "covidct.evaluation.metrics",
    "DIGEST_TAG": "covidct.evaluation.confirmation",
    "DisplayWindow": "covidct.evaluation.explain",
    "EvaluationResult": "covidct.evaluation.predictions",
    "FOLD": "covidct.evaluation.predictions",
    "HEADLINE": "covidct.evaluation.predictions",
    "LUNG_WINDOW": "covidct.evaluation.explain",
    "Metric": "covidct.evaluation.metrics",
    "NEGATIVE_CLASS": "covidct.evaluation.metrics",
    "OPTIONAL_COLUMNS": "covidct.evaluation.predictions",
    "PATIENT_ID": "covidct.evaluation.predictions",
    "PATIENT_THRESHOLD": "covidct.evaluation.predictions",
    "POSITIVE_INDEX": "covidct.evaluation.metrics",
    "PREDICTED_AXIS": "covidct.evaluation.metrics",
    "P_COVID": "covidct.evaluation.predictions",
    "PairedBootstrapResult": "covidct.evaluation.predictions",
    "REGISTRY_BOOKKEEPING": "covidct.evaluation.confirmation",
    "REQUIRED_COLUMNS": "covidct.evaluation.predictions",
    "SCORE_METRICS": "covidct.evaluation.metrics",
    "SELECTED": "covidct.evaluation.predictions",
    "SLICE_ID": "covidct.evaluation.predictions",
    "SPLIT": "covidct.evaluation.predictions",
    "TEST_SPLIT": "covidct.evaluation.predictions",
    "TRUE_AXIS": "covidct.evaluation.metrics",
    "TRUNK_FEATURE_LAYERS": "covidct.evaluation.explain",
    "ThresholdSource": "covidct.evaluation.predictions",
    "UndefinedMetricWarning": "covidct.evaluation.metrics",
    "Unit": "covidct.evaluation.predictions",
    "VAL_SPLIT": "covidct.evaluation.predictions",
    "Y_TRUE": "covidct.evaluation.predictions",
    "bootstrap_ci": "covidct.evaluation.predictions",
    "bootstrap_weights": "covidct.evaluation.predictions",
    "build_deployable": "covidct.evaluation.confirmation",
    "cam_from_gradients": "covidct.evaluation.explain",
    "cells_from_confusion": "covidct.evaluation.metrics",
    "champion_record": "covidct.evaluation.confirmation",
    "check_scores": "covidct.evaluation.metrics",
    "choose_patient_threshold": "covidct.evaluation.predictions",
    "classification_metrics": "covidct.evaluation.metrics",
    "cluster_predictions": "covidct.evaluation.metrics",
    "compute_metrics": "covidct.evaluation.metrics",
    "confirm": "covidct.evaluation.confirmation",
    "confusion": "covidct.evaluation.metrics",
    "confusion_cells": "covidct.evaluation.explain",
    "confusion_counts": "covidct.evaluation.metrics",
    "confusion_frame": "covidct.evaluation.metrics",
    "display_gray": "covidct.evaluation.explain",
    "download": "covidct.evaluation.confirmation",
    "encode_labels": "covidct.evaluation.metrics",
    "ensemble_model": "covidct.evaluation.confirmation",
    "evaluate_predictions": "covidct.evaluation.predictions",
    "feature_layer": "covidct.evaluation.explain",
    "feature_layer_names": "covidct.evaluation.explain",
    "features_and_gradients": "covidct.evaluation.explain",
    "find_layer": "covidct.evaluation.explain",
    "fold_metrics": "covidct.evaluation.predictions",
    "format_text": "covidct.evaluation.predictions",
    "gradcam": "covidct.evaluation.explain",
    "gradcam_batch": "covidct.evaluation.explain",
    "gradcam_figure": "covidct.evaluation.explain",
    "gradcam_for_predictions": "covidct.evaluation.explain",
    "headline_metrics": "covidct.evaluation.predictions",
    "image_metrics": "covidct.evaluation.predictions",
    "iter_layers": "covidct.evaluation.explain",
    "members_of": "covidct.evaluation.confirmation",
    "metric_key": "covidct.evaluation.predictions",
    "metrics_from_confusion": "covidct.evaluation.metrics",
    "model_digest": "covidct.evaluation.confirmation",
    "model_input": "covidct.evaluation.explain",
    "overlay": "covidct.evaluation.explain",
    "paired_bootstrap": "covidct.evaluation.predictions",
    "parse_metric_key": "covidct.evaluation.predictions",
    "patient_level": "covidct.evaluation.predictions",
    "patient_metrics": "covidct.evaluation.predictions",
    "patient_report": "covidct.evaluation.predictions",
    "plot_confusion_matrix": "covidct.evaluation.predictions",
    "plot_pr_curve": "covidct.evaluation.predictions",
    "plot_roc_curves": "covidct.evaluation.predictions",
    "predict_labels": "covidct.evaluation.metrics",
    "rates_from_counts": "covidct.evaluation.metrics",
    "read_predictions": "covidct.evaluation.predictions",
    "run_evaluate_predictions": "covidct.evaluation.predictions",
    "sample_cases": "covidct.evaluation.explain",
    "save_figure": "covidct.evaluation.explain",
    "score_metrics": "covidct.evaluation.metrics",
    "score_registered": "covidct.evaluation.confirmation",
    "seen_patients": "covidct.evaluation.confirmation",
    "sequestered_key": "covidct.evaluation.confirmation",
    "summarize_folds": "covidct.evaluation.predictions",
    "tiff_loader": "covidct.evaluation.explain",
    "validate_predictions": "covidct.evaluation.predictions",
    "weighted_metrics": "covidct.evaluation.metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The re-exported name ``name`` (PEP 562), from the module that defines it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
