"""What the training loop iterates: the micro-batches of each optimizer step, on the device,
and the validation batches. Every sample a step sees is a pure function of (train.seed, step):

  - `BatchPlan` shuffles the training indices once per epoch with a generator seeded by
    (seed, epoch), and step s takes the s-th global batch of that order; rank r of a DDP run
    takes its own slice of every micro-batch. So a DDP run sees exactly the global batches of
    a single process (with the same global batch), and a resumed run, whose sampler simply
    starts at its checkpoint's step, sees exactly the batches it would have seen had it
    never stopped. No sampler state needs saving: the step number is the state.
  - Augmentation draws from a generator seeded by (seed, step, sample index) in whichever
    worker decodes the sample, so worker count, worker order, resume and DDP change nothing.
  - Language models sample random windows (nanoGPT's way): step s draws its global batch's
    offsets from a generator seeded by (seed, step), each rank and micro-batch its slice.

Three sources, one per kind of data set (`engine.data.sources`):

  ResidentBatches  arrays copied to the device once and indexed there: no DataLoader, since
                   indexing a tensor costs far less than collating samples (the digits CNN's
                   engine/plain-loop ratio rests on it)
  LoaderBatches    images decoded in `torch.utils.data.DataLoader` workers: a batch sampler
                   yields each micro-batch's (index, step) pairs from the run's current step
                   on; pinned memory and non-blocking copies on CUDA, `prefetch_factor`
                   batches per worker decoded ahead, persistent workers for validation
  WindowBatches    token windows gathered from the memory-mapped token file (or from the
                   tokens on the device, for a corpus that fits)

Validation: the whole split, or `train.eval_batches` batches spread evenly over it — the same
samples at every evaluation, so the curve compares like with like.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from engine.errors import DataError
from engine.preflight import check_global_batch

Batch = tuple[torch.Tensor, torch.Tensor]


class BatchPlan:
    def __init__(
        self, n: int, batch_size: int, grad_accum: int, seed: int, world_size: int = 1, rank: int = 0
    ):
        self.n, self.batch_size, self.grad_accum = n, batch_size, grad_accum
        self.world_size, self.rank, self.seed = world_size, rank, seed
        self.global_batch = batch_size * grad_accum * world_size
        check_global_batch(n, batch_size, grad_accum, world_size)
        self.steps_per_epoch = n // self.global_batch  # the remainder is dropped; the next epoch reshuffles
        self._epoch, self._perm = -1, None

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def micro_batches(self, step: int) -> list[torch.Tensor]:
        """Index tensors of this rank's micro-batches for optimizer step `step` (0-based)."""
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        base = i * self.global_batch
        out = []
        for a in range(self.grad_accum):
            start = base + (a * self.world_size + self.rank) * self.batch_size
            out.append(self._perm[start : start + self.batch_size])
        return out

    def slices(self) -> list[slice]:
        """This rank's share of a global batch, per micro-batch (for sources that draw whole
        global batches, such as random windows)."""
        return [
            slice(
                (a * self.world_size + self.rank) * self.batch_size,
                (a * self.world_size + self.rank + 1) * self.batch_size,
            )
            for a in range(self.grad_accum)
        ]


def eval_indices(n: int, eval_batches: int, batch_size: int) -> np.ndarray:
    """The validation samples evaluated: all, or `eval_batches` batches spread evenly."""
    if not eval_batches or eval_batches * batch_size >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, eval_batches * batch_size).round().astype(np.int64))


def make_batches(data, spec: dict, strategy, log: Callable[[str], None] = lambda m: None):
    """The batch source for `data` (see the module docstring)."""
    from engine.data import default_workers
    from engine.data.sources import ImageData
    from engine.data.tokens import TokenData

    train = spec["train"]
    if isinstance(data, TokenData):
        n = data.info().train_samples
    else:
        n = len(data.train) if isinstance(data, ImageData) else len(data.x_train)
    plan = BatchPlan(
        n, train["batch_size"], train["grad_accum"], train["seed"], strategy.world_size, strategy.rank
    )
    if isinstance(data, TokenData):
        return WindowBatches(data, plan, spec, strategy.device)
    if isinstance(data, ImageData):
        workers = spec["data"].get("num_workers")
        return LoaderBatches(
            data, plan, spec, strategy.device, default_workers() if workers is None else workers, log
        )
    return ResidentBatches(data, plan, spec, strategy.device)


