"""TEMPORARY stand-ins for APIs other helpers are still writing (export pipeline, runtime registry).

Each function is used only when the agreed API cannot be imported; delete this file once the
export and runtime branches are merged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def export_fp32(checkpoint: Path, out_dir: Path) -> dict[str, Path]:
    """A plain FP32 ONNX export with the esrgan metadata (stand-in for export_artifacts)."""
    import onnx
    import torch

    from esrgan import metadata as md
    from esrgan.models.checkpoints import load_generator

    model = load_generator(checkpoint)
    dest = out_dir / "model_fp32.onnx"
    x = torch.rand(1, model.spec.num_in_ch, 16, 16)
    torch.onnx.export(
        model, (x,), str(dest), input_names=[md.INPUT_NAME], output_names=[md.OUTPUT_NAME], opset_version=17,
        dynamic_axes={md.INPUT_NAME: {0: "n", 2: "h", 3: "w"}, md.OUTPUT_NAME: {0: "n", 2: "h2", 3: "w2"}},
        dynamo=False,
    )
    proto = onnx.load(str(dest))
    for key, value in {md.SPEC: model.spec.to_json(), md.SCALE: str(model.spec.scale), md.PRECISION: "fp32"}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(dest))
    return {"fp32": dest}


def load_backend(path: Path, backend: str, **opts: Any) -> Any:
    from esrgan.runtime.backends.ort_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(path, threads=opts.get("threads"))
