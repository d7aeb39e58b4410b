"""The run's log: one JSON object per line (training losses and validation), and a PNG plot of it.

JSONL because it appends safely, survives a crash line by line, and is trivially read back for
plots and reports (``read_log``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from esrgan.atomic import write_atomic


def append_log(path: str | Path, record: dict[str, Any]) -> None:
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def read_log(path: str | Path) -> list[dict[str, Any]]:
    src = Path(path)
    if not src.exists():
        return []
    records = []
    for line in src.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a crash
            continue
    return records


def truncate_log(path: str | Path, stage: str, iteration: int) -> None:
    """Drop records of ``stage`` after ``iteration`` (they belong to work a resume will redo)."""
    src = Path(path)
    if not src.exists():
        return
    kept = [r for r in read_log(src) if not (r.get("stage") == stage and int(r.get("iter", 0)) > iteration)]
    with write_atomic(src) as tmp:
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept), encoding="utf-8")


def plot_log(log_path: str | Path, png_path: str | Path) -> Path | None:
    """Losses and validation PSNR-Y (model vs bicubic) over iterations, one column per stage.

    The validation row is drawn only when the log has validation records (training without
    --val-data has none): empty panels would read as a broken validation.
    """
    records = read_log(log_path)
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in ("psnr", "gan") if any(r.get("stage") == s for r in records)]
    validated = any(r.get("kind") == "val" for r in records)
    rows = 2 if validated else 1
    fig, axes = plt.subplots(rows, len(stages), figsize=(6 * len(stages), 3.5 * rows), squeeze=False)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.07 * 2 / rows, top=1 - 0.05 * 2 / rows,
                        hspace=0.3, wspace=0.25)
    for col, stage in enumerate(stages):
        train = [r for r in records if r.get("stage") == stage and r.get("kind") == "train"]
        val = [r for r in records if r.get("stage") == stage and r.get("kind") == "val"]
        ax = axes[0][col]
        keys = sorted({k for r in train for k in r if k.startswith("loss_")})
        for key in keys:
            pts = [(r["iter"], r[key]) for r in train if key in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=key[5:])
        ax.set_title(f"{stage} stage: training losses")
        ax.set_xlabel("iteration")
        if keys and all(p[key] > 0 for p in train for key in keys if key in p):
            ax.set_yscale("log")
        ax.legend(fontsize=8)
        if not validated:
            continue
        ax = axes[1][col]
        if val:
            its = [r["iter"] for r in val]
            ax.plot(its, [r["psnr_y"] for r in val], "o-", label="model")
            ax.plot(its, [r["bicubic_psnr_y"] for r in val], "s--", label="bicubic")
            ax.legend(fontsize=8)
        ax.set_title(f"{stage} stage: validation PSNR-Y (dB)")
        ax.set_xlabel("iteration")
    dest = Path(png_path)
    with write_atomic(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return dest
