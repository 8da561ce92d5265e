"""What the runs table knows, without Qt: every run's own columns and the lazy ones fetched so
far, the filter, the order and the lineage forest.

Every run's own columns (id, name, status...) come in one query, ~30 ms for 10,000 runs. A
spec, summary or metric column is fetched lazily, a block of rows around the ones a view
paints, because reading one spec field means reading every spec (~70 ms per 10,000); sorting,
exporting or plotting by such a column fetches it whole. Sorting and filtering happen here on
the cached values, not in a QSortFilterProxyModel: a Python `lessThan` called ~130,000 times
to sort 10,000 rows takes about a second.

The table (app/experiments/table_model.py), the parallel coordinates and the scatter read the
same catalog, so they never disagree about a run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from engine import run_table

PENDING = object()  # a lazy value not fetched yet
LIVE = ("queued", "running")


def is_lazy(column: str) -> bool:
    """Whether a column is fetched on demand (spec:, summary:, metric:, best:) rather than one of
    the runs' own."""
    return run_table.split_column(column)[0] != "run"


def natural_order(value) -> tuple:
    """Numbers before text, each in natural order (missing values are kept apart by the caller)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, str(value).lower())


@dataclass
class RunFilter:
    """What the user narrowed the table to; every set condition must hold."""

    text: str = ""
    statuses: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    tag: str = ""
    starred_only: bool = False
    words: list[str] = field(init=False, repr=False, default_factory=list)
    ids: set[int] = field(init=False, repr=False, default_factory=set)

    def __post_init__(self):
        words = self.text.lower().split()
        # "#12" means run 12 exactly ("#12 #15": either); other words must all appear
        self.ids = {int(w[1:]) for w in words if w.startswith("#") and w[1:].isdigit()}
        self.words = [w for w in words if not (w.startswith("#") and w[1:].isdigit())]

    @property
    def active(self) -> bool:
        return bool(self.words or self.ids or self.statuses or self.kinds or self.tag or self.starred_only)


@dataclass
class Forest:
    """Runs as a lineage tree: `children` maps a parent run id (0: the root) to its children in
    table order, `parent` the way back, `position` a run's place among its siblings; `context`
    holds the ancestors shown only so that a matching run appears under them."""

    children: dict[int, list[int]] = field(default_factory=dict)
    parent: dict[int, int] = field(default_factory=dict)
    position: dict[int, int] = field(default_factory=dict)
    context: set[int] = field(default_factory=set)


class RunCatalog:
    """Every run's own columns plus the lazy columns fetched so far. Row numbers are positions
    in `ids` (newest run first) and change only on `load`."""

    def __init__(self, store):
        self.store = store
        self.rows: dict[str, list] = {}
        self.ids: list[int] = []
        self.index: dict[int, int] = {}
        self._values: dict[str, dict[int, object]] = {}
        self._whole: set[str] = set()
        self._tags: list[list[str] | None] = []
        self.load()

    def load(self) -> None:
        """Re-read the runs (added, deleted or finished elsewhere). Lazy columns that were
        fetched whole are fetched whole again: the table is sorted or plotted by them."""
        whole = list(self._whole)
        self.rows = run_table.run_rows(self.store)
        self.ids = self.rows["id"]
        self.index = {rid: i for i, rid in enumerate(self.ids)}
        self._values.clear()
        self._whole.clear()
        self._tags = [None] * len(self.ids)
        self.ensure(whole)

    def __len__(self) -> int:
        return len(self.ids)

    # ------------------------------------------------------------ values

    def get(self, column: str, row: int):
        """A stored cell's raw value: a runs column, or a lazy one (PENDING until fetched)."""
        if not is_lazy(column):
            return self.rows[column][row]
        return self._values.get(column, {}).get(self.ids[row], PENDING)

    def duration(self, row: int) -> float | None:
        """Seconds the run ran, or has been running; None before it started."""
        return run_table.elapsed(self.rows["started_at"][row], self.rows["ended_at"][row])

    def tags(self, row: int) -> list[str]:
        if self._tags[row] is None:
            raw = self.rows["tags"][row]
            self._tags[row] = json.loads(raw) if raw and raw != "[]" else []
        return self._tags[row]

    def all_tags(self) -> list[str]:
        return run_table.all_tags(self.store)

    def fetched(self, column: str) -> int:
        """How many runs' values of a lazy column are known (fetched, present or not)."""
        return len(self._values.get(column, {}))

    def fetch(self, columns: list[str], ids: list[int]) -> None:
        """Fetch lazy columns for some runs (the rows around those painted)."""
        columns = [c for c in columns if is_lazy(c)]
        if not columns or not ids:
            return
        fetched = run_table.column_values(self.store, columns, ids)
        for column in columns:
            have = fetched.get(column, {})
            values = self._values.setdefault(column, {})
            for rid in ids:
                values[rid] = have.get(rid)

    def ensure(self, columns: Iterable[str]) -> None:
        """Fetch lazy columns whole (before sorting, exporting or plotting by them)."""
        missing = [c for c in columns if is_lazy(c) and c not in self._whole]
        if missing:
            fetched = run_table.column_values(self.store, missing)
            for column in missing:
                have = fetched.get(column, {})
                self._values[column] = {rid: have.get(rid) for rid in self.ids}
                self._whole.add(column)

    def values(self, column: str, rows: list[int] | None = None) -> list:
        """A stored column's values for `rows` (default: all), fetched whole first if lazy."""
        self.ensure([column])
        rows = range(len(self)) if rows is None else rows
        return [self.get(column, r) for r in rows]

    def live_ids(self) -> list[int]:
        """Runs whose duration and values still move (queued or running)."""
        return [rid for rid, s in zip(self.ids, self.rows["status"], strict=True) if s in LIVE]

    def refresh(self, ids: list[int]) -> None:
        """Re-read the lazy values of some runs (those still running)."""
        for column in list(self._values):
            self.fetch([column], ids)

    def update(self, run_id: int, **fields) -> None:
        """Write user edits (name, notes, tags, starred) to the store and to the cache."""
        self.store.set_fields(run_id, **fields)
        row = self.index[run_id]
        for key, value in fields.items():
            if key == "tags":
                self._tags[row] = list(value)
                value = json.dumps(list(value))
            self.rows[key][row] = value

    # ------------------------------------------------------------ order, filter, lineage

    @staticmethod
    def order(values: list, key: Callable = natural_order, descending: bool = False) -> list[int]:
        """Rows sorted by their `values` (one per row) under `key`; missing values (None, "")
        last either way."""
        present = [r for r, v in enumerate(values) if v is not None and v != ""]
        missing = [r for r, v in enumerate(values) if v is None or v == ""]
        keys = [key(v) if v is not None and v != "" else None for v in values]
        present.sort(key=keys.__getitem__, reverse=descending)
        return present + missing

    def matching(self, rows: list[int], f: RunFilter) -> list[int]:
        """The rows (in their order) that satisfy the filter."""
        if not f.active:
            return list(rows)
        cols, tag = self.rows, f.tag.lower()
        keep = []
        for r in rows:
            if f.statuses and cols["status"][r] not in f.statuses:
                continue
            if f.kinds and cols["kind"][r] not in f.kinds:
                continue
            if f.starred_only and not cols["starred"][r]:
                continue
            if tag and tag not in (t.lower() for t in self.tags(r)):
                continue
            if f.ids and cols["id"][r] not in f.ids:
                continue
            if f.words:
                hay = f"{cols['name'][r]} {cols['tags'][r]} {cols['notes'][r] or ''}".lower()
                if not all(w in hay for w in f.words):
                    continue
            keep.append(r)
        return keep

    def forest(self, shown: list[int], order: list[int]) -> Forest:
        """The lineage forest of the `shown` rows, with their ancestors pulled in for context,
        siblings in the order of `order` (rows in table order, every run)."""
        parent_of = self.rows["parent_id"]
        shown_ids = [self.ids[r] for r in shown]
        tree = set(shown_ids)
        for rid in shown_ids:
            pid = parent_of[self.index[rid]]
            while pid is not None and pid in self.index and pid not in tree:
                tree.add(pid)
                pid = parent_of[self.index[pid]]
        place = {self.ids[r]: i for i, r in enumerate(order)}
        out = Forest(context=tree - set(shown_ids))
        for rid in sorted(tree, key=place.__getitem__):
            pid = parent_of[self.index[rid]]
            pid = pid if pid in tree else 0
            siblings = out.children.setdefault(pid, [])
            out.position[rid] = len(siblings)
            siblings.append(rid)
            out.parent[rid] = pid
        return out
