"""FP32 ONNX -> FP16 ONNX (FP16 weights and compute, FP32 input/output), guarded against overflow.

ESRGAN has a known FP16 failure: activations late in the network (the upsampling convs at high
resolution, the trunk of some GAN models) can exceed FP16's largest value (65504) and turn into
inf/NaN, giving black or speckled images. So before converting, the FP32 graph is run on crops of
real photographs with every intermediate tensor exposed, and each node touching a tensor whose
magnitude comes within ``headroom`` of the FP16 limit is kept in FP32 (the converter inserts the
casts). The names of those nodes are recorded in the file's metadata.

The conversion itself is onnxconverter-common's ``convert_float_to_float16`` with
``keep_io_types``. Measured alternative: ONNX Runtime's copy (``onnxruntime.transformers.float16``)
keeps Resize in FP16, but between two consecutive blocked nodes it inserts a cast to FP16 and back,
so a guarded activation still overflows (inf) on the way; onnxconverter-common connects blocked
nodes directly. Its price: it always runs Resize in FP32 (a cast pair around each nearest-neighbour
upsampler of the rrdbnet models; pytorch-gan models use DepthToSpace and need none).
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx

from esrgan import metadata as meta
from esrgan.errors import ModelError, first_line
from esrgan.export.onnx_metadata import load_onnx, props_of, save_onnx, set_props
from esrgan.photographs import photo_crops, to_nchw

FP16_MAX = 65504.0
FP16_MIN_SUBNORMAL = 2.0**-24
DEFAULT_HEADROOM = 4.0  # keep a node in FP32 if |activation| > FP16_MAX / 4 on any probe image
PROBE_SIZES = ((48, 48), (40, 56), (48, 48), (56, 40))
FP32_NODES_KEY = meta.PREFIX + "fp16_fp32_nodes"  # JSON list of node names kept in FP32
PROBE_MAX_KEY = meta.PREFIX + "fp16_probe_max_abs"  # largest activation seen while probing


def convert_to_fp16(
    fp32_onnx_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    probe_images: Sequence[np.ndarray] | None = None,
    headroom: float = DEFAULT_HEADROOM,
) -> Path:
    """Write an FP16 copy of ``fp32_onnx_path`` whose input and output stay FP32.

    ``probe_images``: HxWxC uint8 photographs or NCHW float batches in [0, 1] used to find
    activations near the FP16 limit; default: crops of four scikit-image photographs.
    """
    from onnxconverter_common.float16 import convert_float_to_float16

    proto = load_onnx(fp32_onnx_path)
    channels = _input_channels(proto)
    if probe_images:
        images = [to_nchw(im, channels) for im in probe_images]
    else:  # at sizes the network accepts (its size requirements, from the metadata export wrote)
        needs = meta.parse_metadata(props_of(proto), str(fp32_onnx_path), require_scale=False).size_requirements
        images = photo_crops([needs.fit(h, w) for h, w in PROBE_SIZES], channels)
    try:
        ranges = probe_activation_ranges(proto, images)
    except Exception as exc:  # ONNX Runtime raises its own types; the graph cannot run on a photograph
        raise ModelError(f"{fp32_onnx_path}: the FP32 graph fails on photograph crops in ONNX Runtime "
                         f"({first_line(exc)}); no FP16 file written") from None
    limit = FP16_MAX / headroom
    keep = fragile_nodes(proto, ranges, limit)
    source = copy.deepcopy(proto)
    # The dynamo exporter stores value_info for intermediate tensors; left in place, some of them
    # keep FLOAT after conversion and contradict the inferred FLOAT16. Shape inference redoes them.
    del source.graph.value_info[:]
    try:
        with warnings.catch_warnings():
            # It warns for every weight smaller than min_positive_val; FP16's smallest subnormal is
            # the honest floor (its default 1e-7 would move values that FP16 can represent).
            warnings.filterwarnings("ignore", message="the float32 number .* will be truncated")
            half = convert_float_to_float16(
                source, keep_io_types=True, node_block_list=keep, min_positive_val=FP16_MIN_SUBNORMAL,
                max_finite_val=FP16_MAX,
            )
    except Exception as exc:
        raise ModelError(f"{fp32_onnx_path}: FP16 conversion failed: {first_line(exc)}") from None
    set_props(half, {
        meta.PRECISION: "fp16",
        FP32_NODES_KEY: json.dumps(keep),
        PROBE_MAX_KEY: f"{max(ranges.values(), default=0.0):.6g}",
    })
    try:
        onnx.checker.check_model(half, full_check=True)
    except Exception as exc:
        raise ModelError(f"FP16 graph fails onnx.checker: {first_line(exc)}") from None
    return save_onnx(half, out_path)


def probe_activation_ranges(proto: onnx.ModelProto, images: Sequence[np.ndarray]) -> dict[str, float]:
    """Largest |value| of every float tensor in the graph over ``images`` (NCHW float32), run one at a time."""
    import onnxruntime as ort

    probe = copy.deepcopy(proto)
    inferred = onnx.shape_inference.infer_shapes(probe)
    float_names = {
        vi.name for vi in list(inferred.graph.value_info) + list(inferred.graph.output)
        if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    }
    existing = {o.name for o in probe.graph.output}
    names = [o for n in probe.graph.node for o in n.output if o in float_names and o not in existing]
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    opts = ort.SessionOptions()
    # No fusion: every tensor of the original graph must still exist to be measured.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 4  # a failing node is reported once, by convert_to_fp16's one line
    session = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    out_names = [o.name for o in session.get_outputs()]
    in_name = session.get_inputs()[0].name
    ranges = dict.fromkeys(out_names, 0.0)
    for image in images:
        for name, value in zip(out_names, session.run(None, {in_name: image}), strict=True):
            ranges[name] = max(ranges[name], float(np.max(np.abs(value))) if value.size else 0.0)
    return ranges


def fragile_nodes(proto: onnx.ModelProto, ranges: dict[str, float], limit: float) -> list[str]:
    """Names of nodes that read or write a tensor whose probed magnitude exceeds ``limit``.

    Both sides count: a node fed by a huge FP32 tensor would have to cast it to FP16 first.
    """
    hot = {name for name, value in ranges.items() if not value <= limit}  # NaN counts as hot
    return [n.name for n in proto.graph.node if hot & (set(n.input) | set(n.output))]


def _input_channels(proto: onnx.ModelProto) -> int:
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    return int(dims[1].dim_value) if len(dims) > 1 and dims[1].dim_value else 3
