"""The Experiments browser on a real store: runs from real short training plus many synthetic
ones. Filter, sort, select, compare, edit, delete, clone — driven as a user does."""

from __future__ import annotations

import csv
import shutil
import sqlite3

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRectF, Qt
from PySide6.QtWidgets import QMessageBox, QTableView

from app.experiments.catalog import RunCatalog, RunFilter
from app.experiments.hparams import BEST_ROLE, DIFF_ROLE
from app.experiments.table_model import RUN_ID_ROLE, RunTableModel
from engine.compare import compare_table, pareto_front
from engine.runner import execute
from engine.store import RunStore
from tests.app.experiments_synthetic import add_synthetic_runs, open_area
from tests.conftest import example

LRS = (0.003, 0.01, 0.03)
SYNTHETIC = 300
Yes, Cancel = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.Cancel


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """Three real wine runs (2 epochs, lr 0.003 / 0.01 / 0.03), then synthetic runs with
    prune → distill families. Read-only: tests that change runs copy it first."""
    db = tmp_path_factory.mktemp("experiments") / "runs.db"
    real = []
    for lr in LRS:
        run_id, status = execute(db, example("wine_csv", train={"epochs": 2}, optim={"lr": lr}))
        assert status == "completed"
        real.append(run_id)
    store = RunStore(db)
    synthetic = add_synthetic_runs(store, example("digits_mlp"), SYNTHETIC, points=120, families=3)
    store.set_fields(real[0], tags=["reference"], notes="the reference run")
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return db, real, synthetic


@pytest.fixture
def db_copy(populated, tmp_path):
    db, real, synthetic = populated
    copy = tmp_path / "copy.db"
    shutil.copy(db, copy)
    return copy, real, synthetic


def click_row(qtbot, area, run_id: int, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    view = area.browser.table
    row = area.model.display_row(run_id)
    index = area.model.index(row, area.model.columns.index("name"))
    view.scrollTo(index)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, modifier, view.visualRect(index).center())


def shown_ids(area) -> list[int]:
    return area.model.shown_ids()


# ------------------------------------------------------------------ the table


def test_table_lists_every_run_and_reads_spec_columns_lazily(qtbot, populated):
    db, real, synthetic = populated
    catalog = RunCatalog(RunStore(db))
    model = RunTableModel(catalog)
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.resize(900, 400)
    view.show()
    qtbot.waitExposed(view)
    assert model.rowCount() == len(real) + len(synthetic)
    assert model.shown_ids()[:3] == sorted(synthetic, reverse=True)[:3]  # newest first
    lr = model.columns.index("spec:optim.lr")
    qtbot.waitUntil(lambda: model.data(model.index(0, lr)) is not None)
    # only a block of rows around the painted ones was read, not every spec
    assert 0 < catalog.fetched("spec:optim.lr") < model.rowCount()
    last = model.index(model.rowCount() - 1, lr)
    assert model.data(last, RUN_ID_ROLE) == real[0]
    view.scrollToBottom()
    qtbot.waitUntil(lambda: model.data(last) is not None)
    assert model.data(last) == "0.003"
    assert (
        catalog.get("metric:val/accuracy", catalog.index[real[0]])
        == RunStore(db).series_summaries(real[0])["val/accuracy"]["last"]
    )


def test_the_catalog_sorts_filters_and_builds_the_lineage_forest_on_its_own(populated):
    """The Qt-free half of the table: what the model only adapts."""
    db, real, synthetic = populated
    catalog = RunCatalog(RunStore(db))
    lrs = catalog.values("spec:optim.lr")
    order = catalog.order(lrs, descending=True)
    assert [lrs[r] for r in order] == sorted(lrs, reverse=True)
    accs = catalog.values("metric:val/accuracy")
    ranked = catalog.order(accs)
    present = [accs[r] for r in ranked if accs[r] is not None]
    assert present == sorted(present) and all(accs[r] is None for r in ranked[len(present) :])

    everything = list(range(len(catalog)))
    wine = catalog.matching(everything, RunFilter(text="wine"))
    assert {catalog.ids[r] for r in wine} == set(real)
    one = catalog.matching(everything, RunFilter(text=f"#{real[1]}", statuses=frozenset({"completed"})))
    assert [catalog.ids[r] for r in one] == [real[1]]

    store = RunStore(db)
    distill = next(r for r in synthetic if store.get_run(r)["kind"] == "distill")
    prune = store.get_run(distill)["parent_id"]
    train = store.get_run(prune)["parent_id"]
    forest = catalog.forest([catalog.index[distill]], everything)
    assert forest.children == {0: [train], train: [prune], prune: [distill]}
    assert forest.context == {train, prune} and forest.parent[distill] == prune

    # a reload keeps the columns fetched whole (the table is sorted by them)
    catalog.load()
    assert catalog.fetched("spec:optim.lr") == len(catalog) and catalog.fetched("spec:train.epochs") == 0


