"""The training loop of both stages: ``train(config) -> TrainResult``.

PSNR stage: L1 only. GAN stage: starts from the PSNR stage's EMA weights (the two models must share an
origin for network interpolation), perceptual + RaGAN + pixel losses, a discriminator. Both stages keep
an EMA of the generator and write it as ``<stage>.safetensors``; the full state for exact resume is
``state_<stage>.pt``. Under torchrun the generator is wrapped in DistributedDataParallel and only rank 0
touches files.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from esrgan.atomic import write_text_atomic
from esrgan.errors import CheckpointError, ConfigError, TrainingError, UsageError, first_line
from esrgan.models.build import build_generator, spec_of
from esrgan.models.checkpoints import load_generator, save_generator
from esrgan.train import losses
from esrgan.train.config import TrainConfig
from esrgan.train.data import PatchDataset, batches, scan_images
from esrgan.train.distributed import (
    DistInfo,
    average_gradients,
    barrier,
    gather_batch,
    init_distributed,
    mean_across,
    shutdown,
)
from esrgan.train.ema import EMA
from esrgan.train.logbook import append_log, plot_log, truncate_log
from esrgan.train.state import load_state, rng_state, save_state, set_rng_state, state_path, weights_path
from esrgan.train.validate import ValImage, ValResult, evaluate, prepare_validation

log = logging.getLogger("esrgan.train")

CONFIG_FILE = "config.yaml"
LOG_FILE = "log.jsonl"
PLOT_FILE = "training.png"
PLOT_INTERVAL_S = 120.0  # re-plot at a validation at most this often (always at the end of a stage)


@dataclass
class TrainResult:
    output: Path
    checkpoints: dict[str, Path] = field(default_factory=dict)
    iterations: dict[str, int] = field(default_factory=dict)
    validation: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def psnr_checkpoint(self) -> Path | None:
        return self.checkpoints.get("psnr")

    @property
    def gan_checkpoint(self) -> Path | None:
        return self.checkpoints.get("gan")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available to PyTorch here (use --device cpu)")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, stage: str) -> Any:
    """The stage's learning-rate schedule, stepped once per iteration."""
    iters = config.psnr_iters if stage == "psnr" else config.gan_iters
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(iters, 1), eta_min=config.min_lr)
    milestones = config.psnr_milestones if stage == "psnr" else config.gan_milestones
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones), gamma=config.lr_gamma)