class ResidentBatches:
    """Arrays on the device, indexed by the plan: today's fast path for sets held whole."""

    def __init__(self, data, plan: BatchPlan, spec: dict, device: torch.device):
        self.plan = plan
        self.x_train = torch.as_tensor(data.x_train, device=device)
        self.y_train = torch.as_tensor(data.y_train, device=device)
        self.x_val = torch.as_tensor(data.x_val, device=device)
        self.y_val = torch.as_tensor(data.y_val, device=device)
        train = spec["train"]
        self.eval_batch = train["eval_batch_size"]
        picks = eval_indices(len(self.x_val), train["eval_batches"], self.eval_batch)
        if len(picks) < len(self.x_val):
            idx = torch.as_tensor(picks, device=device)
            self.x_val, self.y_val = self.x_val[idx], self.y_val[idx]

    def micro_batches(self, step: int) -> list[Batch]:
        return [(self.x_train[idx], self.y_train[idx]) for idx in self.plan.micro_batches(step)]

    def validation(self) -> Iterator[Batch]:
        for i in range(0, len(self.x_val), self.eval_batch):
            yield self.x_val[i : i + self.eval_batch], self.y_val[i : i + self.eval_batch]

    def close(self) -> None:
        pass


class StepSampler(torch.utils.data.Sampler):
    """Yields this rank's micro-batches, as lists of (sample index, step), from `start` on
    (without end: the loop stops asking, and the loader is closed)."""

    def __init__(self, plan: BatchPlan, start: int):
        self.plan, self.start = plan, start

    def __iter__(self):
        step = self.start
        while True:
            for idx in self.plan.micro_batches(step):
                yield [(int(i), step) for i in idx]
            step += 1


class _TrainSamples(torch.utils.data.Dataset):
    """The training split as the workers see it: augmented with a generator keyed by (seed,
    step, index). A decoding error travels back as text, raised in the training process."""

    def __init__(self, split, seed: int):
        self.split, self.seed = split, seed

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key):
        i, step = key
        rng = np.random.default_rng([self.seed, step, i])
        try:
            return self.split.sample(i, rng)
        except DataError as err:
            return str(err)


class _ValSamples(torch.utils.data.Dataset):
    def __init__(self, split, picks: np.ndarray):
        self.split, self.picks = split, picks

    def __len__(self) -> int:
        return len(self.picks)

    def __getitem__(self, j):
        try:
            return self.split.sample(int(self.picks[j]))
        except DataError as err:
            return str(err)


