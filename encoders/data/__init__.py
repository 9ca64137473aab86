"""Framework-neutral data tools (numpy and ``datasets`` only; no torch, no tensorflow)."""
from encoders.data.bucketing import LengthBucketBatcher, padding_efficiency
from encoders.data.collate import collate

__all__ = ["collate", "LengthBucketBatcher", "padding_efficiency", "load_splits", "Splits", "DataError"]


def __getattr__(name):  # the sources pull in `datasets`; load it only when asked for
    if name == "DataError":
        from encoders.errors import DataError

        return DataError
    if name in ("load_splits", "Splits"):
        from encoders.data import sources

        return getattr(sources, name)
    raise AttributeError(name)
