"""What a dataset is: a name, a list of sample ids, and ``load(sample_id) -> Sample`` (may raise SampleError)."""

from __future__ import annotations

from typing import Iterable, Optional, Protocol, Sequence, runtime_checkable

from .schema import Sample


@runtime_checkable
class VideoEditDataset(Protocol):
    name: str

    def sample_ids(self) -> list[str]:
        ...

    def load(self, sample_id: str) -> Sample:
        ...


def select_ids(ids: Sequence[str], limit: Optional[int] = None, only: Optional[Iterable[str]] = None) -> list[str]:
    """Subset of ``ids``: those named in ``only`` (in dataset order), then the first ``limit``."""
    out = list(ids)
    if only:
        wanted = {str(i) for i in only}
        missing = wanted - set(out)
        if missing:
            raise KeyError(f"dataset.ids: unknown sample id(s) {sorted(missing)[:5]}")
        out = [i for i in out if i in wanted]
    if limit is not None:
        out = out[: int(limit)]
    return out


def shard_ids(ids: Sequence[str], num_shards: int = 1, shard: int = 0) -> list[str]:
    """Shard ``shard`` of ``num_shards`` of ``ids``: every ``num_shards``-th id from position ``shard``.

    Deterministic and disjoint; the shards' union is ``ids``. Round robin keeps shards balanced when ``ids`` are
    sorted by difficulty or edit type (as generated datasets are).
    """
    num_shards, shard = int(num_shards), int(shard)
    if num_shards < 1:
        raise ValueError(f"dataset.num_shards={num_shards}: must be at least 1")
    if not 0 <= shard < num_shards:
        raise ValueError(f"dataset.shard={shard}: must be in 0..{num_shards - 1} (dataset.num_shards={num_shards})")
    return list(ids)[shard::num_shards]