def _ignore_interrupts(_worker_id: int) -> None:
    """A worker leaves Ctrl-C to the training process, which stops gracefully (finishes the
    step, saves a checkpoint) and then closes its workers; a worker ended by the terminal's
    SIGINT would fail the run's next batch instead."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _collate(samples):
    """(x, y, names of images skipped), or the first decoding error's message, which the
    training process raises as a DataError (one line, not a worker's wrapped traceback)."""
    errors = [s for s in samples if isinstance(s, str)]
    if errors:
        return errors[0]
    x = torch.from_numpy(np.stack([s[0] for s in samples]))
    y = torch.as_tensor([s[1] for s in samples], dtype=torch.int64)
    return x, y, [name for s in samples for name in s[2]]


def _checked(batch):
    if isinstance(batch, str):
        raise DataError(batch)
    return batch


class LoaderBatches:
    """ImageData through DataLoaders (see the module docstring). The training loader is made
    at the first step asked for, so a resumed run's sampler starts at its checkpoint's step
    (and again should steps be asked out of order)."""

    def __init__(self, data, plan: BatchPlan, spec: dict, device: torch.device, workers: int, log):
        self.data, self.plan, self.device, self.workers, self.log = data, plan, device, workers, log
        train = spec["train"]
        self.seed = train["seed"]
        self.pin = device.type == "cuda"
        self._iter, self._next = None, None
        self._skipped: set[str] = set()
        picks = eval_indices(len(data.val), train["eval_batches"], train["eval_batch_size"])
        self.val_loader = torch.utils.data.DataLoader(
            _ValSamples(data.val, picks),
            batch_size=train["eval_batch_size"],
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=self.pin,
            worker_init_fn=_ignore_interrupts,
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers else None,
        )

    def _start(self, step: int) -> None:
        self.close_train()
        loader = torch.utils.data.DataLoader(
            _TrainSamples(self.data.train, self.seed),
            batch_sampler=StepSampler(self.plan, step),
            num_workers=self.workers,
            collate_fn=_collate,
            pin_memory=self.pin,
            worker_init_fn=_ignore_interrupts,
            prefetch_factor=4 if self.workers else None,
        )
        self._iter, self._next = iter(loader), step

    def micro_batches(self, step: int) -> list[Batch]:
        if self._iter is None or step != self._next:
            self._start(step)
        out = []
        for _ in range(self.plan.grad_accum):
            x, y, skipped = _checked(next(self._iter))
            self._note(skipped)
            out.append((self._to_device(x), self._to_device(y)))
        self._next = step + 1
        return out

    def validation(self) -> Iterator[Batch]:
        for batch in self.val_loader:
            x, y, skipped = _checked(batch)
            self._note(skipped)
            yield self._to_device(x), self._to_device(y)

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device, non_blocking=self.pin)

    def _note(self, skipped: list[str]) -> None:
        new = [s for s in skipped if s not in self._skipped]
        if new:
            self._skipped.update(new)
            self.log(f"skipped {len(new)} image(s) that cannot be decoded: {', '.join(new[:20])}")

    def close_train(self) -> None:
        it, self._iter = self._iter, None
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()

    def close(self) -> None:
        self.close_train()
        it = getattr(self.val_loader, "_iterator", None)
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()


class WindowBatches:
    """Random training windows of a token file, nanoGPT's way; the validation tail in fixed,
    non-overlapping windows."""

    def __init__(self, data, plan: BatchPlan, spec: dict, device: torch.device):
        self.plan, self.device, self.ctx = plan, device, data.context
        train = spec["train"]
        self.seed, self.eval_batch = train["seed"], train["eval_batch_size"]
        self.pin = device.type == "cuda"
        self.n_train = data.train_tokens
        self.span = torch.arange(self.ctx + 1, device=device)
        if data.resident:  # the whole corpus on the device: windows are gathered there
            self.tokens = torch.as_tensor(np.asarray(data.tokens, dtype=np.int64), device=device)
        else:
            self.tokens = data.tokens
        n_val = (len(data.tokens) - data.train_tokens - 1) // self.ctx
        self.val_offsets = data.train_tokens + self.ctx * eval_indices(
            n_val, train["eval_batches"], self.eval_batch
        )

    def offsets(self, step: int) -> np.ndarray:
        """The global batch's window starts for `step` (every rank draws the same)."""
        rng = np.random.default_rng([self.seed, step])
        return rng.integers(0, self.n_train - self.ctx, size=self.plan.global_batch)

    def _windows(self, offsets: np.ndarray) -> Batch:
        if isinstance(self.tokens, torch.Tensor):
            w = self.tokens[torch.as_tensor(offsets, device=self.device)[:, None] + self.span]
        else:
            w = torch.from_numpy(
                np.stack([self.tokens[o : o + self.ctx + 1] for o in offsets]).astype(np.int64)
            )
            if self.pin:
                w = w.pin_memory()
            w = w.to(self.device, non_blocking=self.pin)
        return w[:, :-1], w[:, 1:]

    def micro_batches(self, step: int) -> list[Batch]:
        offs = self.offsets(step)
        return [self._windows(offs[s]) for s in self.plan.slices()]

    def validation(self) -> Iterator[Batch]:
        for i in range(0, len(self.val_offsets), self.eval_batch):
            yield self._windows(self.val_offsets[i : i + self.eval_batch])

    def close(self) -> None:
        pass
