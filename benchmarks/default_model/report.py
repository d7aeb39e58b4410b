"""Write the learning report of a default-x4 run and check in its checkpoint.

    python -m benchmarks.default_model.report --run /work/runs/default_x4

Reads RUN/log.jsonl (held-out validation over iterations), re-measures the final checkpoint on the
held-out photographs, and writes benchmarks/reports/learning/{report.md, learning.png, side_by_side.png}
and benchmarks/reports/default_model/{default_x4.safetensors, default_x4.json}.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import click

from esrgan.atomic import write_atomic, write_text_atomic
from esrgan.photographs import DEFAULT_MODEL_HELD_OUT as HELD_OUT
from esrgan.photographs import DEFAULT_MODEL_TRAIN as TRAIN
from esrgan.photographs import photo_source, photograph
from esrgan.runtime.cpu_features import probe_cpu_features

REPORTS = Path(__file__).resolve().parents[1] / "reports"
MAX_CHECKPOINT_BYTES = 4 * 1024 * 1024  # as the shipped ONNX file: small enough for the repository and the wheel
QUALITY_BAR_DB = 0.5  # the shipped model's bar (README, tests)
GOAL_DB = 1.0  # what the default-x4 preset aims for on the held-out photographs




def val_records(run: Path) -> list[dict[str, Any]]:
    from esrgan.train.logbook import read_log

    return [r for r in read_log(run / "log.jsonl") if r.get("kind") == "val" and r.get("stage") == "psnr"]


def plot_learning(records: list[dict[str, Any]], dest: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [r["iter"] for r in records]
    names = sorted(records[-1]["per_image"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.9, wspace=0.25)
    for name in names:
        axes[0].plot(its, [r["per_image"][name]["psnr_y"] - r["per_image"][name]["bicubic_psnr_y"] for r in records],
                     "o-", ms=3, label=name.removesuffix(".png"))
        axes[1].plot(its, [r["per_image"][name]["ssim_y"] - r["per_image"][name]["bicubic_ssim_y"] for r in records],
                     "o-", ms=3, label=name.removesuffix(".png"))
    axes[0].plot(its, [r["psnr_y"] - r["bicubic_psnr_y"] for r in records], "k-", lw=2.5, label="mean")
    axes[1].plot(its, [r["ssim_y"] - r["bicubic_ssim_y"] for r in records], "k-", lw=2.5, label="mean")
    axes[0].axhline(QUALITY_BAR_DB, color="red", ls=":", label=f"+{QUALITY_BAR_DB} dB bar")
    axes[0].axhline(GOAL_DB, color="green", ls=":", label=f"+{GOAL_DB} dB goal")
    for ax in axes:
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("iteration")
        ax.legend(fontsize=8)
    axes[0].set_title("held-out PSNR-Y gain over bicubic (dB, crop 4)")
    axes[1].set_title("held-out SSIM-Y gain over bicubic")
    with write_atomic(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def side_by_side(model: Any, dest: Path, name: str = "chelsea", box: tuple[int, int, int] = (60, 140, 128)) -> None:
    """bicubic | model | ground truth on a crop of a held-out photograph, each enlarged x2 (nearest)."""
    from PIL import Image, ImageDraw

    from esrgan.train.imresize import downscale_uint8, mod_crop, upscale_uint8
    from esrgan.train.validate import super_resolve

    hr = mod_crop(photograph(name), 4)
    lr = downscale_uint8(hr, 4)
    top, left, size = box
    tiles = [upscale_uint8(lr, 4), super_resolve(model, lr), hr]
    crops = [Image.fromarray(t[top : top + size, left : left + size]).resize((2 * size, 2 * size), Image.NEAREST)
             for t in tiles]
    canvas = Image.new("RGB", (3 * 2 * size + 20, 2 * size + 24), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (crop, label) in enumerate(zip(crops, ("bicubic x4", "default model x4", "ground truth"), strict=True)):
        x = i * (2 * size + 10)
        canvas.paste(crop, (x, 24))
        draw.text((x + 4, 6), label, fill="black")
    with write_atomic(dest) as tmp:
        canvas.save(tmp, format="PNG", optimize=True)


def load_summary(path: Path | None) -> str:
    """One phrase on the machine's load from a file of ``HH:MM load1 load5 load15`` lines sampled during the run.

    The run's wall time depends on what else the shared machine ran, so the report states it.
    """
    if path is None:
        return "load not recorded"
    loads = [float(line.split()[1]) for line in path.read_text().splitlines() if len(line.split()) >= 2]
    if not loads:
        return "load not recorded"
    return (f"1-minute load average {min(loads):.1f} to {max(loads):.1f}, mean {sum(loads) / len(loads):.1f} "
            f"over {len(loads)} samples during the run")


def _table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


@click.command()
@click.option("--run", "run_dir", default="/work/runs/default_x4", type=click.Path(file_okay=False, exists=True),
              help="The run folder written by benchmarks.default_model.train.")
@click.option("--load-log", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Lines 'HH:MM load1 load5 load15' sampled during the run (e.g. from /proc/loadavg).")
@click.option("--notes", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Markdown appended to the report: what the numbers alone do not say about the run.")
def main(run_dir: str, load_log: Path | None, notes: Path | None) -> None:
    """Report the held-out numbers of a default-x4 run and copy its checkpoint into the repo."""
    import yaml

    from esrgan.models.checkpoints import load_generator
    from esrgan.train.logbook import read_log
    from esrgan.train.validate import evaluate, prepare_validation

    run = Path(run_dir)
    ckpt = run / "psnr.safetensors"
    records = val_records(run)
    if not records or not ckpt.is_file():
        raise click.ClickException(f"{run}: no finished run (psnr.safetensors and validation records needed)")
    config = yaml.safe_load((run / "config.yaml").read_text())
    model = load_generator(ckpt)
    final = evaluate(model, prepare_validation(run / "data" / "heldout", 4), 4)
    gain = final.psnr - final.bicubic_psnr
    learning = REPORTS / "learning"
    learning.mkdir(parents=True, exist_ok=True)
    plot_learning(records, learning / "learning.png")
    side_by_side(model, learning / "side_by_side.png")
    train_log = [r for r in read_log(run / "log.jsonl") if r.get("kind") == "train"]
    minutes = train_log[-1]["elapsed_s"] / 60 if train_log else float("nan")

    default_dir = REPORTS / "default_model"
    default_dir.mkdir(parents=True, exist_ok=True)
    if ckpt.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise click.ClickException(f"{ckpt} is {ckpt.stat().st_size} bytes, over the {MAX_CHECKPOINT_BYTES // 2**20} MB limit")
    shutil.copyfile(ckpt, default_dir / "default_x4.safetensors")
    summary = {
        "spec": model.spec.to_dict(),  # type: ignore[attr-defined]
        "preset": config["preset"], "iterations": config["psnr_iters"],
        "training_photos": [photo_source(n) for n in TRAIN],
        "held_out_photos": [photo_source(n) for n in HELD_OUT],
        "held_out": {"psnr_y": final.psnr, "ssim_y": final.ssim, "bicubic_psnr_y": final.bicubic_psnr,
                     "bicubic_ssim_y": final.bicubic_ssim, "per_image": final.per_image,
                     "metric": "PSNR/SSIM on Y (BT.601), 4 px border crop, LR = MATLAB bicubic x1/4 (uint8)"},
    }
    write_text_atomic(default_dir / "default_x4.json", json.dumps(summary, indent=2) + "\n")

    over_time = _table(
        [[str(r["iter"]), f"{r['psnr_y']:.3f}", f"{r['bicubic_psnr_y']:.3f}", f"{r['psnr_y'] - r['bicubic_psnr_y']:+.3f}",
          f"{r['ssim_y']:.4f}", f"{r['bicubic_ssim_y']:.4f}"]
         + [f"{v['psnr_y'] - v['bicubic_psnr_y']:+.2f}" for _, v in sorted(r["per_image"].items())]
         for r in records],
        ["iter", "PSNR-Y", "bicubic", "gain", "SSIM-Y", "bicubic SSIM-Y"]
        + [f"{n.removesuffix('.png')} gain" for n in sorted(records[-1]["per_image"])],
    )
    per_image = _table(
        [[n.removesuffix(".png"), f"{v['psnr_y']:.3f}", f"{v['bicubic_psnr_y']:.3f}",
          f"{v['psnr_y'] - v['bicubic_psnr_y']:+.3f}", f"{v['ssim_y']:.4f}", f"{v['bicubic_ssim_y']:.4f}"]
         for n, v in sorted(final.per_image.items())]
        + [["**mean**", f"**{final.psnr:.3f}**", f"**{final.bicubic_psnr:.3f}**", f"**{gain:+.3f}**",
            f"**{final.ssim:.4f}**", f"**{final.bicubic_ssim:.4f}**"]],
        ["held-out image", "model PSNR-Y", "bicubic PSNR-Y", "gain (dB)", "model SSIM-Y", "bicubic SSIM-Y"],
    )
    verdict = (f"**Passes** the +{QUALITY_BAR_DB} dB bar ({gain:+.3f} dB mean PSNR-Y gain)." if gain >= QUALITY_BAR_DB
               else f"**Does not reach** the +{QUALITY_BAR_DB} dB bar ({gain:+.3f} dB mean PSNR-Y gain).")
    verdict += (f" It {'reaches' if gain >= GOAL_DB else 'does **not** reach'} the +{GOAL_DB} dB goal"
                f" of the `{config['preset']}` preset.")
    if len(records) >= 2:
        last_step = (records[-1]["psnr_y"] - records[-2]["psnr_y"])
        verdict += (f" The mean gain still rose by {last_step:+.3f} dB over the last {records[-1]['iter'] - records[-2]['iter']}"
                    " iterations: a longer run would add a little more.") if last_step > 0.002 else " The gain had levelled off."
    spec = model.spec  # type: ignore[attr-defined]
    report = f"""# Proof that it learns: the default x4 model

