"""INT8 export: static QDQ quantisation of an FP32 ONNX model, calibrated on real images.

Uses ONNX Runtime's ``quantize_static`` (QDQ format, per-channel weights), which both ONNX Runtime
(QLinearConv with VNNI) and OpenVINO (its LPT pass turns QDQ pairs into INT8 kernels) run as INT8.

Choices, measured on the paper-size x4 RRDBNet with real pretrained weights (Real-ESRGAN x4plus) and
with random ones (benchmarks/reports/cpu/report.md, "INT8"):
* Some convolutions stay FP32 (``keep_fp32``): the first conv sees raw pixels, and the upsampling
  convs, ``conv_hr`` and ``conv_last`` write the output pixels directly, so their rounding is not
  damped by any residual branch; the 23 RRDBs (~94 % of the multiply-adds) sit inside residual
  branches scaled by 0.2 and tolerate INT8 best. The sweep gives the quality and speed of each option.
* Calibration: MinMax (default); Percentile and Entropy were within 0.3 dB of it (38.3 / 38.6 /
  38.3 dB held out on the real weights), inside the crop-to-crop spread. Activations are asymmetric uint8
  (LeakyReLU outputs are mostly positive), weights symmetric int8 per output channel.
The parity figure (PSNR etc. vs the FP32 model on held-out photographs) goes into ``esrgan.parity``
so that the runtime and users see how faithful the file is; the file is written atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from esrgan.errors import ImageError, ModelError, UsageError
from esrgan.metadata import PARITY, PRECISION
from esrgan.parity import Parity, compare, worst
from esrgan.runtime.images import IMAGE_SUFFIXES

METHODS = ("minmax", "entropy", "percentile")
# Convolutions (by the parameter name of their weight) kept in FP32 by default: see the module docstring.
DEFAULT_KEEP_FP32 = ("conv_first", "conv_up", "conv_hr", "conv_last")


@dataclass(frozen=True)
class Int8Report:
    """What was quantised and how faithful it is; also written into the model's metadata."""

    method: str
    calibration_crops: int
    held_out: tuple[str, ...]  # file names of the held-out images (their folder is the user's business)
    kept_fp32: tuple[str, ...]
    parity: Parity

    def to_json(self) -> str:
        return json.dumps({
            "precision": "int8", "reference": "fp32 onnx model (onnxruntime cpu)",
            **self.parity.to_dict(), "method": self.method, "calibration_crops": self.calibration_crops,
            "held_out": list(self.held_out), "kept_fp32": list(self.kept_fp32),
        })


