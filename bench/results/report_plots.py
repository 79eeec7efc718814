"""The report's figures as inline SVG (matplotlib, no pyplot state, no files, no network).

Text stays text (``svg.fonttype = none``) and ids are salted deterministically, so a figure is a
few kilobytes and the same data gives the same page.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

_STYLE = {"svg.fonttype": "none", "svg.hashsalt": "lavic-bench", "font.size": 9,
          "axes.spines.top": False, "axes.spines.right": False}


def _svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element (no XML prologue, no date), to paste into HTML."""
    buffer = io.StringIO()
    with mpl.rc_context(_STYLE):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _figure(width: float, height: float, panels: int = 1) -> tuple[Figure, list]:
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(width, height))
        axes = fig.subplots(1, panels, squeeze=False, sharey=True)[0]
    return fig, list(axes)


def hr1_bars(cells: pd.DataFrame) -> str:
    """HR@1 per (retriever, generator) and domain, with its 95% interval as an error bar and
    the paper's reported HR@1 as a black diamond where there is one."""
    domains = list(dict.fromkeys(cells["domain"]))
    fig, axes = _figure(max(4.0, 2.2 * len(domains)), 3.0, len(domains))
    with mpl.rc_context(_STYLE):
        for ax, domain in zip(axes, domains, strict=True):
            rows = cells[cells["domain"] == domain].reset_index(drop=True)
            x = np.arange(len(rows))
            hr = rows["hr@1"].astype(float)
            err = np.vstack([(hr - rows["hr@1_low"]).clip(lower=0).fillna(0),
                             (rows["hr@1_high"] - hr).clip(lower=0).fillna(0)])
            ax.bar(x, hr.fillna(0), yerr=err, color="#4c72b0", capsize=2)
            ax.plot(x, rows["paper_hr@1"].astype(float), "kD", markersize=4, label="paper")
            ax.set_xticks(x, rows["label"], rotation=60, ha="right", fontsize=7)
            ax.set_title(domain)
        axes[0].set_ylabel("HR@1")
    return _svg(fig)


def recall_curves(curves: Mapping[str, Mapping[str, np.ndarray]], top_k: int) -> str:
    """Recall@k (k = 1..depth) per domain, a line per retriever; the dotted line marks the
    candidates a generator sees (k = top_k), whose recall is the oracle ceiling."""
    domains = list(curves)
    fig, axes = _figure(max(4.0, 3.2 * len(domains)), 2.8, len(domains))
    with mpl.rc_context(_STYLE):
        for ax, domain in zip(axes, domains, strict=True):
            for retriever, curve in curves[domain].items():
                ax.plot(np.arange(1, len(curve) + 1), curve, label=retriever)
            ax.axvline(top_k, color="grey", linestyle=":", linewidth=1)
            ax.set_title(domain)
            ax.set_xlabel("k")
        axes[0].set_ylabel("Recall@k")
        axes[-1].legend(fontsize=7, frameon=False)
    return _svg(fig)


def pick_rates(rates: pd.DataFrame) -> str:
    """Share of answers per displayed position, a line per generator cell; the dashed line is
    what a generator indifferent to position would give (1 / candidates)."""
    fig, axes = _figure(5.0, 2.8)
    ax = axes[0]
    with mpl.rc_context(_STYLE):
        positions: Sequence[int] = sorted(rates["position"].unique())
        for label, group in rates.groupby("label", sort=False):
            ax.plot(group["position"], group["rate"], marker="o", markersize=3, label=label)
        ax.axhline(1 / max(positions), color="grey", linestyle="--", linewidth=1)
        ax.set_xticks(positions)
        ax.set_xlabel("displayed position")
        ax.set_ylabel("pick rate")
        ax.legend(fontsize=6, frameon=False, ncol=2)
    return _svg(fig)
