"""Stand-in for polars on the lent GPU machine (`make gpu-kit` puts it in .whl/standin).

polars is not in that machine's image and its runtime wheel is over the device tool's 16 MB a file.
With plots off, ultralytics' trainer calls polars once, to read results.csv back:
``pl.read_csv(csv_bytes, infer_schema_length=None).to_dict(as_series=False)``. This module gives
that call the same answer (tests/test_gpu_kit.py compares it with polars itself) and nothing else.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

__version__ = "0.0+xfd-standin"


def _value(v: str):
    v = v.strip()
    if v == "":
        return None
    for kind in (int, float):
        try:
            return kind(v)
        except ValueError:
            pass
    return v


class DataFrame:
    def __init__(self, columns: list[str], rows: list[list]):
        self.columns, self._rows = columns, rows

    def to_dict(self, as_series: bool = True) -> dict:
        if as_series:
            raise NotImplementedError("the polars stand-in gives plain lists only (as_series=False)")
        cols = {c: [r[i] for r in self._rows] for i, c in enumerate(self.columns)}
        # a column is one type, as in polars: ints beside floats become floats
        for c, vals in cols.items():
            if any(isinstance(x, float) for x in vals) and all(isinstance(x, (int, float)) or x is None for x in vals):
                cols[c] = [None if x is None else float(x) for x in vals]
        return cols


def read_csv(source, infer_schema_length=None, **_) -> DataFrame:
    if isinstance(source, (bytes, bytearray)):
        text = bytes(source).decode()
    elif hasattr(source, "read"):
        text = source.read()
        text = text.decode() if isinstance(text, bytes) else text
    else:
        text = Path(source).read_text()
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return DataFrame([], [])
    header, body = rows[0], [r for r in rows[1:] if r]
    return DataFrame(header, [[_value(v) for v in r] for r in body])
