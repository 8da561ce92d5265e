"""The selected run at a glance: status, lineage, results, tags and notes (markdown, shown
rendered; Edit switches to the source). Edits go through the table model, which writes them to
the store, so the table and this panel never disagree."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.experiments.colors import run_color
from app.experiments.legend import FlowLayout
from app.experiments.table_model import RunTableModel
from engine import format as fmt
from engine import run_table
from engine.compare import HEADLINE_METRICS
from engine.errors import StoreError

MANY_SHOWN = 14


class RunDetails(QScrollArea):
    """Shows one run (or a count for several); `run_linked` asks to select another run."""

    run_linked = Signal(int)

    def __init__(self, model: RunTableModel, parent=None):
        super().__init__(parent)
        self.setObjectName("runDetails")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.model = model
        self.run_id: int | None = None
        self.action_buttons: list[QToolButton] = []

        body = QWidget(objectName="runDetailsBody")
        self.setWidget(body)
        self.title = QLabel(objectName="detailsTitle", wordWrap=True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.subtitle = QLabel(objectName="subtle", wordWrap=True)
        self.lineage = QLabel(objectName="lineage", wordWrap=True)
        self.lineage.linkActivated.connect(lambda link: self.run_linked.emit(int(link)))
        self.error = QLabel(objectName="problems", wordWrap=True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.facts = QGridLayout()
        self.facts.setHorizontalSpacing(14)
        self.facts.setVerticalSpacing(3)
        self.tags = QLineEdit(objectName="tagsEdit", placeholderText="tags, comma separated")
        self.tags.editingFinished.connect(self._save_tags)

        self.notes_view = QTextBrowser(objectName="notesView", openExternalLinks=True)
        self.notes_view.setPlaceholderText("No notes yet.")  # one short line: a placeholder does not wrap
        self.notes_edit = QPlainTextEdit(objectName="notesEdit")
        self.notes_edit.setPlaceholderText("Markdown: **bold**, - lists, `code`, [links](https://…)")
        self.notes_stack = QStackedWidget()
        self.notes_stack.addWidget(self.notes_view)
        self.notes_stack.addWidget(self.notes_edit)
        self.notes_stack.setMinimumHeight(140)
        self.edit_notes = QPushButton("Edit", objectName="editNotes")
        self.edit_notes.clicked.connect(self.toggle_notes_editing)
        self.cancel_notes = QPushButton("Cancel")
        self.cancel_notes.clicked.connect(lambda: self._stop_editing(save=False))
        self.cancel_notes.hide()

        self.buttons_host = QWidget()
        self.buttons = FlowLayout(self.buttons_host)
        notes_head = QHBoxLayout()
        notes_head.addWidget(_section("NOTES"), 1)
        notes_head.addWidget(self.cancel_notes)
        notes_head.addWidget(self.edit_notes)

        self.header = QWidget()  # one run: who it is, where it comes from, how it ended
        h = QVBoxLayout(self.header)
        h.setContentsMargins(0, 0, 0, 0)
        h.setSpacing(4)
        for w in (self.title, self.subtitle, self.lineage, self.error):
            h.addWidget(w)
        self.many = QLabel(wordWrap=True)  # several runs: who they are
        self.many.setTextFormat(Qt.TextFormat.RichText)
        self.content = QWidget()  # one run: results, tags, notes
        c = QVBoxLayout(self.content)
        c.setContentsMargins(0, 0, 0, 0)
        c.setSpacing(6)
        c.addWidget(_section("RESULTS"))
        c.addLayout(self.facts)
        c.addWidget(_section("TAGS"))
        c.addWidget(self.tags)
        c.addLayout(notes_head)
        c.addWidget(self.notes_stack, 1)
        self.empty = QLabel(objectName="subtle", wordWrap=True, alignment=Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(8)
        layout.addWidget(self.header)
        layout.addWidget(self.many)
        layout.addWidget(self.buttons_host)
        layout.addWidget(self.content, 100)  # a single run's notes take the height
        layout.addWidget(self.empty, 100)
        layout.addStretch(1)  # several runs: list and buttons stay together at the top
        model.run_edited.connect(self._edited)
        self.show_runs([])

    def set_actions(self, actions) -> None:
        for action in actions:
            button = QToolButton(objectName="detailsAction")
            button.setDefaultAction(action)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            self.buttons.addWidget(button)
            self.action_buttons.append(button)

    # ------------------------------------------------------------ showing

    def show_runs(self, run_ids: list[int]) -> None:
        if self.notes_stack.currentWidget() is self.notes_edit and self.run_id not in run_ids[:1]:
            self._stop_editing(save=True)
        self.run_id = run_ids[0] if len(run_ids) == 1 else None
        self.header.setVisible(len(run_ids) == 1)
        self.content.setVisible(len(run_ids) == 1)
        self.many.setVisible(len(run_ids) > 1)
        self.buttons_host.setVisible(bool(run_ids))
        self.empty.setVisible(not run_ids)
        if not run_ids:
            self.empty.setText("Select a run to see its details.\n\nSelect two or more to compare them.")
        elif len(run_ids) > 1:
            self.many.setText(self._many_html(run_ids))
        else:
            self.refresh()

    def _many_html(self, run_ids: list[int]) -> str:
        c, t = self.model.catalog, theme.current()
        lines = []
        for rid in run_ids[:MANY_SHOWN]:
            row = c.index.get(rid)
            if row is None:
                continue
            status = c.rows["status"][row]
            lines.append(
                f"<tr><td><span style='color:{run_color(rid).name()}'>■</span> {html.escape(c.rows['name'][row])}"
                f" <span style='color:{t.subtext}'>#{rid}</span></td>"
                f"<td style='color:{theme.STATUS_COLORS.get(status, t.subtext)}'>&nbsp;&nbsp;{status}</td></tr>"
            )
        more = len(run_ids) - MANY_SHOWN
        tail = f"<p style='color:{t.subtext}'>and {more} more</p>" if more > 0 else ""
        return f"<p style='font-size:12pt'><b>{len(run_ids)} runs selected</b></p><table cellspacing='2'>{''.join(lines)}</table>{tail}"

    def refresh(self) -> None:
        if self.run_id is None:
            return
        store = self.model.catalog.store
        try:
            run = store.get_run(self.run_id)
            ancestors, descendants = store.lineage(self.run_id)
        except StoreError:
            self.show_runs([])
            return
        t = theme.current()
        color = run_color(run["id"]).name()
        status_color = theme.STATUS_COLORS.get(run["status"], t.subtext)
        star = "<span style='color:#e0a100'>★</span> " if run["starred"] else ""
        self.title.setText(
            f"<span style='color:{color}'>■</span> {star}<b>{html.escape(run['name'])}</b>"
            f" <span style='color:{t.subtext}'>#{run['id']}</span>"
        )
        elapsed = run_table.elapsed(run["started_at"], run["ended_at"])
        duration = f" · {fmt.duration(elapsed)}" if elapsed is not None else ""
        created = fmt.timestamp(run["created_at"])
        self.subtitle.setText(
            f"<span style='color:{status_color}; font-weight:600'>{run['status']}</span> · {run['kind']}"
            f" · created {created}{duration}"
        )
        self.subtitle.setTextFormat(Qt.TextFormat.RichText)
        chain = [*reversed(ancestors), run]
        parts = [
            f"<b>{r['kind']} #{r['id']}</b>"
            if r is run
            else f"<a href='{r['id']}'>{r['kind']} #{r['id']}</a>"
            for r in chain
        ]
        text = " → ".join(parts)
        if descendants:
            kids = ", ".join(f"<a href='{d['id']}'>{d['kind']} #{d['id']}</a>" for d in descendants[:8])
            text += f"<br>derived: {kids}" + (" …" if len(descendants) > 8 else "")
        self.lineage.setText(f"<span style='color:{t.subtext}'>lineage</span> {text}")
        self.lineage.setVisible(len(chain) > 1 or bool(descendants))
        error = (run["error"] or "").strip()
        self.error.setText(html.escape(error.splitlines()[-1] if error else "")[:400])
        self.error.setToolTip(error)
        self.error.setVisible(bool(error))
        self._fill_facts(run)
        if not self.tags.hasFocus():
            self.tags.setText(", ".join(run["tags"]))
        if self.notes_stack.currentWidget() is self.notes_view:
            self.notes_view.setMarkdown(run["notes"] or "")

    def _fill_facts(self, run: dict) -> None:
        while self.facts.count():
            self.facts.takeAt(0).widget().deleteLater()
        s = run["summary"]
        rows: list[tuple[str, str]] = []
        for key in HEADLINE_METRICS:
            if isinstance(s.get(key), int | float):
                rows.append((key.removeprefix("val/"), fmt.value(s[key])))
        if s.get("params") is not None:
            rows.append(("parameters", fmt.count(s["params"])))
        if s.get("flops") is not None:
            rows.append(("FLOPs / sample", fmt.count(s["flops"])))
        compression = s.get("compression") if isinstance(s.get("compression"), dict) else {}
        before, after = compression.get("before") or {}, compression.get("after") or {}
        for key, label in (("params", "params"), ("bytes", "size"), ("latency_ms", "latency")):
            b, a = before.get(key), after.get(key)
            if isinstance(b, int | float) and isinstance(a, int | float) and a:
                if key == "latency_ms":
                    rows.append((label, f"{b:.3g} → {a:.3g} ms ({b / a:.2g}× faster)"))
                else:
                    show = fmt.size if key == "bytes" else fmt.count  # a size in bytes says its unit
                    rows.append((label, f"{show(b)} → {show(a)} ({b / a:.2g}× smaller)"))
        if s.get("steps") is not None:
            rows.append(
                ("steps", f"{s['steps']:,}" + (f" ({_epochs(s['epochs'])})" if s.get("epochs") else ""))
            )
        spec = run["spec"]
        optim, train = spec.get("optim", {}), spec.get("train", {})
        rows.append(("optimizer", f"{optim.get('name', '?')} · lr {optim.get('lr', '?')}"))
        rows.append(("batch", str(train.get("batch_size", "?"))))
        data = spec.get("data", {})
        rows.append(
            ("data", str(data.get("source", "?")) + (f" ({data['path']})" if data.get("path") else ""))
        )
        for i, (k, v) in enumerate(rows):
            key = QLabel(k, objectName="subtle")
            value = QLabel(v, wordWrap=True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.facts.addWidget(key, i, 0, Qt.AlignmentFlag.AlignTop)
            self.facts.addWidget(value, i, 1)
        self.facts.setColumnStretch(1, 1)

    # ------------------------------------------------------------ editing

    def _save_tags(self) -> None:
        if self.run_id is None:
            return
        tags = [t.strip().lstrip("#") for t in self.tags.text().split(",") if t.strip().lstrip("#")]
        row = self.model.catalog.index.get(self.run_id)
        if row is not None and tags != self.model.catalog.tags(row):
            self.model.edit(self.run_id, tags=list(dict.fromkeys(tags)))

    def toggle_notes_editing(self) -> None:
        if self.notes_stack.currentWidget() is self.notes_edit:
            self._stop_editing(save=True)
            return
        row = self.model.catalog.index.get(self.run_id)
        self.notes_edit.setPlainText(self.model.catalog.rows["notes"][row] or "" if row is not None else "")
        self.notes_stack.setCurrentWidget(self.notes_edit)
        self.edit_notes.setText("Save")
        self.cancel_notes.show()
        self.notes_edit.setFocus()

    def _stop_editing(self, save: bool) -> None:
        if save and self.run_id is not None:
            text = self.notes_edit.toPlainText()
            row = self.model.catalog.index.get(self.run_id)
            if row is not None and text != (self.model.catalog.rows["notes"][row] or ""):
                self.model.edit(self.run_id, notes=text)
        self.notes_stack.setCurrentWidget(self.notes_view)
        self.edit_notes.setText("Edit")
        self.cancel_notes.hide()
        self.refresh()

    def _edited(self, run_id: int) -> None:
        if run_id == self.run_id:
            self.refresh()


def _section(text: str) -> QLabel:
    return QLabel(text, objectName="section")


def _epochs(n: float) -> str:
    return f"{n:.3g} epoch{'' if n == 1 else 's'}"
