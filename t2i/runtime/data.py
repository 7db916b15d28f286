"""Resumable, process-aware data loading for ``Run.dataloader``.

The order of samples depends only on (seed, epoch), never on the number of processes:
epoch ``e`` is cut into *global micro-batches* of ``micro * P`` samples (``P`` processes),
and process ``r`` takes slice ``[r * micro, (r + 1) * micro)`` of each. One process with
``grad_accum = 2`` and two processes with ``grad_accum = 1`` therefore see the same
samples in each optimiser step. The position is ``(epoch, batch)``: the number of
micro-batches each process has taken in the current epoch (saved also as global samples,
so a run may resume with another number of processes or ``grad_accum`` as long as
``batch_size`` is unchanged); a resumed run starts at the next unseen batch. The incomplete last global micro-batch of an epoch is dropped.

- Map-style datasets: a seeded permutation per epoch (``torch.randperm`` with a generator
  seeded from ``seed`` and ``epoch``), or the natural order when ``shuffle=False``.
- ``IterableDataset`` (WebDataset shards): every process reads the same stream and keeps
  its slice of each global micro-batch; with ``num_workers = W``, worker ``w`` builds the
  batches ``j`` with ``j % W == w`` (DataLoader returns them in order). On resume the
  consumed samples are read again and skipped: exact, but it costs one pass over them.
  If the dataset has ``set_epoch(epoch)`` it is called before each epoch (seeded shuffles).
- Either kind: ``set_epoch(epoch)``, when the dataset has it, is called before each epoch, so
  per-item random choices (crops, flips, caption draws: ``t2i.data.transforms``) depend on
  (seed, epoch, index) and a resumed run repeats them exactly.

    python -c "from t2i.runtime.data import demo; demo()"
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2**63)


class _BatchSampler:
    """Yields this process's index lists for the current epoch, starting at ``start``."""

    def __init__(self, n: int, micro: int, num_processes: int, rank: int, seed: int, shuffle: bool):
        self.n, self.micro, self.P, self.rank, self.seed, self.shuffle = n, micro, num_processes, rank, seed, shuffle
        self.epoch, self.start = 0, 0

    def __len__(self) -> int:
        return self.n // (self.micro * self.P)

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch)))
        else:
            order = torch.arange(self.n)
        g = self.micro * self.P  # one global micro-batch
        for b in range(self.start, len(self)):
            yield order[b * g + self.rank * self.micro: b * g + (self.rank + 1) * self.micro].tolist()


class _ProcessSlice(IterableDataset):
    """This process's (and worker's) share of an iterable stream, skipping ``start`` batches."""

    def __init__(self, dataset: IterableDataset, micro: int, num_processes: int, rank: int):
        self.dataset, self.micro, self.P, self.rank = dataset, micro, num_processes, rank
        self.epoch, self.start = 0, 0

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        g = self.micro * self.P
        stream = iter(self.dataset)
        for j in itertools.count():
            chunk = list(itertools.islice(stream, g))  # global micro-batch j
            if len(chunk) < g:
                return  # drop the incomplete tail so every process ends the epoch together
            if j >= self.start and (j - self.start) % workers == worker:
                yield from chunk[self.rank * self.micro:(self.rank + 1) * self.micro]


class RunLoader:
    """Iterates epoch after epoch from a saved position; build it with ``Run.dataloader``."""

    def __init__(self, dataset: Dataset, micro: int, num_processes: int, rank: int, seed: int, shuffle: bool,
                 num_workers: int, collate_fn: Callable | None, pin_memory: bool):
        self.dataset, self.micro, self.num_processes = dataset, micro, num_processes
        self.iterable = isinstance(dataset, IterableDataset)
        self.epoch, self.batch = 0, 0  # position: micro-batches taken in this epoch (per process)
        self.seed, self.rank = seed, rank
        # the DataLoader draws its workers' base seed from this generator, not from the global
        # torch RNG, so a resumed run (which starts its iterator mid-epoch) keeps the same RNG stream
        self._generator = torch.Generator()
        common = dict(num_workers=num_workers, collate_fn=collate_fn, pin_memory=pin_memory,
                      persistent_workers=False, generator=self._generator)
        if self.iterable:  # ``shuffle`` does not apply: a stream shuffles itself (seeded via set_epoch)
            self._source = _ProcessSlice(dataset, micro, num_processes, rank)
            self._loader = DataLoader(self._source, batch_size=micro, drop_last=True, **common)
        else:
            n = len(dataset)  # type: ignore[arg-type]
            if n < micro * num_processes:
                raise ValueError(f"the dataset has {n} items, fewer than one global micro-batch of "
                                 f"{micro * num_processes} (batch_size / grad_accum); lower batch_size or add data")
            self._source = _BatchSampler(n, micro, num_processes, rank, seed, shuffle)
            self._loader = DataLoader(dataset, batch_sampler=self._source, **common)

    def __len__(self) -> int:
        """Micro-batches per epoch per process (map-style datasets only)."""
        if self.iterable:
            raise TypeError("an IterableDataset has no length; count steps, not epochs")
        return len(self._source)  # type: ignore[arg-type]

    def state_dict(self) -> dict[str, int]:
        # samples = global samples taken this epoch: lets a run resume with another process count
        return {"epoch": self.epoch, "batch": self.batch, "samples": self.batch * self.micro * self.num_processes}

    def load_state_dict(self, state: dict[str, int]) -> None:
        global_micro = self.micro * self.num_processes
        samples = int(state.get("samples", int(state["batch"]) * global_micro))
        if samples % global_micro:
            warnings.warn(f"resume position of {samples} samples is not a whole number of global micro-batches of "
                          f"{global_micro} (batch_size / grad_accum changed?); rounding down", RuntimeWarning, stacklevel=2)
        self.epoch, self.batch = int(state["epoch"]), samples // global_micro

    def batches(self) -> Iterator[Any]:
        """Endless: the rest of the current epoch, then the next epochs. Advances the position."""
        while True:
            self._source.epoch, self._source.start = self.epoch, self.batch
            if not self.iterable and hasattr(self.dataset, "set_epoch"):  # reseeds random crops/flips/captions
                self.dataset.set_epoch(self.epoch)  # before the DataLoader copies the dataset into its workers
            self._generator.manual_seed(epoch_seed(self.seed, self.epoch) + self.rank)
            taken = 0
            for batch in self._loader:
                taken += 1
                self.batch += 1
                yield batch
            if taken == 0 and self.batch == 0:
                raise ValueError(f"the data stream gave no complete global micro-batch of {self.micro * self.num_processes} "
                                 "samples in a whole epoch; lower batch_size or add data")
            self.epoch, self.batch = self.epoch + 1, 0


def demo() -> None:
    data = torch.utils.data.TensorDataset(torch.arange(10))
    loader = RunLoader(data, micro=2, num_processes=1, rank=0, seed=0, shuffle=True, num_workers=0,
                       collate_fn=None, pin_memory=False)
    it = loader.batches()
    print([next(it)[0].tolist() for _ in range(7)], loader.state_dict())