def test_filter_by_text_status_kind_tag_and_starred(qtbot, populated):
    db, real, synthetic = populated
    area = open_area(qtbot, db)
    b = area.browser
    qtbot.keyClicks(b.search, "wine")
    qtbot.waitUntil(lambda: set(shown_ids(area)) == set(real))
    b.search.clear()
    qtbot.waitUntil(lambda: area.model.rowCount() == len(real) + len(synthetic))

    with sqlite3.connect(db) as c:
        failed = {r for (r,) in c.execute("SELECT id FROM runs WHERE status='failed'")}
        prunes = {r for (r,) in c.execute("SELECT id FROM runs WHERE kind='prune'")}
        ablation = {r for (r,) in c.execute("SELECT id FROM runs WHERE tags LIKE '%\"ablation\"%'")}
    b.status_box.setCurrentIndex(b.status_box.findData("failed"))
    assert set(shown_ids(area)) == failed and failed
    b.status_box.setCurrentIndex(0)
    b.kind_box.setCurrentIndex(b.kind_box.findData("prune"))
    assert set(shown_ids(area)) == prunes and len(prunes) == 3
    b.kind_box.setCurrentIndex(0)
    b.tag_box.setCurrentIndex(b.tag_box.findData("ablation"))
    assert set(shown_ids(area)) == ablation and ablation
    b.tag_box.setCurrentIndex(b.tag_box.findData("reference"))
    assert shown_ids(area) == [real[0]]
    b.tag_box.setCurrentIndex(0)
    qtbot.keyClicks(b.search, "#" + str(real[1]))
    qtbot.waitUntil(lambda: shown_ids(area) == [real[1]])
    assert b.count.text() == f"1 of {len(real) + len(synthetic):,} runs"


def test_sort_by_a_hyperparameter_and_by_a_metric(qtbot, populated):
    db, real, synthetic = populated
    area = open_area(qtbot, db)
    header = area.browser.table.horizontalHeader()
    lr = area.model.columns.index("spec:optim.lr")
    at = QPoint(header.sectionViewportPosition(lr) + 10, header.height() // 2)
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=at)
    store = RunStore(db)
    lrs = [store.get_run(r)["spec"]["optim"]["lr"] for r in shown_ids(area)]
    assert lrs == sorted(lrs) != sorted(lrs, reverse=True)

    acc = area.model.columns.index("metric:val/accuracy")
    header.setSortIndicator(acc, Qt.SortOrder.DescendingOrder)
    finals = [store.series_summaries(r).get("val/accuracy", {}).get("last") for r in shown_ids(area)]
    present = [f for f in finals if f is not None]
    assert present == sorted(present, reverse=True)
    assert finals[: len(present)] == present  # runs without the metric sort last


def test_choose_columns_from_the_header_menu(qtbot, populated):
    db, real, _ = populated
    area = open_area(qtbot, db)
    menu = area.browser.column_menu()
    titles = [a.text() for a in menu.actions()]
    assert "Hyperparameters" in titles and "Final metrics" in titles
    area.browser.toggle_column("best:val/loss", True)
    area.browser.toggle_column("tags", False)
    assert "best:val/loss" in area.model.columns and "tags" not in area.model.columns
    col = area.model.columns.index("best:val/loss")
    area.catalog.ensure(["best:val/loss"])
    row = area.model.display_row(real[0])
    best = RunStore(db).series_summaries(real[0])["val/loss"]["min"]
    assert area.model.data(area.model.index(row, col)) == f"{best:.4g}"


