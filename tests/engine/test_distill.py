"""Distill runs on real data: a trained digits CNN teaches a much smaller student; the soft and
hard loss parts, the teacher's accuracy and the student's curves are logged; feature matching
trains a projection that stays out of the student; student presets; bad input refused early."""

from __future__ import annotations

import copy
import json

import pytest

from engine import checkpoint
from engine.errors import GraphError, SpecError
from engine.graph.build import build
from engine.graph.model import Graph
from engine.graph.shapes import analyze
from engine.graph.shrink import half_depth, half_width, output_head
from engine.runner import execute
from engine.spec import validate_spec
from tests.conftest import EXAMPLES, TEMPLATES
from tests.engine.trained_parent import one_thread, parent_fixture  # noqa: F401 - fixtures

teacher = parent_fixture("teacher")


def distill_doc(teacher_id: int, **distill) -> dict:
    doc = json.loads((EXAMPLES / "digits_cnn_distill.json").read_text())
    doc["distill"].update({"teacher": teacher_id, **distill})
    return doc


def test_distilled_quarter_width_student_reaches_90_percent(teacher):
    store, teacher_id = teacher
    spec = validate_spec(distill_doc(teacher_id), base_dir=EXAMPLES, store=store)
    run_id, status = execute(store.path, spec)
    run = store.get_run(run_id)
    assert status == "completed", run["error"]
    s, t = run["summary"], store.get_run(teacher_id)["summary"]

    assert run["parent_id"] == teacher_id and run["kind"] == "distill"
    assert s["params"] <= t["params"] / 4
    assert s["val/accuracy"] >= 0.90
    assert s["teacher/accuracy"] == pytest.approx(t["val/accuracy"])
    c = s["compression"]
    assert c["before"]["params"] == t["params"] and c["after"]["params"] == s["params"]

    series = store.series_summaries(run_id)
    assert series["teacher/accuracy"]["count"] == 1  # the teacher, measured once
    assert series["val/accuracy"]["count"] >= 8  # the student, every epoch
    assert series["train/soft"]["count"] == series["train/hard"]["count"] == s["steps"]
    # The loss is alpha * soft + (1 - alpha) * hard
    steps = store.series(run_id, "train/loss")[1][-5:]
    soft, hard = store.series(run_id, "train/soft")[1][-5:], store.series(run_id, "train/hard")[1][-5:]
    assert steps == pytest.approx(0.9 * soft + 0.1 * hard, rel=1e-4)

    # The checkpoint rebuilds the student from its graph alone.
    state = checkpoint.load(store.last_checkpoint(run_id)["path"])
    build(Graph.from_dict(state["graph"])).load_state_dict(state["model"])
    assert "aux" not in state


def test_feature_matching_trains_a_projection_beside_the_student(teacher):
    store, teacher_id = teacher
    doc = distill_doc(teacher_id, feature_teacher="relu2", feature_student="relu2", feature_weight=0.5)
    doc["train"]["epochs"] = 1
    spec = validate_spec(doc, base_dir=EXAMPLES, store=store)
    run_id, status = execute(store.path, spec)
    assert status == "completed", store.get_run(run_id)["error"]
    assert "train/feature" in store.series_summaries(run_id)
    state = checkpoint.load(store.last_checkpoint(run_id)["path"])
    assert state["aux"]["module"]["weight"].shape == (64, 16, 1, 1)  # 16 student → 64 teacher channels
    build(Graph.from_dict(state["graph"])).load_state_dict(state["model"])  # the projection is not in it
    # A resume restores the projection too (here: straight to the final evaluation).
    store.finish_run(run_id, "stopped")
    assert execute(store.path, resume_run=run_id) == (run_id, "completed")


def test_alpha_zero_is_exactly_plain_training_of_the_student(teacher):
    """With no weight on the teacher the run is the plain student's, step for step: loading the
    teacher leaves the random numbers alone, so both start from the same weights (which is what
    makes a distilled-vs-plain comparison fair)."""
    store, teacher_id = teacher
    doc = distill_doc(teacher_id, alpha=0.0)
    doc["train"]["epochs"] = 1
    kd_id, _ = execute(store.path, validate_spec(doc, base_dir=EXAMPLES, store=store))
    plain = copy.deepcopy(doc)
    plain["task"], plain["data"] = {"kind": "train"}, {"source": "digits"}
    del plain["distill"]
    plain_id, _ = execute(store.path, validate_spec(plain, base_dir=EXAMPLES))
    kd, ref = store.get_run(kd_id)["summary"], store.get_run(plain_id)["summary"]
    assert kd["val/loss"] == ref["val/loss"] and kd["val/accuracy"] == ref["val/accuracy"]


