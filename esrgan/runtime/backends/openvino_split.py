"""Cut an RRDBNet-style OpenVINO model into head, trunk and tail, so each can run at its own precision.

Why: BF16 keeps 8 significant bits. Measured on the paper-size x4 RRDBNet (benchmarks/reports/cpu),
almost all of BF16's error comes from the few convolutions outside the RRDB trunk: ``conv_first``
(which sees raw pixels) and the upsampling tail (``conv_up*``, ``conv_hr``, ``conv_last``, whose
rounding lands directly in the output pixels). The trunk holds ~94 % of the multiply-adds and sits in a
residual branch, where BF16's rounding is harmless. OpenVINO's CPU plugin has no per-convolution
precision switch that it honours from Python (the ``disable_fp16_compression`` rt_info is ignored for
convolutions in 2026.4), so the model is cut into three models, compiled separately: head and tail
FP32, trunk BF16. Each tile passes through three requests; the hand-over copies are small (64
channels at input resolution).

Cut points, found by graph structure rather than by names (both torch ONNX exporters name nodes
differently): the head ends at the output of the first convolution (after its bias Add); the tail
starts at the input of the first ``Interpolate`` (the first nearest-neighbour upsampling). A model
without that structure (e.g. pixel-shuffle upsampling) is not cut and runs whole.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SplitModel:
    """Three OpenVINO models; running them in order equals the original model."""

    head: object
    trunk: object
    tail: object


def _conv_output(ops: list) -> object | None:  # -> ov.Output
    """The first convolution's output after its bias Add (the Add with a constant second input)."""
    conv = next((o for o in ops if o.get_type_name() == "Convolution"), None)
    if conv is None:
        return None
    out = conv.output(0)
    for target in out.get_target_inputs():
        node = target.get_node()
        if node.get_type_name() == "Add":
            other = node.input_value(1 - target.get_index()).get_node()
            if other.get_type_name() in ("Constant", "Convert"):
                return node.output(0)
    return out


def split_head_trunk_tail(read_model) -> SplitModel | None:  # noqa: ANN001 - a callable returning ov.Model
    """Split the model into head/trunk/tail, or None when it does not have the RRDBNet structure.

    ``read_model()`` must return a fresh copy of the model each call: the cut rewires the graph.
    """
    import openvino as ov

    def cut_points(model):  # noqa: ANN001, ANN202
        ops = model.get_ordered_ops()
        head_out = _conv_output(ops)
        interp = next((o for o in ops if o.get_type_name() == "Interpolate"), None)
        if head_out is None or interp is None:
            return None
        return head_out, interp.input_value(0)

    def parameter_for(output, name: str):  # noqa: ANN001, ANN202
        # A fixed name: OpenVINO's compiled-model cache hashes the graph, names included, and an
        # auto-numbered Parameter would miss the cache on every start (and fill the disk).
        param = ov.op.Parameter(output.get_element_type(), output.get_partial_shape())
        param.set_friendly_name(name)
        param.output(0).get_tensor().set_names({name})
        return param

    def results(outputs, name: str) -> list:  # noqa: ANN001
        """Result nodes with fixed names (same reason as the Parameters)."""
        made = []
        for i, output in enumerate(outputs):
            res = ov.opset13.result(output)
            res.set_friendly_name(f"{name}_{i}")
            made.append(res)
        return made

    full = read_model()
    points = cut_points(full)
    if points is None:
        return None
    head_out, trunk_out = points
    if head_out.get_node() is trunk_out.get_node():
        return None
    head = ov.Model(results([head_out], "esrgan_head_output"), full.get_parameters(), "esrgan_head")

    trunk_model = read_model()
    head_out, trunk_out = cut_points(trunk_model)  # type: ignore[misc]
    p_trunk = parameter_for(head_out, "esrgan_trunk_input")
    for target in list(head_out.get_target_inputs()):
        target.replace_source_output(p_trunk.output(0))
    trunk = ov.Model(results([trunk_out], "esrgan_trunk_output"), [p_trunk], "esrgan_trunk")

    tail_model = read_model()
    _, trunk_out = cut_points(tail_model)  # type: ignore[misc]
    p_tail = parameter_for(trunk_out, "esrgan_tail_input")
    for target in list(trunk_out.get_target_inputs()):
        target.replace_source_output(p_tail.output(0))
    tail = ov.Model(results([r.input_value(0) for r in tail_model.get_results()], "esrgan_tail_output"), [p_tail],
                    "esrgan_tail")
    return SplitModel(head, trunk, tail)
