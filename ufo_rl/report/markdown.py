"""Markdown rendering of the report tables (written here so the report needs no ``tabulate``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def fmt(v) -> str:
    """A cell: empty for missing, integers without decimals, else 4 significant digits."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if float(v).is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v).replace("|", "\\|")


def _merge(df: pd.DataFrame, first: str, second: str, name: str, cell) -> pd.DataFrame:
    """Columns ``first`` and ``second`` replaced by one column ``name`` where ``first`` was."""
    df = df.copy()
    values = [cell(a, b) for a, b in zip(df[first], df[second])]
    cols = [name if c == first else c for c in df.columns if c != second]
    df = df.rename(columns={first: name}).drop(columns=second)
    df[name] = values
    return df[cols]


def _mean_std(m, s) -> str:
    return (fmt(m) + (f" ± {fmt(s)}" if fmt(s) else "")) if fmt(m) else ""


def _interval(lo, hi) -> str:
    return f"[{fmt(lo)}, {fmt(hi)}]" if fmt(lo) and fmt(hi) else ""


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub markdown table; ``<x>_mean`` / ``<x>_std`` pairs shown as one ``x`` column
    (``mean ± std``), ``<x>_ci_lo`` / ``<x>_ci_hi`` pairs as one ``x 95% CI`` column
    (``[lo, hi]``; blank where there is no interval)."""
    for c in [c for c in df.columns if c.endswith("_mean") and c[:-5] + "_std" in df.columns]:
        df = _merge(df, c, c[:-5] + "_std", c[:-5], _mean_std)
    for c in [c for c in df.columns if c.endswith("ci_lo") and c[:-2] + "hi" in df.columns]:
        df = _merge(df, c, c[:-2] + "hi", (c[:-5].rstrip("_") + " 95% CI").strip(), _interval)
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
               for c in df.columns]
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"