def image_files(folder: str | os.PathLike[str]) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"{root}: calibration folder not found")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise UsageError(f"{root}: no images to calibrate on ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def split_held_out(files: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """Every 4th image is held out for the parity figure (at least one when there are two or more)."""
    if len(files) < 2:
        return list(files), list(files)
    held = [f for i, f in enumerate(files) if i % 4 == 3] or [files[-1]]
    return [f for f in files if f not in held], held


#: Pillow mode the calibration photographs are read in, by the model's input channels.
CALIBRATION_MODES = {1: "L", 3: "RGB"}


def image_crops(files: Sequence[Path], crop: int, per_image: int, channels: int = 3) -> Iterator[np.ndarray]:
    """(1, channels, crop, crop) float32 [0, 1] crops on a regular grid over each image (deterministic);
    ``channels``: 3 (RGB) or 1 (grey, for grey models)."""
    from PIL import Image

    for path in files:
        try:
            with Image.open(path) as im:
                rgb = np.asarray(im.convert(CALIBRATION_MODES[channels]), dtype=np.float32) / 255.0
        except OSError as exc:
            raise ImageError(f"{path}: cannot read it for calibration ({exc})") from None
        if rgb.ndim == 2:
            rgb = rgb[..., None]
        h, w = rgb.shape[:2]
        c = min(crop, h, w)
        side = max(1, int(np.ceil(np.sqrt(per_image))))
        ys = np.linspace(0, h - c, side).astype(int)
        xs = np.linspace(0, w - c, side).astype(int)
        points = [(y, x) for y in ys for x in xs][:per_image]
        for y, x in points:
            tile = rgb[y : y + c, x : x + c].transpose(2, 0, 1)[None]
            yield np.ascontiguousarray(tile)


def conv_nodes_for(model_path: str | os.PathLike[str], prefixes: Sequence[str]) -> list[str]:
    """Names of the Conv nodes whose weight parameter starts with one of ``prefixes``.

    Matching on the weight's name (``conv_first.weight``...) rather than the node name works for both
    of torch's ONNX exporters, which name nodes differently but keep parameter names.
    """
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    names = []
    for node in graph.node:
        if node.op_type == "Conv" and len(node.input) > 1:
            weight = node.input[1]
            if any(weight.startswith(p) or f"/{p}" in node.name or node.name.startswith(p) for p in prefixes):
                names.append(node.name)
    return names


def _calibration_reader(crops: list[np.ndarray], input_name: str):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(crops)

        def get_next(self):  # noqa: ANN202 - ORT's interface
            x = next(self._it, None)
            return None if x is None else {input_name: x}

        def rewind(self) -> None:
            self._it = iter(crops)

    return Reader()


def _session(path: str | os.PathLike[str], threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def measure_int8_parity(
    fp32_path: str | os.PathLike[str], int8_path: str | os.PathLike[str], tiles: Sequence[np.ndarray],
    threads: int | None = None,
) -> Parity:
    """Worst parity of the INT8 model's output against the FP32 model's over ``tiles`` (ONNX Runtime)."""
    ref, q = _session(fp32_path, threads), _session(int8_path, threads)
    name = ref.get_inputs()[0].name
    return worst([compare(ref.run(None, {name: t})[0], q.run(None, {name: t})[0]) for t in tiles])


def quantize_int8(
    fp32_onnx_path: str | os.PathLike[str],
    calib_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    method: str = "minmax",
    keep_fp32: Sequence[str] = DEFAULT_KEEP_FP32,
    crop: int = 32,
    eval_crop: int = 64,
    crops_per_image: int = 2,
    max_crops: int = 12,
    held_out_dir: str | os.PathLike[str] | None = None,
    activation_type: str = "uint8",
    threads: int | None = None,
) -> Path:
    """Write the INT8 (QDQ, per-channel) version of an FP32 ONNX model and its parity; returns out_path.

    ``calib_dir``: real photographs; crops of ``crop`` px calibrate the activation ranges. The default,
    12 crops of 32 px, is the setting measured in benchmarks/reports/cpu. Whether more or larger crops
    help depends on the model (worst held-out tile; 12 x 32 / 12 x 64 / 30 x 32 px): the built-in
    32-channel model 44.3 / 46.5 / 46.7 dB (47.6 with 30 x 64), Real-ESRGAN x4plus 36.4 / 36.1 / 35.2 dB,
    because MinMax ranges that cover more data also round more coarsely. With MinMax, ONNX Runtime
    1.32's peak memory follows the crop size, not the count (x4plus: max RSS 0.98 GB with 12 crops of
    32 px, 0.99 GB with 30, 2.55 GB with 12 of 64 px). Parity is
    measured on ``held_out_dir`` when given, else on every 4th image of ``calib_dir``, which is then
    not used for calibration (two ``eval_crop`` px tiles per image). ``keep_fp32``: weight-name prefixes of the convs left in FP32.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise UsageError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")
    if activation_type not in ("uint8", "int8"):
        raise UsageError(f"activation type must be uint8 or int8, got {activation_type!r}")
    src, out = Path(fp32_onnx_path), Path(out_path)
    if not src.is_file():
        raise ModelError(f"{src}: no such model file")
    files = image_files(calib_dir)
    if held_out_dir is not None:
        calib_files, held_files = files, image_files(held_out_dir)
    else:
        calib_files, held_files = split_held_out(files)
    from esrgan.export.onnx_metadata import load_onnx, props_of, save_onnx, set_props

    proto = load_onnx(src, load_weights=False)
    meta = props_of(proto)
    dims = proto.graph.input[0].type.tensor_type.shape.dim if proto.graph.input else []
    channels = dims[1].dim_value if len(dims) == 4 and dims[1].dim_value else 3  # the model's input channels
    if channels not in CALIBRATION_MODES:
        raise UsageError(f"{src}: INT8 calibration reads photographs as RGB or grey; this model takes "
                         f"{channels} channels")
    crops = list(image_crops(calib_files, crop, crops_per_image, channels))[:max_crops]
    held_tiles = list(image_crops(held_files, eval_crop, 2, channels))
    if meta.get(PRECISION, "fp32") != "fp32":
        raise ModelError(f"{src}: INT8 quantisation starts from the FP32 model, this one is {meta[PRECISION]}")
    input_name = proto.graph.input[0].name
    kept = conv_nodes_for(src, keep_fp32) if keep_fp32 else []
    with tempfile.TemporaryDirectory(prefix="esrgan-int8-") as tmp:
        prepped, raw = Path(tmp) / "prep.onnx", Path(tmp) / "int8.onnx"
        try:
            quant_pre_process(str(src), str(prepped), skip_symbolic_shape=True)
        except Exception:  # optional optimisation step: quantise the original graph if it fails
            prepped = src
        quantize_static(
            str(prepped), str(raw), _calibration_reader(crops, input_name),
            quant_format=QuantFormat.QDQ, per_channel=True, op_types_to_quantize=["Conv"],
            activation_type=QuantType.QUInt8 if activation_type == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8, nodes_to_exclude=kept,
            calibrate_method={"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                              "percentile": CalibrationMethod.Percentile}[method],
            # Not CalibMaxIntermediateOutputs: ONNX Runtime 1.32 drops (does not reduce) the outputs
            # collected so far when that count is reached. Peak memory follows the crop size instead.
            extra_options={"ActivationSymmetric": activation_type == "int8", "WeightSymmetric": True},
        )
        parity = measure_int8_parity(src, raw, held_tiles, threads)
        report = Int8Report(method, len(crops), tuple(f.name for f in held_files), tuple(kept), parity)
        quantized = load_onnx(raw)
        del quantized.metadata_props[:]  # quantize_static's own entries: the FP32 file's keys are the record
        out.parent.mkdir(parents=True, exist_ok=True)
        save_onnx(set_props(quantized, {**meta, PRECISION: "int8", PARITY: report.to_json()}), out)
    return out


def read_int8_report(path: str | os.PathLike[str]) -> dict:
    """The ``esrgan.parity`` record of an INT8 file (empty when there is none)."""
    from esrgan.export.onnx_metadata import read_metadata

    record = read_metadata(path).get(PARITY)
    return json.loads(record) if record else {}
