"""The Launch form on the dual-arm twin env: suites and tasks from the registry's twin catalogue, expert demos made
by the twin's scripted expert for sft arms, and the checkpoint pickers defaulting to the shipped twin teacher and
student (assets/twin)."""

from pathlib import Path

import pytest

from app.forms import suite_choices, task_choices
from opd_core.envs.twin.tasks import CATALOG as TWIN
from opd_core.registry import task_catalog

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_TWIN = ROOT / "assets/twin"


def test_suites_and_tasks_come_from_the_chosen_envs_catalogue():
    assert suite_choices("twin") == list(task_catalog("twin").suites) == ["twin", "pretrain", "unseen"]
    assert suite_choices("tabletop")[:1] != ["twin"] and "twin" not in suite_choices("tabletop")
    assert task_choices("twin", "twin", "tasks") == TWIN.suite_tasks("twin")
    assert "twin/beat_block_hammer" in task_choices("twin", "twin", "tasks")
    assert task_choices("twin", "object", "tasks") == []  # a tabletop suite has no twin tasks
    unseen = task_choices("twin", "twin", "unseen_tasks")
    assert unseen[:4] == TWIN.suite_tasks("unseen") and set(TWIN.suite_tasks("pretrain")) <= set(unseen)
    assert not any(task.startswith("object/") for task in unseen)
    assert suite_choices("libero") == [] or "libero_object" in suite_choices("libero")  # typed unless installed


def test_sft_arms_get_the_twin_experts_demos_in_their_own_folder(tmp_path):
    from app import expert_demos
    from app.presets import PRESETS_BY_KEY, expand

    made = []
    base = {"env": "twin", "suite": "twin", "tasks": [], "unseen_tasks": [], "demos": expert_demos.GENERATE}
    base, grid = PRESETS_BY_KEY["forgetting"].build({**base, "num_demos": 2})
    assert base["unseen_tasks"] == TWIN.suite_tasks("unseen")  # the twin's held-out compositions
    resolved, note = expert_demos.resolve(
        base, expand(base, grid), lambda rel: tmp_path / rel, make=lambda *args: made.append(args)
    )
    assert resolved["demos"] == "demos/twin/twin" and "10 twin tasks" in note
    assert made == [(TWIN.suite_tasks("twin"), 2, tmp_path / "demos/twin/twin")]


def test_the_twin_expert_writes_14_dimensional_demos_once(tmp_path):
    from app import expert_demos
    from opd_core.data import load_demos

    task = "twin/handover_block"
    base = {"env": "twin", "suite": "twin", "tasks": [task], "pipeline": "sft", "num_demos": 1}
    base["demos"] = expert_demos.GENERATE
    resolved, note = expert_demos.resolve(base, [base], lambda rel: tmp_path / rel)
    demos = load_demos(tmp_path / resolved["demos"], 1)
    assert demos.actions.shape[-1] == 14 and note is not None
    again, note = expert_demos.resolve(base, [base], lambda rel: tmp_path / rel, make=lambda *a: pytest.fail("twice"))
    assert again["demos"] == resolved["demos"] and note is None


def test_the_shipped_twin_checkpoints_are_offered_with_their_roles():
    from app.checkpoints import default_for, ordered_for, shipped_checkpoints

    choices = shipped_checkpoints()
    twin = {c.role: c for c in choices if c.env == "twin"}
    assert set(twin) == {"base", "teacher", "student"}
    assert Path(twin["teacher"].path) == (SHIPPED_TWIN / "twin/teacher").resolve()
    assert twin["teacher"].label.startswith("twin teacher · shipped · seen ")
    assert twin["student"].label.startswith("twin 50-demo student · shipped · seen ")
    assert twin["base"].label.startswith("twin pre-trained base · shipped")
    assert default_for(choices, "teacher_checkpoint", "twin", "twin") == twin["teacher"].path
    assert default_for(choices, "student_checkpoint", "twin", "twin") == twin["student"].path
    assert ordered_for(choices, "student_checkpoint", "pretrain", "twin")[0].path == twin["base"].path
    tabletop_base = next(c for c in choices if c.role == "base" and c.env == "tabletop")
    assert ordered_for(choices, "student_checkpoint", "pretrain", "tabletop")[0].path == tabletop_base.path


# ---- the Launch page, switched to the twin env -------------------------------------------------------------
@pytest.fixture
def launch(tmp_path):
    from streamlit.testing.v1 import AppTest

    from app import backend
    from test_app_fakes import FakeApi

    lab = FakeApi(data_dir=str(tmp_path))
    backend.install(lab)

    def script():
        from app.main import main

        main(default="launch")

    at = AppTest.from_function(script, default_timeout=30).run()
    at.selectbox(key="launch_env").set_value("twin").run()
    yield lab, at
    backend.uninstall()


def test_choosing_twin_offers_its_suites_tasks_and_shipped_checkpoints(launch):
    lab, at = launch
    assert not at.exception
    assert list(at.selectbox(key="launch_suite").options) == ["twin", "pretrain", "unseen"]
    assert at.selectbox(key="launch_suite").value == "twin"
    assert not [t for t in at.text_input if t.key == "launch_suite_text"]
    tasks = at.multiselect(key="launch_tasks_twin")
    assert list(tasks.options) == TWIN.suite_tasks("twin")
    assert at.selectbox(key="launch_teacher_checkpoint").value == str((SHIPPED_TWIN / "twin/teacher").resolve())
    assert at.selectbox(key="launch_student_checkpoint").value == str((SHIPPED_TWIN / "twin/student").resolve())
    from app import expert_demos

    assert at.selectbox(key="launch_demos").value == expert_demos.GENERATE


def test_the_forgetting_study_launches_on_twin_with_twin_demos(launch, monkeypatch):
    from app import expert_demos
    from app.presets import expand

    made = []
    monkeypatch.setattr(expert_demos, "generate", lambda tasks, n, folder, env: made.append((len(tasks), env)))
    lab, at = launch
    labels = [button.label for button in at.button]
    at.button[labels.index("Forgetting study")].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (call,) = [c for c in lab.calls if c[0] == "launch_sweep"]
    base, grid = call[1], call[2]
    assert base["env"] == "twin" and base["suite"] == "twin" and base["demos"] == "demos/twin/twin"
    assert base["teacher_checkpoint"].endswith("twin/teacher") and base["student_checkpoint"].endswith("twin/student")
    assert base["unseen_tasks"] == TWIN.suite_tasks("unseen")
    assert {arm["pipeline"] for arm in expand(base, grid)} == {"sft", "grpo", "opd"}
    assert made == [(10, "twin")]
