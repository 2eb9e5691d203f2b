"""Launch: a form generated from RunConfig (inline errors next to the field), and one-click sweep presets."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app import expert_demos, navigation
from app.backend import action_errors, api
from app.checkpoints import CheckpointChoice, checkpoint_choices, default_for, ordered_for
from app.forms import (
    CHECKPOINT_FIELDS,
    LIVE_FIELDS,
    FieldError,
    FieldSpec,
    error_sentence,
    field_specs,
    float_step,
    parse_seeds,
    parse_tags,
    suite_choices,
    task_choices,
    validate,
)
from app.presets import PRESETS, expand, refusal_sentence, sweep_name, validate_sweep, with_seeds
from app.views.common import guarded
from opd_core.config import ConfigError

COLUMNS = 3
WIDE_KINDS = ("checkpoint", "demos")
WIDE_COLUMNS = 1
"""Pickers whose choices are long names (checkpoints, demos) span the form, after the rest of their section (a
picker's list is as wide as the picker: a narrow one cuts the names)."""
OPEN_SECTIONS = ("what to run", "environment", "policies", "optimisation", "evaluation, checkpoints, videos")
"""Sections drawn open; the others (sft data, transformers checkpoints, any new one) start folded."""


@guarded
def render() -> None:
    st.title("Launch")
    st.caption(
        "Every field is a RunConfig field (opd_core/config.py); hover a label for its meaning. "
        "Several seeds launch a sweep with one run per seed."
    )
    checkpoints = checkpoint_choices(api())
    specs = field_specs()
    slots: dict[str, Any] = {}
    values = _live_fields(specs, slots)
    with st.form("launch_form"):
        _form_fields(specs, values, slots, checkpoints)
        extras = _extras(slots)
        launch_clicked = st.form_submit_button("Launch", type="primary")
        st.markdown("**Or launch one of the paper's comparisons with these settings as the base:**")
        preset_clicked = [
            preset
            for preset, column in zip(PRESETS, st.columns(len(PRESETS)))
            if column.form_submit_button(preset.title, help=preset.description)
        ]
    if launch_clicked:
        _launch_single(values, extras, slots)
    elif preset_clicked:
        _launch_preset(preset_clicked[0], values, extras, slots)


def _live_fields(specs: list[FieldSpec], slots: dict[str, Any]) -> dict[str, Any]:
    """env and suite sit outside the form: the task pickers inside it follow them at once."""
    by_name = {spec.name: spec for spec in specs}
    left, right = st.columns(2)
    env_spec, suite_spec = by_name["env"], by_name["suite"]
    env = left.selectbox(
        "env", env_spec.choices, index=env_spec.choices.index(env_spec.default), help=env_spec.help, key="launch_env"
    )
    slots["env"] = left.empty()
    _forget_pickers_of_another_env(env)
    suites = suite_choices(env)
    if suites:
        suite = right.selectbox(
            "suite",
            suites,
            index=suites.index(suite_spec.default) if suite_spec.default in suites else 0,
            help=suite_spec.help,
            key="launch_suite",
        )
    else:
        suite = right.text_input("suite", value="libero_object", help=suite_spec.help, key="launch_suite_text")
    slots["suite"] = right.empty()
    return {"env": env, "suite": suite}


def _forget_pickers_of_another_env(env: str) -> None:
    """A checkpoint chosen for one simulator means nothing on another: when env changes, the pickers start again
    from the new env's defaults (its shipped teacher and student)."""
    shown = st.session_state.get("launch_env_shown")
    if shown is not None and shown != env:
        for name in CHECKPOINT_FIELDS:
            st.session_state.pop(f"launch_{name}", None)
    st.session_state["launch_env_shown"] = env


def _form_fields(
    specs: list[FieldSpec], values: dict[str, Any], slots: dict[str, Any], checkpoints: list[CheckpointChoice]
) -> None:
    sections: dict[str, list[FieldSpec]] = {}
    for spec in specs:
        if spec.name not in LIVE_FIELDS:
            sections.setdefault(spec.section, []).append(spec)
    for section, members in sections.items():
        container = st.expander(section.capitalize(), expanded=section in OPEN_SECTIONS)
        narrow = [spec for spec in members if spec.kind not in WIDE_KINDS]
        wide = [spec for spec in members if spec.kind in WIDE_KINDS]
        for group, count in ((narrow, COLUMNS), (wide, WIDE_COLUMNS)):
            if not group:
                continue
            columns = container.columns(count)
            for index, spec in enumerate(group):
                with columns[index % count]:
                    values[spec.name] = _widget(spec, values, checkpoints)
                    slots[spec.name] = st.empty()


def _widget(spec: FieldSpec, values: dict[str, Any], checkpoints: list[CheckpointChoice]) -> Any:
    key = f"launch_{spec.name}"
    if spec.kind == "choice":
        return st.selectbox(spec.name, spec.choices, index=spec.choices.index(spec.default), help=spec.help, key=key)
    if spec.kind == "bool":
        return st.checkbox(spec.name, value=spec.default, help=spec.help, key=key)
    if spec.kind == "int":
        return st.number_input(spec.name, value=int(spec.default), step=1, help=spec.help, key=key)
    if spec.kind == "float":
        return st.number_input(
            spec.name, value=float(spec.default), step=float_step(spec.default), format="%g", help=spec.help, key=key
        )
    if spec.kind == "tasks":
        options = task_choices(values["env"], values["suite"], spec.name)
        return st.multiselect(
            spec.name,
            options,
            default=[],
            help=spec.help,
            key=f"{key}_{values['suite']}",
            accept_new_options=True,
            placeholder="all tasks" if spec.name == "tasks" else "none",
        )
    if spec.kind == "checkpoint":
        return _checkpoint_picker(spec, values, checkpoints, key)
    if spec.kind == "demos":
        return _demos_picker(spec, values, key)
    return st.text_input(spec.name, value=str(spec.default), help=spec.help, key=key)


def _checkpoint_picker(spec: FieldSpec, values: dict[str, Any], checkpoints: list[CheckpointChoice], key: str):
    """Shipped and lab checkpoints by name, the field's role on the form's suite first and chosen by default."""
    suite, env = values["suite"], values["env"]
    ordered = ordered_for(checkpoints, spec.name, suite, env)
    labels = {choice.path: choice.label for choice in ordered}
    options = ["", *labels]
    default = default_for(checkpoints, spec.name, suite, env)
    return st.selectbox(
        spec.name,
        options,
        index=options.index(default),
        format_func=lambda path: labels.get(path, path or "(none)"),
        key=key,
        help=spec.help + " Pick a shipped checkpoint or one of the lab's, or type a path.",
        accept_new_options=True,
    )


def _demos_picker(spec: FieldSpec, values: dict[str, Any], key: str):
    """Expert demos made at launch (a built-in simulator's scripted expert) by default; only sft runs read them."""
    generated = expert_demos.GENERATE if expert_demos.can_generate(values["env"]) else None
    options = [option for option in (generated, "") if option is not None]
    names = {
        expert_demos.GENERATE: f"expert demos of the {values['suite']} suite (made at launch if missing)",
        "": "(none)",
    }
    return st.selectbox(
        spec.name,
        options,
        format_func=lambda value: names.get(value, value),
        key=key,
        accept_new_options=True,
        help=spec.help + " Only sft runs read demos; type a folder to use your own.",
    )


def _extras(slots: dict[str, Any]) -> dict[str, str]:
    """Not config fields: which seeds, and the run's tags and notes."""
    left, middle, right = st.columns(3)
    seeds = left.text_input("seeds", value="0", help="One run per seed: 0 | 0, 1, 2 | 0-4", key="launch_seeds")
    slots["seed"] = left.empty()
    tags = middle.text_input("tags", value="", help="Comma-separated labels to filter runs by", key="launch_tags")
    notes = right.text_input("notes", value="", help="Free text kept with the run", key="launch_notes")
    return {"seeds": seeds, "tags": tags, "notes": notes}


def _show_error(slots: dict[str, Any], error: FieldError) -> None:
    slot = slots.get(error.field)
    if slot is not None:
        slot.error(error.message)
    st.error(f"Not launched: {error.message}")


def _launch_single(values: dict[str, Any], extras: dict[str, str], slots: dict[str, Any]) -> None:
    try:
        seeds = parse_seeds(extras["seeds"])
    except ConfigError as error:
        return _show_error(slots, FieldError("seed", error_sentence(error)))
    config, error = validate({**values, "seed": seeds[0]})
    if error is not None:
        return _show_error(slots, error)
    tags, notes = parse_tags(extras["tags"]), extras["notes"]
    lab = api()
    resolved, note = _with_demos(config.to_dict(), [config.to_dict()], slots)
    if resolved is None:
        return None
    config = config.replace(demos=resolved["demos"])
    if len(seeds) == 1:
        launched, reason = _submit(slots, lab.launch, config, tags=tags, notes=notes)
        run_ids = [launched]
    else:
        launched, reason = _submit(slots, lab.launch_sweep, config.to_dict(), {"seed": seeds}, f"{config.name}-seeds")
        run_ids = launched[1] if launched else []
    if reason is None:
        _launched(run_ids, note=note)


def _launch_preset(preset, values: dict[str, Any], extras: dict[str, str], slots: dict[str, Any]) -> None:
    try:
        seeds = parse_seeds(extras["seeds"])
    except ConfigError as error:
        return _show_error(slots, FieldError("seed", error_sentence(error)))
    base, grid = preset.build({**values, "seed": seeds[0]})
    grid = with_seeds(grid, seeds)
    failure = validate_sweep(base, grid)
    if failure is not None:
        arm, error = failure
        return _show_error(slots, FieldError(error.field, refusal_sentence(preset, arm, error)))
    base, note = _with_demos(base, expand(base, grid), slots)
    if base is None:
        return None
    launched, reason = _submit(slots, api().launch_sweep, base, grid, sweep_name(preset, base), preset=preset)
    if reason is None:
        _launched(launched[1], f"{preset.title}: {len(expand(base, grid))} runs queued", note=note)


def _with_demos(
    base: dict[str, Any], arms: list[dict[str, Any]], slots: dict[str, Any]
) -> tuple[dict[str, Any] | None, str | None]:
    """Expert demos made for the sft runs when the demos picker asks for them (None: could not make them)."""
    try:
        with st.spinner("Making expert demos for the sft runs..."):
            return expert_demos.resolve(base, arms, api().artifact_path)
    except (OSError, RuntimeError, ValueError) as error:
        _show_error(slots, FieldError("demos", f"Demos: the expert demos could not be made: {error}"))
        return None, None


def _submit(slots: dict[str, Any], action, *args, preset=None, **kwargs) -> tuple[Any, str | None]:
    """Call the API; its refusal shows inline (a ConfigError next to its field) instead of a traceback."""
    try:
        return action(*args, **kwargs), None
    except ConfigError as error:  # the API validates again, e.g. that a checkpoint exists
        message = error_sentence(error) if preset is None else refusal_sentence(preset, {}, error)
        _show_error(slots, FieldError(error.field, message))
        return None, message
    except action_errors() as error:  # e.g. the broker did not take the message
        st.error(f"Not launched: {error}")
        return None, str(error)


def _launched(run_ids: list[int], headline: str = "", note: str | None = None) -> None:
    st.success(
        headline or f"Queued run{'s' if len(run_ids) > 1 else ''} " + ", ".join(f"#{run_id}" for run_id in run_ids)
    )
    if note:
        st.caption(note.capitalize() + ".")
    st.page_link(
        navigation.page("compare"),
        label="Watch them on Compare",
        icon=":material/monitoring:",
        query_params={"runs": [str(run_id) for run_id in run_ids]},
    )