def test_lineage_tree_puts_prune_and_distill_runs_under_their_parent(qtbot, populated):
    db, real, synthetic = populated
    area = open_area(qtbot, db)
    area.browser.tree_toggle.click()
    tree = area.browser.tree_model
    store = RunStore(db)
    distill = next(r for r in synthetic if store.get_run(r)["kind"] == "distill")
    prune = store.get_run(distill)["parent_id"]
    train = store.get_run(prune)["parent_id"]
    index = tree.index_of(distill)
    assert index.parent().internalId() == prune
    assert index.parent().parent().internalId() == train
    assert not index.parent().parent().parent().isValid()
    # a filter matching only the child keeps its ancestors, greyed, for context
    area.browser.search.setText(f"#{distill}")
    area.browser.apply_filter()
    assert tree.rowCount() == 1 and tree.is_context(train) and tree.is_context(prune)
    assert tree.index_of(distill).parent().internalId() == prune


# ------------------------------------------------------------------ select three, compare


def test_select_three_runs_and_compare_curves_and_hyperparameters(qtbot, populated):
    db, real, _ = populated
    area = open_area(qtbot, db)
    area.browser.search.setText("wine")
    area.browser.apply_filter()
    click_row(qtbot, area, real[0])
    click_row(qtbot, area, real[1], Qt.KeyboardModifier.ControlModifier)
    click_row(qtbot, area, real[2], Qt.KeyboardModifier.ControlModifier)
    assert sorted(area.selection) == sorted(real)
    assert area.run_actions["compare"].isEnabled() and area.mode_compare.text() == "Compare (3)"
    area.run_actions["compare"].trigger()
    compare = area.compare
    assert area.pages.currentWidget() is compare
    qtbot.waitUntil(lambda: "train/loss" in compare._series)  # noqa: SLF001 - the first plot loaded when shown

    store = RunStore(db)
    plot = compare.plots["train/loss"]
    assert sorted(plot.curves) == sorted(real)
    for rid, curve in plot.curves.items():
        steps, values, _ = store.series(rid, "train/loss")
        assert np.array_equal(curve.buffer.x, steps) and np.array_equal(curve.buffer.y, values)
        x, y = curve.raw.getOriginalDataset()
        assert np.array_equal(x, steps) and np.array_equal(y, values)  # every stored point, raw
        assert curve.line.opts["pen"].color() == curve.color

    table = compare.table_model
    assert table.differing_keys() == ["optim.lr"]
    rows = [table.row(i) for i in range(table.rowCount())]
    assert [r.key for r in rows if r.section == "params" and r.key] == ["optim.lr"]  # only differences
    diff_row = table.find("params", "optim.lr")
    assert all(table.index(diff_row, c).data(DIFF_ROLE) for c in range(1, 4))
    run_order = [r["id"] for r in table.runs]
    finals = {rid: store.series_summaries(rid) for rid in run_order}
    best_loss = min(run_order, key=lambda r: finals[r]["val/loss"]["last"])
    best_row = table.find("final_metrics", "val/loss")
    marked = [run_order[c - 1] for c in range(1, 4) if table.index(best_row, c).data(BEST_ROLE)]
    assert marked == [best_loss]
    assert "★" in table.index(best_row, run_order.index(best_loss) + 1).data()
    lowest = min(finals[r]["val/loss"]["min"] for r in run_order)
    best_of_best = table.find("best_metrics", "val/loss")
    assert [run_order[c - 1] for c in range(1, 4) if table.index(best_of_best, c).data(BEST_ROLE)] == [
        r for r in run_order if finals[r]["val/loss"]["min"] == lowest
    ]
    # the same table `trainbench compare` prints
    headless = compare_table(store, run_order, show_all=True)
    assert headless["differing"] == ["optim.lr"] and headless["winners"]["final_metrics"]["val/loss"] == [
        run_order.index(best_loss)
    ]
    compare.only_diff.setChecked(False)
    assert "train.epochs" in [table.row(i).key for i in range(table.rowCount())]
    assert table.index(table.find("params", "train.epochs"), 1).data(DIFF_ROLE) is False


# ------------------------------------------------------------------ edits


