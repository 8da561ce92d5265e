"""`RunSpecModel`: the run form's state — the spec document being edited — and its validation.

The form's widgets hold nothing of their own: each edit comes here as (dotted path, raw) —
text as typed, or a widget's value — is parsed by the field kit (`app.fields.parse`), the
document is re-validated by the engine (`engine.spec.validate_spec`, ~1 ms) and every problem
comes back keyed by its dotted path, for the form to show beside the field it names. Values are
kept as typed, even invalid ones ("fast" for a learning rate), so the engine says what is wrong
with them; a field left empty is removed from the document and takes the engine's default.

A new run is named after its model (the designer's graph, the graph file) until the user types
a name, with "-2", "-3" added when a recent run has that name already.

The model comes from one of four places (`model_source`): the designer's current graph (read
through a provider callable when asked to refresh), a graph file, a graph inline in a loaded
spec, or — for prune and distill runs — the parent run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.fields import UNSET, Problem, parse
from engine.errors import SpecError, TrainbenchError
from engine.fields import Field
from engine.spec import SCHEMA_VERSION, SECTIONS, TOP_LEVEL, validate_spec

MODEL_SOURCES = ("designer", "file", "inline", "parent")
ENGINE_FAILED = "the engine failed while checking this spec, which is a bug in Trainbench"

DEFAULT_DOC = {
    "schema": SCHEMA_VERSION,
    "data": {"source": "digits"},
    "train": {"epochs": 10},
}


def field_at(path: str) -> Field | None:
    """The `Field` declared for a dotted path (`optim.lr`, `name`), or None."""
    section, _, name = path.rpartition(".")
    fields = SECTIONS.get(section, ()) if section else TOP_LEVEL
    return next((f for f in fields if f.name == name), None)


def field_path(problem_path: str) -> str:
    """The field a problem is about: `optim.betas[1]` → `optim.betas`."""
    return problem_path.split("[", 1)[0]


def inherits(doc: dict) -> bool:
    """Whether the run derives from a parent run (its task kind has a section: prune, distill)."""
    task = doc.get("task")
    kind = task.get("kind") if isinstance(task, dict) else None
    return isinstance(kind, str) and kind in SECTIONS


class RunSpecModel(QObject):
    changed = Signal(str)  # the dotted path edited; "" when the whole document was replaced
    validated = Signal()  # `spec` and `problems` are up to date

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.doc: dict = copy.deepcopy(DEFAULT_DOC)
        self.base_dir: Path | None = None  # relative paths in the document resolve from here
        self.file: Path | None = None  # the spec file last loaded or saved
        self.model_source = "designer"
        self.model_path: Path | None = None
        self.model_provider: Callable[[], dict] | None = None
        self.spec: dict | None = None  # the normalised spec when valid
        self.problems: dict[str, list[str]] = {}
        self.extra_problems: dict[str, list[str]] = {}  # found outside the spec (the data preview)
        self.taken_names: Callable[[], Iterable[str]] = tuple  # names of recent runs
        self.auto_name = True  # the name follows the model until the user types one
        self._follow_model()

    # ------------------------------------------------------------ reading

    @property
    def valid(self) -> bool:
        return self.spec is not None and not self.extra_problems

    def all_problems(self) -> dict[str, list[str]]:
        out = {k: list(v) for k, v in self.problems.items()}
        for k, v in self.extra_problems.items():
            out.setdefault(k, []).extend(v)
        return out

    def value(self, path: str):
        """The value at `path` as the document has it, else the field's default."""
        node = self.doc
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            return node[leaf]
        f = field_at(path)
        return None if f is None or f.required else f.default

    def is_set(self, path: str) -> bool:
        node = self.doc
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        return isinstance(node, dict) and leaf in node

    def suggested_name(self) -> str:
        """The name a new run gets: the spec file's, else the model's (its file, or the
        designer's graph), made unique among recent runs with "-2", "-3", …"""
        model = self.doc.get("model")
        if self.file is not None:
            base = self.file.stem
        elif self.model_source == "file" and self.model_path is not None:
            base = self.model_path.stem
        elif isinstance(model, dict) and isinstance(model.get("name"), str):
            base = model["name"].strip()
        else:
            base = ""
        base = base or "run"
        taken = set(self.taken_names())
        name, n = base, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        return name

    # ------------------------------------------------------------ editing

    def edit(self, path: str, raw) -> None:
        """An edit from the form: `raw` (text as typed, or a widget's value) parsed for the
        field at `path`; text that makes no value of the field's kind is kept as typed, for
        the engine to say what is wrong with it."""
        f = field_at(path)
        value = parse(f, raw) if f is not None else raw
        if isinstance(value, Problem):
            value = value.value
        if path == "name":
            self.auto_name = False
        self.set(path, value)

    def set(self, path: str, value) -> None:
        """Set (or with UNSET, remove) one field, then re-validate."""
        if self._put(path, value):
            self.changed.emit(path)
            self.validate()

    def _put(self, path: str, value) -> bool:
        *parents, leaf = path.split(".")
        chain = [self.doc]  # the dicts from the document down to the field's section
        for key in parents:
            if not isinstance(chain[-1].get(key), dict):
                if value is UNSET:
                    return False
                chain[-1][key] = {}
            chain.append(chain[-1][key])
        node = chain[-1]
        if value is UNSET:
            if leaf not in node:
                return False
            del node[leaf]
            for i in range(len(parents) - 1, -1, -1):  # drop sections left empty
                if chain[i + 1]:
                    break
                del chain[i][parents[i]]
            return True
        if leaf in node and node[leaf] == value and type(node[leaf]) is type(value):
            return False
        node[leaf] = copy.deepcopy(value)
        return True

    def reset(self) -> None:
        """Start a new run from scratch: the default spec, the designer's model, named after it."""
        self.model_path = None
        self.replace(DEFAULT_DOC)

    def replace(self, doc: dict, base_dir: str | Path | None = None, file: str | Path | None = None) -> None:
        """Show another spec (loaded from a file, or a run cloned from the store)."""
        if not isinstance(doc, dict):
            raise TypeError(f"a spec is a JSON object, not {type(doc).__name__}")
        doc = copy.deepcopy(doc)
        self.base_dir = Path(base_dir) if base_dir else None
        self.file = Path(file) if file else None
        model = doc.get("model")
        if isinstance(model, str):
            path = Path(model)
            self.model_path = (
                path if path.is_absolute() or self.base_dir is None else (self.base_dir / path).resolve()
            )
            doc["model"] = str(self.model_path)
            self.model_source = "file"
        elif model is not None:  # a graph; or a wrong type, for the engine to name
            self.model_source = "inline"
        elif inherits(doc):
            self.model_source = "parent"
        else:
            self.model_source = "designer"
        self.doc = doc
        self.extra_problems = {}
        self.auto_name = "name" not in doc
        if self.model_source == "designer":
            self.refresh_model(validate=False)
        self._follow_model()
        self.changed.emit("")
        self.validate()

    def set_model_source(self, source: str, path: str | Path | None = None) -> None:
        if source not in MODEL_SOURCES:
            raise ValueError(source)
        self.model_source = source
        if source == "file":
            self.model_path = Path(path) if path else self.model_path
            if self.model_path is None:
                self.doc.pop("model", None)
            else:
                self.doc["model"] = str(self.model_path)
        elif source == "parent":
            self.doc.pop("model", None)
        elif source == "designer":
            self.refresh_model(validate=False)
        self._follow_model()
        self.changed.emit("model")
        self.validate()

    def refresh_model(self, validate: bool = True) -> None:
        """Take the designer's current graph (when the model comes from the designer)."""
        if self.model_source != "designer":
            return
        graph = self.model_provider() if self.model_provider else None
        if graph is None:
            self.doc.pop("model", None)
        elif self.doc.get("model") != graph:
            self.doc["model"] = copy.deepcopy(graph)
        else:
            return
        self._follow_model()
        if validate:
            self.changed.emit("model")
            self.validate()

    def _follow_model(self) -> None:
        """Name the run after its model while the user has not named it."""
        if self.auto_name:
            self.doc["name"] = self.suggested_name()

    def set_extra_problems(self, problems: dict[str, list[str]]) -> None:
        if problems != self.extra_problems:
            self.extra_problems = problems
            self.validated.emit()

    # ------------------------------------------------------------ validating

    def validate(self) -> None:
        problems: dict[str, list[str]] = {}
        spec = None
        try:
            spec = validate_spec(self.doc, base_dir=self.base_dir)
        except SpecError as err:
            for path, message in err.problems:
                problems.setdefault(path, []).append(message)
        except TrainbenchError as err:  # a model file that cannot be read, say
            problems.setdefault("model", []).append(str(err))
        except Exception as err:  # noqa: BLE001 - an engine defect must not take the form down
            problems.setdefault("", []).append(f"{ENGINE_FAILED} ({type(err).__name__}: {err})")
        self.spec, self.problems = spec, problems
        self.validated.emit()

    def document(self) -> dict:
        """The document as a spec file holds it (what Save writes)."""
        return copy.deepcopy(self.doc)
