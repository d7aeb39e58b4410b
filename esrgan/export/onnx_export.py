"""PyTorch generator -> FP32 ONNX with dynamic batch, height and width.

Exporter choice (measured with torch 2.14.1, onnx 1.23, see benchmarks/reports/export/report.md):
- ``dynamo`` (torch.export + onnxscript, torch's default) is the default here. It gives the smaller
  graph (the onnxscript optimiser runs as part of export), its dynamic dims are symbolic expressions
  checked by torch.export, and it is where torch.onnx is heading. It only emits opset 18+: asked for
  opset 17 it exports 18 and down-converts with onnx's version converter, which has no adapter for
  ``Pad`` (used by the x1/x2 pixel-unshuffle models), so those would silently stay at 18. We check the
  written opset and refuse instead. Hence the default opset 18.
- ``torchscript`` (the legacy tracer) exports opset 17 for every arch and is ~17-30x faster to run
  (Real-ESRGAN x4plus: 2.9 s against about 50 s for dynamo on an Intel Xeon, 2 cores); it is the
  fallback (``--exporter torchscript``) for runtimes that need opset 17, and the first exporter the
  runtime tries when it exports a checkpoint on the fly (``esrgan.runtime.model_source``). Its graph
  then goes through onnxscript's optimiser, the pass dynamo runs during export, so both exporters give
  the same lean graph: x4plus 1187 -> 1093 nodes, dynamo's count; ONNX Runtime on one thread ran the
  raw TorchScript graph ~8 % slower than dynamo's and the optimised one as fast; OpenVINO compiles all
  three to the same output bit for bit. ONNX Runtime's symbolic shape inference then names the
  intermediate dims as dynamo does (``_with_symbolic_shapes``: a session on it starts in 0.08 s, not 0.7-1 s).

Both are traced with a non-square example of odd size and batch 2, so neither H == W nor
N == 1 can be baked into the graph, and the x1/x2 models' pad-and-crop path is exercised.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import onnx
import torch
from torch import nn

from esrgan import metadata as meta
from esrgan.errors import ModelError, UsageError, first_line
from esrgan.export.onnx_metadata import base_metadata, save_onnx, set_props
from esrgan.export.options import DEFAULT_EXPORTER, DEFAULT_OPSET, EXPORTERS
from esrgan.models.build import spec_of
from esrgan.models.foreign import exporter_refusal
from esrgan.native_output import native_output_dropped

MIN_OPSET = 17
# Odd, non-square, batch 2: see the module docstring.
EXAMPLE_SHAPE = (2, 23, 37)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    exporter: str = DEFAULT_EXPORTER,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``model`` as a checked FP32 ONNX file with input "input" and output "output" (N, H, W dynamic).

    ``metadata`` entries are added to (and may override) the esrgan.* keys derived from the model.
    The model is exported in eval mode on the CPU; its training flag is restored afterwards.
    """
    if exporter not in EXPORTERS:
        raise UsageError(f"unknown exporter {exporter!r}; expected one of {', '.join(EXPORTERS)}")
    if opset < MIN_OPSET:
        raise UsageError(f"opset {opset} is too old: ESRGAN export needs opset >= {MIN_OPSET}")
    spec = spec_of(model)
    refusal = exporter_refusal(spec, exporter)
    if refusal:
        others = [e for e in EXPORTERS if e != exporter]
        raise ModelError(f"{refusal}; use --exporter {others[0]}" if others else refusal)
    n, h, w = EXAMPLE_SHAPE
    h, w = spec.size_requirements.fit(h, w)  # a network with size requirements is traced at a size it accepts
    example = torch.rand(n, spec.num_in_ch, h, w, generator=torch.Generator().manual_seed(0))
    with _eval_on_cpu(model):
        try:
            proto = (_export_dynamo if exporter == "dynamo" else _export_torchscript)(model, example, opset)
        except Exception as exc:  # torch.onnx raises many types; a network it cannot trace is refused in one line
            other = "torchscript" if exporter == "dynamo" else "dynamo"
            why = re.sub(r"\x1b\[[0-9;]*m", "", first_line(exc))  # torch.export colours its messages
            raise ModelError(
                f"{spec.describe()}: the {exporter} exporter cannot export it ({type(exc).__name__}: {why}); "
                f"try --exporter {other}"
            ) from None
    fixed = _fixed_image_dims(proto)
    if fixed:
        raise ModelError(
            f"{spec.describe()}: the {exporter} exporter fixed the input {fixed} (the network's shapes depend "
            f"on the input size in a way the exporter specialised), so it would run at that size only; not exported"
            + ("; try --exporter torchscript" if exporter == "dynamo" else "")
        )
    written = _opset_of(proto)
    if written != opset:
        raise UsageError(
            f"the {exporter} exporter wrote opset {written}, not the requested {opset}, for {spec.describe()} "
            f"(onnx's version converter cannot down-convert every op); use --exporter torchscript or --opset {written}"
        )
    props = base_metadata(spec, "fp32")
    props.update({meta.EXPORTER: f"torch.onnx {exporter} (torch {torch.__version__})", meta.OPSET: str(written)})
    props.update(metadata or {})
    set_props(proto, props)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # onnx raises ValidationError / InferenceError
        raise ModelError(f"exported graph fails onnx.checker: {first_line(exc)}") from None
    return save_onnx(proto, path)