def test_rename_notes_tags_and_star_are_saved(qtbot, db_copy):
    db, real, _ = db_copy
    area = open_area(qtbot, db)
    click_row(qtbot, area, real[1])
    area.run_actions["rename"].trigger()
    editor = area.browser.table.focusWidget()
    editor.selectAll()
    qtbot.keyClicks(editor, "wine, fast lr")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    area.details.toggle_notes_editing()
    qtbot.keyClicks(area.details.notes_edit, "**Diverged** after epoch 1")
    area.details.toggle_notes_editing()
    area.details.tags.setText("fast, #lr-search")
    area.details.tags.editingFinished.emit()
    star = area.model.columns.index("starred")
    row = area.model.display_row(real[1])
    view = area.browser.table
    qtbot.mouseClick(
        view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualRect(area.model.index(row, star)).center()
    )

    run = RunStore(db).get_run(real[1])
    assert run["name"] == "wine, fast lr" and run["notes"] == "**Diverged** after epoch 1"
    assert run["tags"] == ["fast", "lr-search"] and run["starred"] == 1
    assert "Diverged" in area.details.notes_view.toPlainText()
    assert "**" not in area.details.notes_view.toPlainText()  # rendered, not the source
    assert area.browser.tag_box.findData("lr-search") > 0


def test_delete_asks_then_removes_only_that_runs_rows_and_checkpoint_files(qtbot, tmp_path, dialogs):
    db = tmp_path / "del.db"
    keep, _ = execute(db, example("wine_csv", train={"epochs": 2}))
    gone, _ = execute(db, example("wine_csv", train={"epochs": 2}, optim={"lr": 0.02}))
    store = RunStore(db)
    child = store.create_run({"name": "child"}, kind="prune", parent_id=gone, status="completed")
    gone_files = [c["path"] for c in store.checkpoints(gone)]
    keep_files = [c["path"] for c in store.checkpoints(keep)]
    assert gone_files and keep_files and all(map(_exists, gone_files + keep_files))

    def count(table: str, run_id: int) -> int:
        if table == "metric_chunks":
            sql = "SELECT COUNT(*) FROM metric_chunks WHERE series_id IN (SELECT id FROM metric_series WHERE run_id=?)"
        else:
            sql = f"SELECT COUNT(*) FROM {table} WHERE {'id' if table == 'runs' else 'run_id'}=?"
        return store.conn.execute(sql, (run_id,)).fetchone()[0]

    tables = ("runs", "metric_series", "metric_chunks", "checkpoints")
    before = {t: count(t, keep) for t in tables}
    area = open_area(qtbot, db)
    click_row(qtbot, area, gone)
    dialogs.answers = [Cancel]
    area.run_actions["delete"].trigger()
    assert dialogs.shown[-1][0] == "question" and "2 checkpoint files" in dialogs.shown[-1][2]
    assert "1 run derived from it stays" in dialogs.shown[-1][2]
    assert count("runs", gone) == 1 and all(map(_exists, gone_files))

    dialogs.answers = [Yes]
    area.run_actions["delete"].trigger()
    assert all(count(t, gone) == 0 for t in tables)
    assert not any(map(_exists, gone_files))
    assert {t: count(t, keep) for t in tables} == before and all(map(_exists, keep_files))
    assert store.get_run(child)["parent_id"] is None
    assert gone not in area.model.shown_ids() and keep in area.model.shown_ids()


def test_running_runs_cannot_be_deleted(qtbot, tmp_path):
    db = tmp_path / "run.db"
    store = RunStore(db)
    rid = store.create_run({"name": "live"})
    store.start_run(rid)
    area = open_area(qtbot, db)
    area.select([rid])
    assert not area.run_actions["delete"].isEnabled()
    assert "Stop the run" in area.run_actions["delete"].toolTip()


def test_clone_sends_the_runs_spec_and_open_model_its_graph(qtbot, populated):
    db, real, _ = populated
    area = open_area(qtbot, db)
    area.select([real[2]])
    spec = RunStore(db).get_run(real[2])["spec"]
    with qtbot.waitSignal(area.clone_requested) as sent:
        area.run_actions["clone"].trigger()
    assert sent.args[0] == spec
    with qtbot.waitSignal(area.open_model_requested) as sent:
        area.run_actions["open_model"].trigger()
    assert sent.args[0] == spec["model"]


def test_export_a_runs_metrics_and_the_table_to_csv(qtbot, populated, tmp_path):
    db, real, _ = populated
    area = open_area(qtbot, db)
    area.select([real[0]])
    out = area.export_metrics(tmp_path / "m.csv")
    rows = list(csv.DictReader(out.open()))
    steps, values, _ = RunStore(db).series(real[0], "train/loss")
    loss = [r for r in rows if r["metric"] == "train/loss"]
    assert [int(r["step"]) for r in loss] == steps.tolist()
    assert [float(r["value"]) for r in loss] == values.tolist()

    area.browser.search.setText("wine")
    area.browser.apply_filter()
    table = list(csv.reader(area.export_table(tmp_path / "t.csv").open()))
    assert table[0][:3] == ["starred", "id", "name"] and "spec:optim.lr" in table[0]
    assert sorted(int(r[1]) for r in table[1:]) == sorted(real)
    lr = table[0].index("spec:optim.lr")
    assert sorted(float(r[lr]) for r in table[1:]) == sorted(LRS)


