"""Reading delimited and JSON-lines files with errors that name file, line and column.

Line numbers are 1-based lines of the file as a text editor shows them. Under
``on_bad_rows="skip"`` malformed rows are dropped and counted in a report instead.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from llmrec.errors import DataError

LINE = "_line"


class BadRows(Counter):
    """Counts rows dropped under on_bad_rows=skip, by reason."""

    def add(self, reason: str, n: int = 1) -> None:
        if n:
            self[reason] += n


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError("file does not exist", path=str(path))
    if path.is_dir():
        raise DataError("is a folder; data.path must name the data file here", path=str(path))
    if path.stat().st_size == 0:
        raise DataError("file is empty", path=str(path))


def read_delimited(path: str | Path, *, sep: str = ",", header: bool = True,
                   names: list[str] | None = None, required: Iterable[str] = (),
                   on_bad_rows: str = "error", bad: BadRows | None = None) -> pd.DataFrame:
    """Read a delimited text file as strings, adding a ``_line`` column with file line numbers.

    ``names`` renames the columns of a header-less file. Missing required columns, rows with the
    wrong number of fields and blank lines raise DataError (or are skipped and counted).
    """
    path = Path(path)
    _check_file(path)
    bad = bad if bad is not None else BadRows()
    kwargs = dict(sep=sep, dtype=str, keep_default_na=False, skip_blank_lines=False,
                  header=0 if header else None, names=None if header else names)
    try:
        frame = pd.read_csv(path, engine="c", **kwargs)
        first = 2 if header else 1
        frame[LINE] = np.arange(first, first + len(frame))
    except pd.errors.EmptyDataError:
        raise DataError("file has no rows", path=str(path)) from None
    except pd.errors.ParserError as exc:
        line = _parser_error_line(str(exc))
        if on_bad_rows != "skip":
            raise DataError(f"malformed row: {exc}", path=str(path), line=line) from None
        frame = _read_skipping(path, sep=sep, header=header, names=names, bad=bad)
    if header and names is not None:
        frame = frame.rename(columns=dict(zip(frame.columns[: len(names)], names)))
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}; found {list(frame.columns[:-1])}",
                        path=str(path), line=1 if header else None)
    data_cols = [c for c in frame.columns if c != LINE]
    blank = frame[data_cols].eq("").all(axis=1)
    if blank.any():
        if on_bad_rows != "skip":
            raise DataError("empty line", path=str(path), line=int(frame.loc[blank.idxmax(), LINE]))
        bad.add("empty line", int(blank.sum()))
        frame = frame.loc[~blank]
    frame = require_values(frame, list(required), path=path, on_bad_rows=on_bad_rows, bad=bad)
    if frame.empty:
        raise DataError("file has no rows", path=str(path))
    return frame.reset_index(drop=True)


def require_values(frame: pd.DataFrame, columns: list[str], *, path: str | Path,
                   on_bad_rows: str = "error", bad: BadRows | None = None) -> pd.DataFrame:
    """Rows whose ``columns`` are empty (e.g. a truncated row) raise DataError or are skipped."""
    for column in columns:
        empty = frame[column].astype(str).str.strip().eq("")
        if empty.any():
            if on_bad_rows != "skip":
                raise DataError("is empty", path=str(path), line=int(frame.loc[empty.idxmax(), LINE]),
                                column=column)
            if bad is not None:
                bad.add(f"empty {column}", int(empty.sum()))
            frame = frame.loc[~empty]
    return frame


def _parser_error_line(message: str) -> int | None:
    import re

    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None


def _read_skipping(path: Path, *, sep: str, header: bool, names: list[str] | None,
                   bad: BadRows) -> pd.DataFrame:
    """Slow path for on_bad_rows=skip: the csv module, keeping line numbers of good rows."""
    import csv

    rows, lines = [], []
    with path.open(newline="") as handle:
        reader = csv.reader(handle, delimiter=sep)
        cols = next(reader) if header else list(names or [])
        width = len(cols) if cols else None
        for row in reader:
            if width is None:
                width = len(row)
                cols = [str(i) for i in range(width)]
            if len(row) != width:
                bad.add("wrong number of fields")
                continue
            rows.append(row)
            lines.append(reader.line_num)
    frame = pd.DataFrame(rows, columns=cols, dtype=str)
    frame[LINE] = lines
    return frame


def to_number(frame: pd.DataFrame, column: str, *, path: str | Path, kind: str = "float",
              on_bad_rows: str = "error", bad: BadRows | None = None,
              allow_empty: bool = False, expected: str | None = None) -> pd.DataFrame:
    """Parse ``column`` as numbers in place; the first bad cell raises DataError naming its line.

    Under skip, rows with bad cells are dropped and counted. Returns the (possibly shorter) frame.
    """
    raw = frame[column].astype(str).str.strip()
    values = pd.to_numeric(raw, errors="coerce")
    empty = raw.eq("")
    invalid = values.isna() & ~(empty & allow_empty)
    if kind == "int":
        invalid |= values.notna() & (values != np.floor(values.fillna(0)))
    if invalid.any():
        if on_bad_rows != "skip":
            i = invalid.idxmax()
            expected = expected or ("an integer" if kind == "int" else "a number")
            raise DataError(f"is {raw[i]!r}, expected {expected}", path=str(path),
                            line=int(frame.at[i, LINE]), column=column)
        if bad is not None:
            bad.add(f"bad {column}", int(invalid.sum()))
        frame = frame.loc[~invalid].copy()
        values = values.loc[~invalid]
    frame[column] = values.astype("int64" if kind == "int" and not allow_empty else float)
    return frame


def to_timestamp(frame: pd.DataFrame, column: str, *, path: str | Path, on_bad_rows: str = "error",
                 bad: BadRows | None = None) -> pd.DataFrame:
    """Parse epoch seconds, or date/time strings, into float seconds."""
    raw = frame[column].astype(str).str.strip()
    numeric = pd.to_numeric(raw, errors="coerce")
    if numeric.notna().all():
        frame[column] = numeric.astype(float)
        return frame
    if numeric.notna().mean() >= 0.5:  # mostly epochs: the rest are errors
        return to_number(frame, column, path=path, on_bad_rows=on_bad_rows, bad=bad,
                         expected="a timestamp (epoch seconds or a date)")
    parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
    invalid = parsed.isna()
    if invalid.any():
        if on_bad_rows != "skip":
            i = invalid.idxmax()
            raise DataError(f"is {raw[i]!r}, expected a timestamp (epoch seconds or a date)",
                            path=str(path), line=int(frame.at[i, LINE]), column=column)
        if bad is not None:
            bad.add(f"bad {column}", int(invalid.sum()))
        frame = frame.loc[~invalid].copy()
        parsed = parsed.loc[~invalid]
    frame[column] = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    return frame


def read_jsonl(path: str | Path, *, required: Iterable[str] = (), on_bad_rows: str = "error",
               bad: BadRows | None = None) -> pd.DataFrame:
    """Read JSON lines (also Amazon's loose one-dict-per-line Python literals) with line numbers."""
    import ast

    path = Path(path)
    _check_file(path)
    required = list(required)
    records = []
    opener = _open_text(path)
    with opener as handle:
        for lineno, text in enumerate(handle, start=1):
            text = text.strip()
            if not text:
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                try:  # the 2014 Amazon metadata files are Python dict literals
                    record = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    if on_bad_rows == "skip":
                        if bad is not None:
                            bad.add("invalid JSON")
                        continue
                    raise DataError(f"invalid JSON: {exc.msg}", path=str(path), line=lineno) from None
            if not isinstance(record, dict):
                if on_bad_rows == "skip":
                    continue
                raise DataError("expected a JSON object", path=str(path), line=lineno)
            missing = [k for k in required if k not in record]
            if missing:
                if on_bad_rows == "skip":
                    if bad is not None:
                        bad.add(f"missing {missing[0]}")
                    continue
                raise DataError("missing field", path=str(path), line=lineno, column=missing[0])
            record[LINE] = lineno
            records.append(record)
    if not records:
        raise DataError("file has no records", path=str(path))
    return pd.DataFrame.from_records(records)


def _open_text(path: Path):
    if path.suffix == ".gz":
        import gzip

        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")
