"""Cut an RRDBNet-style OpenVINO model into stages, so each can run at its own precision.

Why: BF16 keeps 8 significant bits, and OpenVINO's CPU plugin has no per-convolution precision switch
that it honours from Python (the ``disable_fp16_compression`` rt_info is ignored for convolutions in
2026.4), so the only way to keep a few layers in FP32 is to compile them as separate models.

Which layers, measured with OpenVINO 2026.4 on the paper-size x4 RRDBNet with real pretrained weights
(Real-ESRGAN x4plus; benchmarks/reports/cpu), worst of five 64x64 photograph tiles vs FP32:

* every layer BF16: 48.4 dB;
* ``head``: the first convolution in FP32, everything after it BF16: 52.0 dB at the same speed
  (the first conv is 0.01 % of the multiply-adds). Rounding the *input pixels* to BF16 is what hurts:
  a value near 1.0 keeps steps of 1/256, coarser than the 1/255 of an 8-bit image, and every later
  layer inherits that error;
* ``ends``: the first convolution and the upsampling tail (``conv_up*``, ``conv_hr``, ``conv_last``)
  in FP32, only the RRDB trunk BF16: 52.7 dB, but the tail holds ~7.5 % of the multiply-adds at 4x-16x
  the input's pixel count, so it costs ~8 % of the BF16 speed.

Cut points, found by graph structure rather than by names (both torch ONNX exporters name nodes
differently): the head ends at the output of the first convolution after its bias Add; the tail starts
at the input of the first ``Interpolate`` (the first nearest-neighbour upsampling). A model without
that structure (e.g. pixel-shuffle upsampling for ``ends``), or whose later stage still reads the
input (e.g. Real-ESRGAN's compact model adds the upsampled input to its output), is not cut and runs whole.
"""

from __future__ import annotations

BF16_LAYOUTS = ("head", "ends", "all")
LAYOUT_NOTES = {
    "all": "all layers BF16",
    "head": "first conv in FP32, the rest BF16",
    "ends": "first conv and upsampling tail in FP32, the trunk BF16",
}


def _is_constant(output, limit: int = 64) -> bool:  # noqa: ANN001 - ov.Output
    """True when ``output``'s values do not depend on the pixels: computed from constants and shapes
    only. Torchscript exports a conv bias as Reshape(Constant, arithmetic on ShapeOf of tensors).
    Gives up (False) after ``limit`` nodes: a bias is a handful, a data path reaches a Parameter
    long before."""
    seen, todo = set(), [output.get_node()]
    while todo:
        node = todo.pop()
        if node.get_type_name() == "Parameter" or len(seen) >= limit:
            return False
        name = node.get_friendly_name()
        if name in seen or node.get_type_name() == "ShapeOf":  # a shape is not pixel data
            continue
        seen.add(name)
        todo += [node.input_value(i).get_node() for i in range(node.get_input_size())]
    return True


def _head_output(ops: list) -> object | None:  # -> ov.Output
    """The first convolution's output after its bias Add, if it has one."""
    conv = next((o for o in ops if o.get_type_name() == "Convolution"), None)
    if conv is None:
        return None
    out = conv.output(0)
    for target in out.get_target_inputs():
        node = target.get_node()
        if node.get_type_name() == "Add" and _is_constant(node.input_value(1 - target.get_index())):
            return node.output(0)
    return out


def _tail_input(ops: list) -> object | None:  # -> ov.Output
    interp = next((o for o in ops if o.get_type_name() == "Interpolate"), None)
    return None if interp is None else interp.input_value(0)


def _parameter_for(output, name: str):  # noqa: ANN001, ANN202
    """A Parameter standing for ``output``. Fixed names: OpenVINO's compiled-model cache hashes the
    graph, names included, and an auto-numbered Parameter would miss the cache on every start."""
    import openvino as ov

    param = ov.op.Parameter(output.get_element_type(), output.get_partial_shape())
    param.set_friendly_name(name)
    param.output(0).get_tensor().set_names({name})
    return param


