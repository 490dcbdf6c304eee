"""Public names of ``covidct.report``, one list: read by ``lazy_loader.attach_stub`` at run
time (each imported on first use) and by type checkers."""

from .card_parts import (
    CHANGE_FIELDS as CHANGE_FIELDS,
    change_record as change_record,
    criteria_rows as criteria_rows,
    members_text as members_text,
    spec_changes as spec_changes,
    spec_text as spec_text,
    temperature_text as temperature_text,
)
from .evidence_html import (
    SUBGROUP_COLUMNS as SUBGROUP_COLUMNS,
    ZERO_SENSITIVITY_MIN_COVID as ZERO_SENSITIVITY_MIN_COVID,
    calibration_flags as calibration_flags,
    calibration_html as calibration_html,
    drift_html as drift_html,
    escape as escape,
    interval as interval,
    number as number,
    run_evidence_html as run_evidence_html,
    serving_html as serving_html,
    subgroup_rule_html as subgroup_rule_html,
    subgroup_table_html as subgroup_table_html,
)
from .gradcam_report import (
    OUTCOMES as OUTCOMES,
    GradCams as GradCams,
    gradcam_html as gradcam_html,
    outcome_counts as outcome_counts,
)
from .html_report import (
    BACKBONE_COLUMN as BACKBONE_COLUMN,
    DEFAULT_PRIMARY as DEFAULT_PRIMARY,
    KEY_METRICS as KEY_METRICS,
    MEAN_SUFFIX as MEAN_SUFFIX,
    REPORT_FILE as REPORT_FILE,
    SD_SUFFIX as SD_SUFFIX,
    backbone_pictures as backbone_pictures,
    batches_html as batches_html,
    fold_confusion_html as fold_confusion_html,
    format_cell as format_cell,
    format_difference as format_difference,
    format_metric as format_metric,
    gate_html as gate_html,
    gate_metric as gate_metric,
    leaderboard_html as leaderboard_html,
    leaderboard_metrics as leaderboard_metrics,
    render_page as render_page,
    table_html as table_html,
    write_run_report as write_run_report,
)
from .model_card import (
    CARD_FILE as CARD_FILE,
    CARD_SECTIONS as CARD_SECTIONS,
    CARD_TAG as CARD_TAG,
    INTENDED_USE as INTENDED_USE,
    OUTCOME_KINDS as OUTCOME_KINDS,
    card_gradcam_html as card_gradcam_html,
    card_key as card_key,
    change_html as change_html,
    lineage_html as lineage_html,
    publish_cards as publish_cards,
    render_card as render_card,
    store_model_card as store_model_card,
    write_model_card as write_model_card,
)
from .pictures import (
    Picture as Picture,
    copy_picture as copy_picture,
    slug as slug,
)
from .summary import (
    LEADERBOARD_COLUMNS as LEADERBOARD_COLUMNS,
    REPORT_FOLDER as REPORT_FOLDER,
    NoSuchRunError as NoSuchRunError,
    collect_summary as collect_summary,
    confirmation_lines as confirmation_lines,
    curation_lines as curation_lines,
    evidence_lines as evidence_lines,
    find_run as find_run,
    format_summary as format_summary,
    latest_trained_run as latest_trained_run,
    leaderboard_text as leaderboard_text,
    model_lines as model_lines,
    stored_summaries as stored_summaries,
    trained_something as trained_something,
    write_picture_report as write_picture_report,
    write_summary as write_summary,
)
from .templating import (
    TEMPLATE_FOLDER as TEMPLATE_FOLDER,
    UNITS as UNITS,
    environment as environment,
    metric_title as metric_title,
    metric_unit as metric_unit,
    render as render,
    table as table,
)
from .wording import (
    CHANCE_WORDS as CHANCE_WORDS,
    curation_html as curation_html,
    interval_text as interval_text,
    model_sentence as model_sentence,
    models_html as models_html,
    pointing_sentence as pointing_sentence,
    severity_sentence as severity_sentence,
)