def test_runs_added_elsewhere_appear_on_the_next_poll(qtbot, db_copy):
    db, real, synthetic = db_copy
    area = open_area(qtbot, db)
    area.select([real[0]])
    other = RunStore(db)  # another process's connection
    new = other.create_run({"name": "from-the-cli"})
    area.poll()
    assert area.model.rowCount() == len(real) + len(synthetic) + 1
    assert area.model.shown_ids()[0] == new and area.selection == [real[0]]
    other.start_run(new)
    other.finish_run(new, "failed", error="boom")
    area.poll()
    assert area.catalog.rows["status"][area.catalog.index[new]] == "failed"


# ------------------------------------------------------------------ many runs: parallel coordinates, scatter


def test_brushing_the_metric_axis_filters_the_table(qtbot, populated):
    db, real, synthetic = populated
    area = open_area(qtbot, db)
    area.explore.setCurrentWidget(area.parallel)
    par = area.parallel
    qtbot.waitUntil(lambda: bool(par.axes))
    assert par.axes[-1].column == "metric:val/accuracy" and "spec:optim.lr" in [a.column for a in par.axes]
    metric = par.axes[-1]
    with qtbot.waitSignal(par.brush_changed):
        par.drag_brush(len(par.axes) - 1, 0.5, 1.0, finished=True)
    accs = dict(zip(par.ids.tolist(), area.catalog.values("metric:val/accuracy", par.rows), strict=True))
    cut = metric.value_at(0.5)
    expected = {r for r, a in accs.items() if a is not None and a >= cut - 1e-12}
    assert set(area.model.shown_ids()) == expected and 0 < len(expected) < len(accs)
    # clicking the axis outside its brush clears it
    par.click(len(par.axes) - 1, 0.1, False)
    assert area.model.rowCount() == len(real) + len(synthetic)


def test_scatter_marks_the_pareto_front_and_selection_is_linked(qtbot, populated):
    db, real, synthetic = populated
    area = open_area(qtbot, db)
    area.explore.setCurrentWidget(area.scatter)
    sc = area.scatter
    qtbot.waitUntil(lambda: sc.x_box.count() > 0)
    sc.set_fields("summary:params", "metric:val/accuracy")
    assert sc.goals() == ("min", "max")
    params = area.catalog.values("summary:params", sc.rows)
    accs = area.catalog.values("metric:val/accuracy", sc.rows)
    front = {int(sc.ids[i]) for i in pareto_front(params, accs, "min", "max")}
    assert set(sc.front_ids()) == front and front
    # a rectangle selects the runs inside it in the table; the table's selection shows here
    sc.select_rect(QRectF(0, 0.9, 1e9, 0.2), additive=False)
    inside = {
        int(sc.ids[i]) for i, a in enumerate(accs) if a is not None and a >= 0.9 and params[i] is not None
    }
    assert set(area.selection) == inside and inside
    click_row(qtbot, area, real[0])
    assert sc.selected == {real[0]} and area.parallel.selected == {real[0]}


def _exists(path: str) -> bool:
    from pathlib import Path

    return Path(path).exists()


def test_comparing_a_pruned_run_with_its_parent_shows_size_speed_and_accuracy(qtbot, populated):
    db, _, synthetic = populated
    store = RunStore(db)
    child = next(r for r in synthetic if store.get_run(r)["kind"] == "prune")
    parent = store.get_run(child)["parent_id"]
    area = open_area(qtbot, db)
    area.select([parent, child])
    area.show_compare()
    table = area.compare.table_model
    row = table.find("tradeoff", "latency_ms")
    order = [r["id"] for r in table.runs]  # table order: the newer child first
    latency = dict(zip(order, table.row(row).values, strict=True))
    assert latency == {parent: 2.0, child: 0.9}  # the parent measured beside its child
    assert table.index(row, order.index(child) + 1).data(BEST_ROLE)
    assert not table.index(row, order.index(parent) + 1).data(BEST_ROLE)
