"""Write paper-size generator weights under each published key layout (the closing check).

The layouts come from ``tests/models/published_layouts.py``, which the loader tests use too.

``python -m benchmarks.published_layouts [DIR]`` writes paper-size files of all five families to DIR
(default /tmp/esrgan_layouts; never commit them) and prints what ``describe_checkpoint`` finds, the
way a user would call it: ``python -c "import esrgan; print(esrgan.describe_checkpoint(P))"``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

from tests.models.published_layouts import gan_spec, random_model, rrdb_spec, to_official, to_old_arch


def write_paper_size_files(folder: Path) -> list[Path]:
    """One file per family and per interesting variant, with random weights at the paper's sizes."""
    from safetensors.torch import save_file

    from esrgan.models.checkpoints import save_generator

    folder.mkdir(parents=True, exist_ok=True)
    x4 = random_model(rrdb_spec(4, nf=64, nb=23, gc=32)).state_dict()
    x2 = random_model(rrdb_spec(2, nf=64, nb=23, gc=32, unshuffle=True)).state_dict()
    anime = random_model(rrdb_spec(4, nf=64, nb=6, gc=32)).state_dict()
    files = {
        "own_x4.safetensors": None,
        "RealESRGAN_x4plus_like.pth": {"params_ema": x4, "params": x4},
        "RealESRGAN_x2plus_like_dataparallel.pth": {"params_ema": {f"module.{k}": v for k, v in x2.items()}},
        "RealESRGAN_x4plus_anime_6B_like.safetensors": anime,
        "RRDB_ESRGAN_x4_official_like.pth": to_official(x4),
        "RRDB_ESRGAN_x4_official_fp16_legacy.pth": {k: v.half() for k, v in to_official(x4).items()},
        "old_arch_x4_like.pth": to_old_arch(x4, 23, 2),
        "old_arch_x1_like.pth": to_old_arch(random_model(rrdb_spec(1, nf=64, nb=23, gc=32)).state_dict(), 23, 0),
        "old_arch_x8_like.pth": to_old_arch(random_model(rrdb_spec(8, nf=64, nb=23, gc=32)).state_dict(), 23, 3),
        "pytorch_gan_generator_x4.pth": random_model(gan_spec(4, nf=64, nb=23)).state_dict(),
    }
    paths = []
    for name, state in files.items():
        path = folder / name
        if state is None:
            save_generator(random_model(rrdb_spec(4, nf=64, nb=23, gc=32)), path)
        elif path.suffix == ".safetensors":
            save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        else:
            torch.save(state, path, _use_new_zipfile_serialization="legacy" not in name)
        paths.append(path)
    return paths


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="/tmp/esrgan_layouts",
                        help="where the paper-size files are written (about 400 MB)")
    folder = Path(parser.parse_args(argv).folder)
    for path in write_paper_size_files(folder):
        code = f"import esrgan; print(esrgan.describe_checkpoint({str(path)!r}))"
        print(f"$ python -c {code!r}", flush=True)
        subprocess.run([sys.executable, "-c", code], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