def _model(outputs: list, params: list, name: str):  # noqa: ANN001, ANN202
    import openvino as ov

    results = []
    for i, output in enumerate(outputs):
        res = ov.opset13.result(output)
        res.set_friendly_name(f"{name}_output_{i}")  # fixed, for the same cache reason
        results.append(res)
    return ov.Model(results, params, name)


def _cut_at(cut, name: str):  # noqa: ANN001, ANN202
    """Feed everything that reads ``cut`` from a new Parameter instead, and return the Parameter.

    Shape reads (``ShapeOf``, e.g. of the first conv's output before its bias Add, which torchscript
    exports for the upsampling sizes) are moved too: the shape is the same, and left alone they would
    keep a path back to the original input.
    """
    param = _parameter_for(cut, name)
    sources = [cut]
    node = cut.get_node()
    if node.get_type_name() == "Add":
        sources += [node.input_value(i) for i in range(node.get_input_size())]
    for source in sources:
        for target in list(source.get_target_inputs()):
            if source is cut or target.get_node().get_type_name() == "ShapeOf":
                target.replace_source_output(param.output(0))
    return param


def _reads_other_input(outputs: list, param) -> bool:  # noqa: ANN001
    """True when the graph above ``outputs`` still reads a Parameter other than ``param``: the cut did
    not separate it from the model's input (e.g. a global residual that adds the upsampled input)."""
    seen, todo = set(), [o.get_node() for o in outputs]
    while todo:
        node = todo.pop()
        name = node.get_friendly_name()
        if name in seen:
            continue
        seen.add(name)
        if node.get_type_name() == "Parameter" and name != param.get_friendly_name():
            return True
        todo += [node.input_value(i).get_node() for i in range(node.get_input_size())]
    return False


def _from(model, cut, name: str):  # noqa: ANN001, ANN202
    """The part of ``model`` after ``cut``: ``cut`` replaced by a Parameter, the model's own results
    kept; None when that part still reads the model's input, so it cannot run on its own."""
    param = _cut_at(cut, f"{name}_input")
    outputs = [r.input_value(0) for r in model.get_results()]
    return None if _reads_other_input(outputs, param) else _model(outputs, [param], name)


def split_for_bf16(read_model, layout: str) -> list[tuple[object, str]] | None:  # noqa: ANN001
    """``[(ov.Model, "fp32" | "bf16"), ...]`` to run in order for ``layout``, or None to run whole.

    ``read_model()`` must return a fresh copy of the model on each call: a cut rewires the graph.
    """
    if layout not in BF16_LAYOUTS:
        raise ValueError(f"bf16 layout must be one of {', '.join(BF16_LAYOUTS)}, got {layout!r}")
    if layout == "all":
        return None
    try:
        return _split(read_model, layout)
    except RuntimeError:
        # A later stage still reads the model's input: a skip connection from the input to the output
        # (Real-ESRGAN's compact network adds the upsampled input at the end). Such a model is not cut.
        return None


def _split(read_model, layout: str) -> list[tuple[object, str]] | None:  # noqa: ANN001
    full = read_model()
    ops = full.get_ordered_ops()
    head_out, tail_in = _head_output(ops), _tail_input(ops)
    if head_out is None:
        return None
    head = _model([head_out], full.get_parameters(), "esrgan_head")
    if layout == "head":
        rest_model = read_model()
        rest = _from(rest_model, _head_output(rest_model.get_ordered_ops()), "esrgan_rest")
        return None if rest is None else [(head, "fp32"), (rest, "bf16")]
    # (node wrappers are new Python objects on each access: compare names, not identity)
    if tail_in is None or head_out.get_node().get_friendly_name() == tail_in.get_node().get_friendly_name():
        return None
    trunk_model = read_model()
    t_ops = trunk_model.get_ordered_ops()
    t_head, t_tail = _head_output(t_ops), _tail_input(t_ops)
    param = _cut_at(t_head, "esrgan_trunk_input")
    if _reads_other_input([t_tail], param):
        return None
    trunk = _model([t_tail], [param], "esrgan_trunk")
    tail_model = read_model()
    tail = _from(tail_model, _tail_input(tail_model.get_ordered_ops()), "esrgan_tail")
    return None if tail is None else [(head, "fp32"), (trunk, "bf16"), (tail, "fp32")]
