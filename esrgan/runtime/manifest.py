"""The record of which model and settings wrote an output folder, so that reruns never mix results.

esrgan-run skips outputs that already exist, so that an interrupted run resumes where it stopped.
That is right only when this run would write the same files: after ``--model other.onnx`` a folder
half old, half new would look complete. So the first run that writes into a folder records the
settings that decide its outputs in ``.esrgan-run.json``; a later run with other settings is
refused (exit 2) before any work, unless ``--overwrite`` asks to redo the outputs, which also
replaces the record. Shards of one run write the same record, so they never conflict.

Recorded: the model file (by ``esrgan.hashing.model_sha256``, which covers an ONNX file's external
data; a record without ``model_digest`` is older and may hold the file's own sha256, which then matches
too), the output scale and, when a lossy format can be written, the quality. Not recorded: the format, which is in every output's suffix (another format writes
other names and skips nothing it should not); tile size and pad, batch, backend and threads, which
change pixels only within the runtime's parity bounds (tiled vs whole: 45-74 dB with x4plus, by tile size and
image; see ``tiling.DEFAULT_TILE_PAD``), not the result.
The record is written just before the first output, so a run that writes nothing leaves nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from esrgan.atomic import create_text_atomic, remove_if_stale, temp_target, write_text_atomic
from esrgan.errors import UsageError
from esrgan.hashing import file_sha256
from esrgan.hashing import model_sha256 as digest_of
from esrgan.runtime.images import FORMATS
from esrgan.runtime.options import RunOptions

MANIFEST_NAME = ".esrgan-run.json"
_LOSSLESS = frozenset({"PNG", "TIFF", "BMP"})  # Pillow formats --quality does not affect
MODEL_DIGEST = "model_sha256"  # what model_sha256 holds; absent from records that held file_sha256


@dataclass(frozen=True)
class OutputSettings:
    """What decides the pixels of the files a run writes into its output folder."""

    model: str  # the model file's name, for messages
    model_sha256: str
    scale: float  # output size / input size: --outscale, else the model's scale
    quality: int | None  # JPEG/WebP quality; None when only lossless files are written
    model_digest: str = MODEL_DIGEST
    path: Path | None = field(default=None, compare=False)  # the model file; not recorded

    def record_text(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if k != "path"}, indent=2) + "\n"

    @classmethod
    def of(cls, model: str | os.PathLike[str], model_scale: int, options: RunOptions) -> OutputSettings:
        lossless = FORMATS.get(options.format.lower()) in _LOSSLESS
        return cls(model=Path(model).name, model_sha256=digest_of(model),
                   scale=float(options.outscale or model_scale), quality=None if lossless else options.quality,
                   path=Path(model))

    def differences(self, recorded: dict[str, object]) -> list[str]:
        """One phrase per setting that differs from ``recorded`` (a folder's record)."""
        found = _model_difference(self.model, self.model_sha256, recorded, self.path)
        if recorded.get("scale") != self.scale:
            found.append(f"scale {_show(self.scale)}, not {_show(recorded.get('scale'))}")
        # A lossless-only run writes no file a lossy one would: their qualities never meet.
        theirs = recorded.get("quality")
        if None not in (theirs, self.quality) and theirs != self.quality:
            found.append(f"quality {self.quality}, not {theirs}")
        return found


def _model_difference(model: str, sha256: str, recorded: dict[str, object], path: Path | None) -> list[str]:
    same = recorded.get("model_sha256") == sha256
    if not same and recorded.get("model_digest") != MODEL_DIGEST and path is not None:
        same = recorded.get("model_sha256") == file_sha256(path)  # a record from before model_digest
    if same:
        return []
    before = recorded.get("model")
    return [f"model {model}, not {before}" if before != model else f"another file named {model}"]


def _refusal(folder: Path, found: list[str]) -> UsageError:
    return UsageError(
        f"{folder} holds outputs written with other settings (this run: {'; '.join(found)}): "
        "choose another output folder, or --overwrite to redo them"
    )


def check_model_early(folder: str | os.PathLike[str], model: str | os.PathLike[str], overwrite: bool) -> None:
    """Refuse, before the model loads, a folder whose record names another model: loading can take a
    minute (a checkpoint's one-time export, ``auto``'s measurement). The scale and quality need the
    loaded model and are checked by ``FolderRecord.check``, as is a record that cannot be read."""
    if overwrite:
        return
    try:
        recorded = json.loads((Path(folder) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(recorded, dict):
        found = _model_difference(Path(model).name, digest_of(model), recorded, Path(model))
        if found:
            raise _refusal(Path(folder), found)


def _show(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)  # scale 4, not 4.0


class FolderRecord:
    """An output folder's record: ``check`` before a run, ``write`` just before its first output."""

    def __init__(self, folder: str | os.PathLike[str], settings: OutputSettings, overwrite: bool) -> None:
        self.folder = Path(folder)
        self.path = self.folder / MANIFEST_NAME
        self.settings = settings
        self.overwrite = overwrite
        self.text = settings.record_text()

    def _differences(self) -> list[str] | None:
        """None when the folder has no record; else what differs from it (empty: nothing)."""
        try:
            recorded = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return [f"an unreadable {MANIFEST_NAME}"]
        return self.settings.differences(recorded) if isinstance(recorded, dict) else [f"an unreadable {MANIFEST_NAME}"]


    def check(self) -> None:
        """Refuse now (before any work) when the folder records other settings, unless overwriting."""
        found = self._differences()
        if found and not self.overwrite:
            raise _refusal(self.folder, found)
        for entry in self.folder.glob(f".{MANIFEST_NAME}.*"):  # temp files a killed run left
            if temp_target(entry.name) == MANIFEST_NAME:
                remove_if_stale(entry)

    def write(self) -> None:
        """Record this run's settings; a shard with the same ones may have done so already."""
        if create_text_atomic(self.path, self.text):
            return
        found = self._differences()
        if found is None or (found and self.overwrite):
            write_text_atomic(self.path, self.text)
        elif found:
            raise _refusal(self.folder, found)  # another run with other settings started on this folder meanwhile