@contextlib.contextmanager
def _eval_on_cpu(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    first = next(model.parameters())
    device, dtype = first.device, first.dtype
    model.eval().to("cpu", torch.float32)
    try:
        with torch.no_grad():
            yield
    finally:
        model.to(device, dtype).train(was_training)


def _export_dynamo(model: nn.Module, example: torch.Tensor, opset: int) -> onnx.ModelProto:
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    arg_name = _forward_arg_name(model)
    with _quiet():
        program = torch.onnx.export(
            model, (example,), dynamo=True, opset_version=opset, input_names=[meta.INPUT_NAME],
            output_names=[meta.OUTPUT_NAME], dynamic_shapes={arg_name: dims}, verbose=False, optimize=True,
        )
    assert program is not None
    return program.model_proto


def _export_torchscript(model: nn.Module, example: torch.Tensor, opset: int) -> onnx.ModelProto:
    buf = io.BytesIO()
    # fd 1 too: on a network it cannot export, torch's exporter prints its IR graph from C++
    with _quiet(), native_output_dropped(1):
        torch.onnx.export(
            model, (example,), buf,  # type: ignore[arg-type]  # a file object works (torch 2.14)
            dynamo=False, opset_version=opset, input_names=[meta.INPUT_NAME],
            output_names=[meta.OUTPUT_NAME], do_constant_folding=True,
            dynamic_axes={
                meta.INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                meta.OUTPUT_NAME: {0: "batch", 2: "out_height", 3: "out_width"},
            },
        )
    return _with_symbolic_shapes(_optimised(onnx.load_from_string(buf.getvalue())))


def _optimised(proto: onnx.ModelProto) -> onnx.ModelProto:
    """onnxscript's optimiser, the pass the dynamo exporter runs during export (folds constants, removes
    redundant nodes)."""
    try:
        from onnxscript import optimizer
    except ImportError:  # onnxscript comes with the export extra; without it the graph stays as traced
        return proto
    with _quiet():
        return optimizer.optimize(proto)


def _with_symbolic_shapes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Every intermediate tensor's shape in terms of the input's dims (``batch, 64, height, width``), as
    dynamo writes them, by ONNX Runtime's symbolic shape inference (it needs sympy, which torch brings).

    Why: the tracer leaves the height and width of intermediate tensors unknown, and ONNX Runtime's
    memory planner then took 0.7-1.0 s to create a session on Real-ESRGAN x4plus, against 0.08 s with
    the shapes, on every start of every run (the runtime reads a model's metadata through a session).
    A graph the inference cannot follow is kept as it is.
    """
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    except ImportError:
        return proto
    try:
        with _quiet():
            inferred = SymbolicShapeInference.infer_shapes(proto, auto_merge=True)
    except Exception:  # any op it does not know: the shapes are an optimisation, not a requirement
        return proto
    if inferred is None:
        return proto
    for ours, declared in zip(inferred.graph.output, proto.graph.output, strict=True):
        ours.type.CopyFrom(declared.type)  # keep the declared output dims (batch, out_height, out_width)
    return inferred


def _forward_arg_name(model: nn.Module) -> str:
    import inspect

    params = [p for p in inspect.signature(model.forward).parameters.values() if p.name != "self"]
    return params[0].name


def _fixed_image_dims(proto: onnx.ModelProto) -> str:
    """"height 24, width 40" when the graph's input has a fixed height or width, else ""."""
    dims = list(proto.graph.input[0].type.tensor_type.shape.dim)[2:4]
    names = ("height", "width")[: len(dims)]
    return ", ".join(f"{n} {d.dim_value}" for n, d in zip(names, dims, strict=True) if d.HasField("dim_value"))


def _opset_of(proto: onnx.ModelProto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch.onnx prints progress lines and deprecation/tracer warnings that users cannot act on."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)