class StageRun:
    """One stage of training: models, optimisers, the loop, validation and saving."""

    def __init__(
        self, config: TrainConfig, stage: str, device: torch.device, info: DistInfo, dataset: PatchDataset,
        val_images: list[ValImage],
    ) -> None:
        self.config, self.stage, self.device, self.info = config, stage, device, info
        self.dataset, self.val_images = dataset, val_images
        self.out = Path(config.output or ".")
        self.iters = config.psnr_iters if stage == "psnr" else config.gan_iters
        self.state_file = state_path(self.out, stage)
        self.weights_file = weights_path(self.out, stage)
        self.last_val: ValResult | None = None
        self.last_plot = time.monotonic()
        seed_everything(config.seed + (0 if stage == "psnr" else 1))
        self.g = build_generator(config.spec).to(device)
        if stage == "gan":
            self._init_from_psnr()
        self.ema = EMA(self.g, config.ema_decay)
        self.g_ddp: nn.Module = self.g
        if info.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.g_ddp = nn.parallel.DistributedDataParallel(self.g, device_ids=ids)
        lr = config.lr if stage == "psnr" else config.gan_lr
        betas = (config.beta1, config.beta2)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=lr, betas=betas)
        self.sched_g = make_scheduler(config, self.opt_g, stage)
        self.d: nn.Module | None = None
        if stage == "gan":
            from esrgan.models.discriminators import build_discriminator
            from esrgan.models.vgg import VGGFeatureExtractor

            self.d = build_discriminator(config.arch, config.patch_size, config.disc_num_feat).to(device)
            self.opt_d = torch.optim.Adam(self.d.parameters(), lr=lr, betas=betas)
            self.sched_d = make_scheduler(config, self.opt_d, stage)
            self.perceptual = losses.PerceptualLoss(VGGFeatureExtractor(config.vgg_weights)).to(device)
        amp_fp16 = config.amp and config.amp_dtype == "fp16"
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp_fp16)
        self.start_iter = 0

    # ---- setup ---------------------------------------------------------------------------------
    def _init_from_psnr(self) -> None:
        src = gan_start(self.config, self.out)
        model = load_generator(src)
        if spec_of(model) != self.config.spec:
            raise ConfigError(
                f"{src} is a {spec_of(model).describe()} generator but the config asks for "
                f"{self.config.spec.describe()}"
            )
        self.g.load_state_dict(model.state_dict())

    def resume(self) -> None:
        state = load_state(self.state_file, self.stage, self.iters)
        self._restore(state)
        if self.info.is_main:
            truncate_log(self.out / LOG_FILE, self.stage, self.start_iter)
            log.info("resuming the %s stage at iteration %d", self.stage, self.start_iter)

    def _restore(self, state: dict[str, Any]) -> None:
        """Restore each entry (checked by ``load_state``), naming the entry whose contents do not fit."""
        if state["spec"] != self.config.spec.to_dict():
            raise ConfigError(f"{self.state_file} was trained with a different generator ({state['spec']})")
        restore = {"g": self.g.load_state_dict, "ema": self.ema.load_state_dict, "opt_g": self.opt_g.load_state_dict,
                   "sched_g": self.sched_g.load_state_dict, "scaler": self.scaler.load_state_dict, "rng": set_rng_state}
        if self.d is not None:
            restore.update(d=self.d.load_state_dict, opt_d=self.opt_d.load_state_dict,
                           sched_d=self.sched_d.load_state_dict)
        for entry, load in restore.items():
            try:
                load(state[entry])
            except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
                # Wrong shapes or contents (hand-edited, another version, another model): one line.
                what = f"missing {exc}" if isinstance(exc, KeyError) else first_line(exc, limit=200)
                raise CheckpointError(
                    f"{self.state_file}: entry {entry!r} of the training state does not fit ({what}); "
                    f"not a usable {self.stage}-stage state"
                ) from None
        self.start_iter = state["iter"]

    def state(self, iteration: int) -> dict[str, Any]:
        state: dict[str, Any] = {
            "stage": self.stage, "iter": iteration, "config": self.config.to_dict(),
            "spec": self.config.spec.to_dict(), "g": self.g.state_dict(), "ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(), "sched_g": self.sched_g.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": rng_state(),
            "data": {"seed": self.config.seed, "position": iteration * self.config.batch_size},
        }
        if self.d is not None:
            state.update(d=self.d.state_dict(), opt_d=self.opt_d.state_dict(), sched_d=self.sched_d.state_dict())
        return state

    # ---- one iteration -------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if not self.config.amp:
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.config.amp_dtype == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _check(self, iteration: int, values: dict[str, torch.Tensor]) -> dict[str, float]:
        """Losses averaged over ranks; stop on the first non-finite one, naming it and the iteration."""
        names = list(values)
        stacked = mean_across(self.info, torch.stack([values[n].detach().float() for n in names]))
        result = dict(zip(names, stacked.tolist(), strict=True))
        for name, value in result.items():
            if not math.isfinite(value):
                kept = self.state_file if self.state_file.exists() else "none saved yet"
                raise TrainingError(
                    f"non-finite {name} loss ({value}) at iteration {iteration} of the {self.stage} stage; "
                    f"stopped, the last good state is kept ({kept})"
                )
        return result

    def _backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()

    def _step(self, optimizer: torch.optim.Optimizer) -> None:
        self.scaler.step(optimizer)

    def _pixel_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """L1 on [0, 1] images; pytorch-gan's on ImageNet-normalised ones, as PyTorch-GAN's ESRGAN has it."""
        if self.config.arch == "pytorch-gan":
            return losses.normalized_l1_loss(output, target, self.g.std)
        return losses.l1_loss(output, target)

    def psnr_step(self, iteration: int, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        with self._autocast():
            loss = self._pixel_loss(self.g_ddp(lr).float(), hr)
        values = self._check(iteration, {"pix": loss})
        self._backward(loss, self.opt_g)
        self._step(self.opt_g)
        self.scaler.update()
        return values

    def gan_step(self, iteration: int, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        """BasicSR's ESRGANModel.optimize_parameters: a G step, then a D step on the same batch.

        Same losses and gradients; it differs in three ways. BasicSR runs D three times in its D step
        (the fake batch twice) where this runs it twice: only D's batch-norm running statistics, which
        training never uses (D stays in train mode), see one update fewer. The warm-up is PyTorch-GAN's
        (pixel loss only, no D step). And under DDP the discriminator sees the global batch
        (``gather_batch``), so its batch-norm statistics and the RaGAN batch means are those of one
        process with that batch, where BasicSR keeps them per process.
        """
        assert self.d is not None
        cfg = self.config
        warmup = iteration <= cfg.warmup_iters
        for p in self.d.parameters():
            p.requires_grad_(False)
        with self._autocast():
            fake = self.g_ddp(lr).float()
            if warmup:  # PyTorch-GAN's ESRGAN warm-up: pixel loss only, the discriminator waits
                g_values = {"pix": self._pixel_loss(fake, hr)}
                g_loss = g_values["pix"]
            else:
                all_hr = gather_batch(self.info, hr)
                all_fake = gather_batch(self.info, fake)
                with torch.no_grad():
                    real_logits = self.d(all_hr).float()
                fake_logits = self.d(all_fake).float()
                g_values = {
                    "pix": cfg.pixel_weight * self._pixel_loss(fake, hr),
                    "percep": cfg.perceptual_weight * self.perceptual(fake, hr),
                    "gan": cfg.gan_weight * losses.ragan_g_loss(real_logits, fake_logits),
                }
                g_loss = g_values["pix"] + g_values["percep"] + g_values["gan"]
        values = self._check(iteration, g_values)
        self._backward(g_loss, self.opt_g)
        self._step(self.opt_g)
        if not warmup:
            for p in self.d.parameters():
                p.requires_grad_(True)
            with self._autocast():
                real_logits = self.d(all_hr).float()
                fake_logits = self.d(all_fake.detach()).float()
                d_loss = losses.ragan_d_loss(real_logits, fake_logits)
            values.update(self._check(iteration, {"d": d_loss}))
            self._backward(d_loss, self.opt_d)
            average_gradients(self.info, self.d)  # equal on every rank already; keeps them in lockstep
            self._step(self.opt_d)
        self.scaler.update()
        return values

    # ---- validation, logging, saving -----------------------------------------------------------
    def validate(self, iteration: int) -> None:
        if not self.info.is_main or not self.val_images:
            return
        result = evaluate(self.ema.model, self.val_images, self.config.scale, self.device)
        self.last_val = result
        append_log(self.out / LOG_FILE, {"stage": self.stage, "kind": "val", "iter": iteration, **result.as_dict()})
        tqdm.write(
            f"[{self.stage} {iteration}] validation PSNR-Y {result.psnr:.3f} dB (bicubic {result.bicubic_psnr:.3f}), "
            f"SSIM-Y {result.ssim:.4f} (bicubic {result.bicubic_ssim:.4f})"
        )
        warning = result.constant_warning()
        if warning:
            log.warning("[%s %d] %s", self.stage, iteration, warning)
        if time.monotonic() - self.last_plot > PLOT_INTERVAL_S:
            plot_log(self.out / LOG_FILE, self.out / PLOT_FILE)
            self.last_plot = time.monotonic()

    def save(self, iteration: int) -> None:
        if self.info.is_main:
            save_state(self.state_file, self.state(iteration))
        barrier(self.info)

    def write_weights(self) -> Path:
        if self.info.is_main:
            meta = {
                "esrgan.stage": self.stage, "esrgan.iterations": str(self.iters),
                "esrgan.preset": self.config.preset, "esrgan.ema_decay": str(self.config.ema_decay),
            }
            save_generator(self.ema.model, self.weights_file, metadata=meta)
            plot_log(self.out / LOG_FILE, self.out / PLOT_FILE)
        barrier(self.info)
        return self.weights_file

    def _after_step(self, iteration: int, values: dict[str, float], elapsed: float) -> None:
        """Log, validate and save on their schedules (always at the stage's last iteration)."""
        cfg, last = self.config, iteration == self.iters
        if self.info.is_main and (iteration % cfg.log_every == 0 or last):
            append_log(self.out / LOG_FILE, {
                "stage": self.stage, "kind": "train", "iter": iteration, "lr": self.opt_g.param_groups[0]["lr"],
                "elapsed_s": round(elapsed, 2), **{f"loss_{k}": v for k, v in values.items()},
            })
        if iteration % cfg.val_every == 0 or last:
            self.validate(iteration)
        if iteration % cfg.save_every == 0 or last:
            self.save(iteration)

    # ---- the loop ------------------------------------------------------------------------------
    def run(self) -> Path:
        cfg = self.config
        step = self.psnr_step if self.stage == "psnr" else self.gan_step
        if self.start_iter >= self.iters:
            return self.write_weights()  # a finished stage: (re)write its EMA weights from the state
        stream = batches(
            self.dataset, batch_size=cfg.batch_size, start_iter=self.start_iter, rank=self.info.rank,
            world=self.info.world, workers=cfg.workers, pin_memory=self.device.type == "cuda",
        )
        self.g.train()
        if self.d is not None:
            self.d.train()
        bar = tqdm(
            total=self.iters, initial=self.start_iter, desc=f"{self.stage} stage", unit="it",
            disable=not self.info.is_main, dynamic_ncols=True,
        )
        started = time.monotonic()
        try:
            for iteration in range(self.start_iter + 1, self.iters + 1):
                lr_img, hr_img = next(stream)
                values = step(iteration, lr_img.to(self.device, non_blocking=True),
                              hr_img.to(self.device, non_blocking=True))
                self.ema.update(self.g)
                self.sched_g.step()
                if self.d is not None:
                    self.sched_d.step()
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)
                self._after_step(iteration, values, time.monotonic() - started)
        finally:
            bar.close()  # ends the bar's line, so an error message starts on its own line
        return self.write_weights()


def gan_start(config: TrainConfig, out: Path) -> Path:
    """The PSNR weights the GAN stage starts from (--init, else OUTPUT/psnr.safetensors); they must exist."""
    src = Path(config.init) if config.init else weights_path(out, "psnr")
    if not src.is_file():
        raise TrainingError(
            f"the GAN stage starts from the PSNR stage's weights, but {src} does not exist: "
            "run --stage psnr first (same --output) or pass --init PSNR.safetensors"
        )
    return src


def _output(config: TrainConfig) -> Path:
    return Path(config.output or ".")


def _prepare_output(config: TrainConfig, info: DistInfo) -> Path:
    out = _output(config)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        existing = [state_path(out, s) for s in config.stages if state_path(out, s).exists()]
        if not config.resume and existing:
            raise UsageError(
                f"{existing[0]} exists: pass --resume to continue that run, or choose another --output"
            )
        if config.resume and not existing:
            names = " or ".join(state_path(out, s).name for s in config.stages)
            raise UsageError(f"--resume: nothing to resume in {out} (no {names}); run without --resume to start")
        write_text_atomic(out / CONFIG_FILE, config.to_yaml())
    barrier(info)
    return out


def train(config: TrainConfig, on_ready: Callable[[TrainConfig], None] | None = None) -> TrainResult:
    """Run the configured stage(s); returns where the EMA checkpoints were written.

    The data, validation images, device and output folder are checked first, so a mistake ends in
    one line before anything is written; ``on_ready(config)`` is then called once (on the main
    process) before training starts: the CLI prints the resolved config there, not above an error.
    """
    config.validate()
    device = resolve_device(config.device)
    if config.amp and device.type != "cuda":
        raise UsageError("--amp needs a CUDA device (mixed precision is for GPUs; use --no-amp on CPU)")
    info = init_distributed(device.type)
    try:
        if info.enabled and device.type == "cuda":
            device = torch.device("cuda", info.local_rank)
            torch.cuda.set_device(device)
        if not info.is_main:
            log.setLevel(logging.ERROR)  # warnings once, from rank 0
        if "psnr" not in config.stages:
            gan_start(config, _output(config))  # a GAN-only run needs its start before anything else
        paths = scan_images(config.data or "", config.patch_size)
        val_images = prepare_validation(config.val_data, config.scale) if config.val_data and info.is_main else []
        out = _prepare_output(config, info)
        if on_ready is not None and info.is_main:
            on_ready(config)
        dataset = PatchDataset(paths, config.patch_size, config.scale, config.seed, cache=config.cache_images)
        result = TrainResult(output=out)
        for stage in config.stages:
            run = StageRun(config, stage, device, info, dataset, val_images)
            if config.resume and run.state_file.exists():
                run.resume()
            elif config.resume:
                log.info("no saved state for the %s stage: it starts from iteration 0", stage)
            result.checkpoints[stage] = run.run()
            result.iterations[stage] = run.iters
            if run.last_val is not None:
                result.validation[stage] = run.last_val.as_dict()
        return result
    finally:
        shutdown(info)