A compact RRDBNet ({spec.describe()}, {sum(p.numel() for p in model.parameters()):,} parameters,
{spec.macs_per_pixel() / 1e6:.2f} M MAC per input pixel), PSNR stage only, trained by this project's
`esrgan-train` on {len(TRAIN)} photographs that ship inside scikit-image and matplotlib and validated on
{len(HELD_OUT)} **other** scikit-image photographs held out of training.

{verdict}

## Command

```bash
OMP_NUM_THREADS=1 python -m benchmarks.default_model.train --output /work/runs/default_x4
# = export the photographs to DIR/data/{{train,heldout}}, then
esrgan-train --preset default-x4 --data DIR/data/train --val-data DIR/data/heldout --output DIR
python -m benchmarks.default_model.report --run /work/runs/default_x4 \\
    --load-log LOAD.txt --notes benchmarks/reports/learning/notes.md   # this report
```

Preset `default-x4` (resolved config in the run folder): batch {config['batch_size']}, HR patch
{config['patch_size']} px, {config['psnr_iters']} iterations of L1, Adam lr {config['lr']} with a cosine
schedule to {config['min_lr']}, β = ({config['beta1']}, {config['beta2']}), EMA decay {config['ema_decay']}
(the saved weights), seed {config['seed']}. One CPU thread on a shared, heavily loaded machine
({probe_cpu_features().model}, 2 cores shared by several jobs; {load_summary(load_log)}):
{minutes:.0f} minutes.

