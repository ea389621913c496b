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
