"""Figures shared by ``mer evaluate --plot`` and the experiment reports."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def save_confusion(path: str | Path, cm: np.ndarray | list, labels: Sequence[str], title: str,
                   *, percent: bool = False, figsize: tuple[float, float] | None = None,
                   title_size: int = 9, dpi: int = 120) -> Path:
    """Row-normalised confusion matrix as a PNG (colour = recall per true class).

    Cells show counts (non-zero ones) or, with ``percent``, the row percentage of every cell.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, dtype=float)
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n = len(labels)
    fig, ax = plt.subplots(figsize=figsize or (6.4, 5.6), dpi=dpi)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if percent or cm[i, j]:
                text = f"{100 * norm[i, j]:.0f}" if percent else f"{int(cm[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.55 else "#222")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=title_size)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="recall")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
