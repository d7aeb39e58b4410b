"""The Python API: ``Upscaler`` loads a model once and upscales arrays, Pillow images or folders.

The CLI is a thin layer over this class, so programs get exactly what ``esrgan-run`` does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, overload

import numpy as np
from PIL import Image

from esrgan.errors import ImageError, UsageError
from esrgan.runtime import images, paths
from esrgan.runtime.backends.base import Backend
from esrgan.runtime.backends.registry import check_precision, load_backend
from esrgan.runtime.engine import ImageWork, TileEngine
from esrgan.runtime.manifest import FolderRecord, OutputSettings
from esrgan.runtime.options import RunOptions, check_outscale
from esrgan.runtime.pipeline import FolderRun, Summary, finish_image


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


class Upscaler:
    """A loaded model plus tiling settings.

    ``model``: an .onnx, a TensorRT .engine or a checkpoint path; None = the built-in default model.
    ``tile``: px per tile side, ``"auto"`` (largest that fits), or 0 (whole image in one pass).
    ``backend``: a name from ``esrgan.runtime.backends.registry.CHOICES`` or an already loaded Backend.
    Every default is ``RunOptions``' (the same as ``esrgan-run``'s), read from its fields.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        backend: str | Backend = RunOptions.backend,
        tile: int | str = RunOptions.tile,
        tile_pad: int = RunOptions.tile_pad,
        batch: int = RunOptions.batch,
        *,
        device_id: int = RunOptions.device_id,
        threads: int | None = RunOptions.threads,
        precision: str = RunOptions.precision,
        say: Callable[[str], None] | None = _stderr,
    ) -> None:
        self.say = say or (lambda line: None)
        # The file whose sha256 an output folder's record names (see esrgan.runtime.manifest);
        # None for a Backend given ready-made, whose source file is not known here.
        self.model_path: Path | None = None
        if isinstance(backend, Backend):
            self.backend = backend
        else:
            if model is None:
                from esrgan.runtime.default_model import default_model_notice, default_model_path

                model = default_model_path()
                self.say(default_model_notice(model))
            check_precision(backend, precision)
            self.model_path = Path(model)
            pinned = {} if precision == "auto" else {"precision": precision}
            self.backend = load_backend(self.model_path, backend, device_id=device_id, threads=threads, say=self.say,
                                        **pinned)
        self.tile, self.tile_pad, self.batch = tile, tile_pad, batch

    @property
    def scale(self) -> int:
        return self.backend.scale

    # ---- single images ----------------------------------------------------------------------
    @overload
    def upscale(self, image: np.ndarray, outscale: float | None = None) -> np.ndarray: ...
    @overload
    def upscale(self, image: Image.Image, outscale: float | None = None) -> Image.Image: ...

    def upscale(self, image: Any, outscale: float | None = None) -> Any:
        """Upscale one image; the result has the input's type, channels and dtype (float stays float)."""
        outscale = check_outscale(outscale)
        if isinstance(image, (str, bytes, os.PathLike)):
            raise UsageError(f"upscale() takes an image (a NumPy array or a PIL image), not a path ({image!r}): "
                             "open it first, or use upscale_folder() for files")
        if isinstance(image, Image.Image):
            decoded = images.from_pil(image)
            return images.to_pil(self._run_one(decoded, outscale), decoded)
        arr = np.asarray(image)
        decoded = images.from_array(arr)
        out = self._run_one(decoded, outscale)
        if arr.ndim == 2:
            out = out[..., 0]
        if np.issubdtype(arr.dtype, np.floating):
            return (out.astype(np.float32) / 65535.0).astype(arr.dtype)
        return out

    def _run_one(self, decoded: images.Decoded, outscale: float | None) -> np.ndarray:
        done: list[ImageWork] = []
        errors: list[str] = []
        engine = TileEngine(
            self.backend, self.tile, self.tile_pad, self.batch,
            on_done=done.append, on_fail=lambda work, msg: errors.append(msg), say=self.say,
        )
        engine.submit(0, decoded)
        if engine.shrunk:  # the next image starts at the tile and batch that fitted
            self.tile, self.batch = engine.tile, engine.batch
        if errors or not done:
            raise ImageError(errors[0] if errors else "the model produced no output")
        return finish_image(done[0], outscale, self.scale)

    # ---- folders ----------------------------------------------------------------------------
    def upscale_folder(
        self,
        input: str | os.PathLike[str],
        output: str | os.PathLike[str],
        *,
        format: str = RunOptions.format,
        suffix: str = RunOptions.suffix,
        quality: int = RunOptions.quality,
        outscale: float | None = RunOptions.outscale,
        overwrite: bool = RunOptions.overwrite,
        shard: str | tuple[int, int] | None = RunOptions.shard,
        max_pixels: int = RunOptions.max_pixels,
        progress: bool = True,
        workers: int = RunOptions.workers,
    ) -> Summary:
        """Upscale a folder (recursive, mirrored), a file or a glob into ``output``; see ``Summary``.

        The defaults are ``RunOptions``' (``esrgan-run``'s); ``shard`` also takes the CLI's "I/N" text.
        A folder written with another model or other settings is refused unless ``overwrite``
        (see ``esrgan.runtime.manifest``).
        """
        shard_t = paths.parse_shard(shard) if isinstance(shard, str) else shard
        plan = paths.plan_run(str(input), output, format, shard_t, suffix=suffix, overwrite=overwrite)
        for note in plan.notes:
            self.say(f"note: {note}")
        options = RunOptions(
            tile=self.tile, tile_pad=self.tile_pad, batch=self.batch, format=format, suffix=suffix, quality=quality,
            outscale=outscale, overwrite=overwrite, shard=shard_t, max_pixels=max_pixels, workers=workers,
        )
        record = None
        if plan.folder is not None and plan.jobs and self.model_path is not None:
            record = FolderRecord(plan.folder, OutputSettings.of(self.model_path, self.scale, options), overwrite)
            record.check()
        run = FolderRun(self.backend, options, say=self.say, progress=progress,
                        before_writing=record.write if record else None)
        return run.run(plan.jobs, plan.unreadable)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Upscaler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
