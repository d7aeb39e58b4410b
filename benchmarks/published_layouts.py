"""Write a generator's weights under each published key layout (loader tests and the closing check).

The renaming here is written out independently of ``esrgan/models/formats.py`` (from the
published code's module names), so a test compares the loader against a second implementation
instead of against itself.

``python -m benchmarks.published_layouts [DIR]`` writes paper-size files of all five families to DIR
(default /tmp/esrgan_layouts; never commit them) and prints what ``describe_checkpoint`` finds, the
way a user would call it: ``python -c "import esrgan; print(esrgan.describe_checkpoint(P))"``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import torch

from esrgan.models.spec import GeneratorSpec

StateDict = dict[str, torch.Tensor]


def rrdb_spec(scale: int, *, nf: int = 8, nb: int = 2, gc: int = 4, unshuffle: bool = False, ch: int = 3):
    return GeneratorSpec(
        arch="rrdbnet", scale=scale, num_feat=nf, num_block=nb, num_grow_ch=gc, num_in_ch=ch, num_out_ch=ch,
        pixel_unshuffle=unshuffle,
    )


def gan_spec(scale: int, *, nf: int = 8, nb: int = 1, ch: int = 3):
    return GeneratorSpec(
        arch="pytorch-gan", scale=scale, num_feat=nf, num_block=nb, num_grow_ch=nf, num_in_ch=ch, num_out_ch=ch,
    )


def random_model(spec: GeneratorSpec, seed: int = 0) -> torch.nn.Module:
    """A generator with random (not default-init) weights, so a wrong mapping cannot hide."""
    from esrgan.models.build import build_generator

    torch.manual_seed(seed)
    model = build_generator(spec).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return model


def to_official(sd: StateDict) -> StateDict:
    """xinntao/ESRGAN RRDBNet_arch.py names."""
    out = {}
    for k, v in sd.items():
        k2 = re.sub(r"^body\.(\d+)\.rdb(\d)\.", r"RRDB_trunk.\1.RDB\2.", k)
        k2 = re.sub(r"^conv_up(\d)\.", r"upconv\1.", k2)
        k2 = k2.replace("conv_body.", "trunk_conv.").replace("conv_hr.", "HRconv.")
        out[k2] = v
    return out


def to_old_arch(sd: StateDict, num_block: int, num_up: int) -> StateDict:
    """The old sequential arch: model.0 | model.1.sub[RRDB..., trunk conv] | (Upsample, conv, lrelu) x n |
    HR conv, lrelu, last conv. Convs inside RDBs are conv_block Sequentials (conv at index 0)."""
    out = {}
    for k, v in sd.items():
        param = k.rsplit(".", 1)[1]
        if k.startswith("body."):
            n, rdb, conv = re.match(r"body\.(\d+)\.rdb(\d)\.conv(\d)\.", k).groups()
            out[f"model.1.sub.{n}.RDB{rdb}.conv{conv}.0.{param}"] = v
        elif k.startswith("conv_body."):
            out[f"model.1.sub.{num_block}.{param}"] = v
        elif k.startswith("conv_first."):
            out[f"model.0.{param}"] = v
        elif k.startswith("conv_up"):
            i = int(k[len("conv_up")])
            out[f"model.{3 * i}.{param}"] = v  # upsample at 3i-1, conv at 3i, lrelu at 3i+1
        elif k.startswith("conv_hr."):
            out[f"model.{2 + 3 * num_up}.{param}"] = v
        elif k.startswith("conv_last."):
            out[f"model.{4 + 3 * num_up}.{param}"] = v
        else:
            raise AssertionError(k)
    return out


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
    folder = Path(argv[0] if argv else "/tmp/esrgan_layouts")
    for path in write_paper_size_files(folder):
        code = f"import esrgan; print(esrgan.describe_checkpoint({str(path)!r}))"
        print(f"$ python -c {code!r}", flush=True)
        subprocess.run([sys.executable, "-c", code], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