## Data

- Training: {", ".join(TRAIN)} (`skimage.data`, except `grace_hopper`: matplotlib's sample portrait;
  grey ones used as RGB; `motorcycle_left` is the left view of `stereo_motorcycle`).
- Held out (`skimage.data`): {", ".join(HELD_OUT)}.
- LR inputs: MATLAB-style antialiased bicubic x1/4, rounded to uint8 (HR mod-cropped to a multiple of 4).
- Metrics: PSNR and SSIM (scikit-image, Gaussian window σ 1.5) on the Y channel (BT.601), 4 px border
  crop; bicubic = MATLAB-style bicubic x4 of the same LR input.

## Final model on the held-out photographs

{per_image}

(re-measured from `default_x4.safetensors`; the run's last validation, iteration {records[-1]['iter']}, gave
{records[-1]['psnr_y']:.3f} dB mean PSNR-Y: a difference of {abs(final.psnr - records[-1]['psnr_y']):.3f} dB.)

## Over iterations (held-out, EMA weights)

{over_time}

![held-out gains over iterations](learning.png)

## Side by side (held-out `chelsea`, crop enlarged x2)

![bicubic | default model | ground truth](side_by_side.png)

The checkpoint is checked in as `benchmarks/reports/default_model/default_x4.safetensors`
({(default_dir / 'default_x4.safetensors').stat().st_size / 1e6:.2f} MB) with its numbers in `default_x4.json`.
"""
    if notes is not None:
        report += "\n" + notes.read_text()
    write_text_atomic(learning / "report.md", report)
    click.echo(f"mean held-out PSNR-Y gain {gain:+.3f} dB; report in {learning / 'report.md'}")


if __name__ == "__main__":
    main()