def test_half_width_preset_is_the_default_student(teacher):
    store, teacher_id = teacher
    doc = {"task": {"kind": "distill"}, "distill": {"teacher": teacher_id}}
    spec = validate_spec(doc, store=store)
    assert spec["distill"]["student"] == "half_width"
    widths = {n["id"]: n["params"] for n in spec["model"]["nodes"]}
    assert widths["conv1"]["out_channels"] == 16 and widths["head"]["out_features"] == 10
    assert spec["data"]["source"] == "digits"  # inherited from the teacher's run
    assert validate_spec(spec, store=store) == spec  # resolving again changes nothing


# ------------------------------------------------------------------ presets


def test_half_width_halves_everything_but_the_output_head():
    cnn = Graph.load(TEMPLATES / "cnn.json")
    student = half_width(cnn)
    assert output_head(cnn) == ["head"]
    assert analyze(student).total_params / analyze(cnn).total_params == pytest.approx(0.253, abs=0.01)
    gpt = Graph.load(TEMPLATES / "gpt.json")
    small = half_width(gpt)
    assert analyze(small).ok and analyze(small).output_type == analyze(gpt).output_type


def test_half_depth_drops_every_other_block_and_halves_repeats():
    resnet = Graph.load(TEMPLATES / "resnet_cnn.json")
    student = half_depth(resnet)
    assert "b1_conv1" in student.nodes and "b2_conv1" not in student.nodes
    assert analyze(student).ok and analyze(student).output_type == analyze(resnet).output_type
    gpt = half_depth(Graph.load(TEMPLATES / "gpt.json"))
    assert gpt.nodes["blocks"].params["times"] == 2
    with pytest.raises(GraphError, match="half_depth found nothing to drop"):
        half_depth(Graph.load(TEMPLATES / "cnn.json"))


# ------------------------------------------------------------------ bad input, before any work


def test_teacher_and_student_output_sizes_must_match(teacher):
    store, teacher_id = teacher
    doc = distill_doc(teacher_id)
    head = next(n for n in doc["model"]["nodes"] if n["id"] == "head")
    head["params"]["out_features"] = 5
    runs = len(store.list_runs())
    with pytest.raises(SpecError) as err:
        validate_spec(doc, base_dir=EXAMPLES, store=store)
    assert err.value.problems == [
        ("model", f"the student's output is 5, the teacher's (run {teacher_id}) is 10; they must match")
    ]
    spec = validate_spec(distill_doc(teacher_id), base_dir=EXAMPLES)  # no store: checked when run
    spec["model"] = validate_spec(doc, base_dir=EXAMPLES)["model"]
    with pytest.raises(SpecError, match="the student's output is 5"):
        execute(store.path, spec)
    assert len(store.list_runs()) == runs


@pytest.mark.parametrize(
    "change, where, message",
    [
        ({"student": "half_depth"}, "distill.student", "half_depth does not fit this teacher"),
        (
            {"feature_teacher": "nope", "feature_student": "relu2"},
            "distill.feature_teacher",
            "no layer 'nope'",
        ),
        ({"feature_teacher": "relu2", "feature_student": "fc"}, "distill.feature_student", "1-d"),
        ({"teacher": 9999}, "distill.teacher", "there is no run 9999"),
    ],
)
def test_distill_mistakes_are_located(teacher, change, where, message):
    store, teacher_id = teacher
    doc = distill_doc(teacher_id, **change)
    if change.get("student") == "half_depth":
        del doc["model"]
    with pytest.raises(SpecError) as err:
        validate_spec(doc, base_dir=EXAMPLES, store=store)
    assert [p for p in err.value.problems if p[0] == where and message in p[1]], err.value.problems


def test_a_given_model_conflicts_with_a_preset(teacher):
    store, teacher_id = teacher
    doc = distill_doc(teacher_id, student="half_width")
    with pytest.raises(SpecError, match="model: is given but distill.student is 'half_width'"):
        validate_spec(copy.deepcopy(doc), base_dir=EXAMPLES, store=store)
