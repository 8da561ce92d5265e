"""A Repeat's body, edited in its own designer in a dialog. The body's Input takes its shape
from the Repeat's input, so shapes show inside too. Applying the dialog is one undoable
SetParam on the Repeat node; cancelling leaves the model untouched."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QMessageBox, QVBoxLayout

from app.designer.document import GraphDocument
from engine.graph import Graph, Node, TensorType


class BodyDialog(QDialog):
    def __init__(self, node: Node, input_type: TensorType | None, crumb: str, parent=None):
        super().__init__(parent)
        from app.designer.area import DesignerArea

        body = node.params.get("body")
        graph = Graph.from_dict(body) if body else _starter()
        self.doc = GraphDocument(graph, input_type=input_type, parent=self)
        self.area = DesignerArea(self.doc, self)
        self.setWindowTitle(f"{node.id} body — Repeat × {node.params.get('times', 2)}")
        crumbs = QLabel(f"{crumb} <b>› body</b>", objectName="breadcrumb")
        shape = QLabel(
            f"input {input_type} (from the Repeat)"
            if input_type
            else "input shape unknown until the Repeat is connected",
            objectName="subtle",
        )
        self.message = QLabel(objectName="subtle")
        self.area.status.connect(self.message.setText)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        apply = buttons.button(QDialogButtonBox.StandardButton.Ok)
        apply.setText("Apply to Repeat")
        for button in buttons.buttons():
            button.setIcon(QIcon())
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        head = QHBoxLayout()
        head.addWidget(crumbs)
        head.addStretch(1)
        head.addWidget(shape)
        foot = QHBoxLayout()
        foot.addWidget(self.message, 1)
        foot.addWidget(buttons)
        layout = QVBoxLayout(self)
        layout.addLayout(head)
        layout.addWidget(self.area, 1)
        layout.addLayout(foot)
        # as large as the window it edits for (a fixed 1280×780 put its buttons off a small screen)
        room = parent.window().size() if parent is not None else self.screen().availableSize()
        self.resize(min(1280, int(room.width() * 0.94)), min(780, int(room.height() * 0.94)))
        QTimer.singleShot(0, self.area.view.fit)

    @property
    def changed(self) -> bool:
        return self.doc.dirty

    def body(self) -> dict:
        return self.doc.graph.to_dict()

    def reject(self) -> None:
        if self.changed:
            answer = QMessageBox.question(
                self, "Discard changes?", "Discard your changes to this body?",
                QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            )  # fmt: skip
            if answer != QMessageBox.StandardButton.Discard:
                return
        super().reject()


def _starter() -> Graph:
    graph = Graph(name="body")
    graph.add_node("Input", {}, (0.0, 0.0), "x")
    return graph
