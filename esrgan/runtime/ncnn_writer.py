"""esrgan's RRDBNet as ncnn .param/.bin files: the ncnn backends' model files and the bench's ncnn peer row.

ncnn runs its own file format, and the runtime's models are ONNX exports (a checkpoint is exported to
ONNX first). The weights are read from the ONNX file's initializers, which the exporters name after the
PyTorch parameters (``conv_first.weight``...), and the architecture from its ``esrgan.spec`` metadata.

Why our own writer rather than pnnx, ncnn's converter: pnnx (PyPI 20261020) converts the small models
but not the paper-size one: on the 23-block network its optimising passes ran out of memory (TorchScript
input: past 15 GB after 6 minutes; ONNX input: std::bad_alloc after 100 s at 5 GB, ``optlevel=1`` too,
and ``optlevel=0`` leaves unconverted ``aten::`` layers that ncnn cannot load), and its Python package
depends on torch, which the runtime must not need. The network is a fixed chain of 3x3 convolutions,
concats, LeakyReLUs, scaled residual adds and nearest x2 upsamplings, so writing ncnn's text format
directly is short. Format (ncnn wiki "param and model file structure"): a magic line, layer/blob counts,
one line per layer ``Type name n_in n_out inputs... outputs... key=value...``; blobs read by several
layers go through an explicit ``Split``. Convolution weights in the .bin are a 4-byte zero tag then
float32 data in PyTorch's (out, in, kh, kw) order, then the float32 bias without a tag.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from esrgan.atomic import write_atomic
from esrgan.cache import cache_dir, writing_cache
from esrgan.errors import DependencyError, ModelError, first_line, install_hint
from esrgan.hashing import code_digest, model_sha256
from esrgan.metadata import parse_metadata
from esrgan.models.spec import GeneratorSpec

NCNN_MAGIC = 7767517  # the first line of every .param file
LEAKY = "9=2 -23310=1,2.000000e-01"  # fused activation: leaky ReLU, slope 0.2


class _Graph:
    def __init__(self) -> None:
        self.layers: list[tuple[str, str, list[str], list[str], str]] = []
        self.weights: list[bytes] = []
        self._n = 0

    def blob(self) -> str:
        self._n += 1
        return f"b{self._n}"

    def add(self, kind: str, inputs: list[str], params: str = "", out: str | None = None) -> str:
        out = out or self.blob()
        self.layers.append((kind, f"{kind.lower()}_{len(self.layers)}", inputs, [out], params))
        return out

    def conv(self, w: np.ndarray, b: np.ndarray, x: str, leaky: bool, out: str | None = None) -> str:
        self.weights += [np.zeros(1, np.uint32).tobytes(), np.ascontiguousarray(w, np.float32).tobytes(),
                         np.ascontiguousarray(b, np.float32).tobytes()]
        act = f" {LEAKY}" if leaky else ""
        return self.add("Convolution", [x], f"0={w.shape[0]} 1=3 11=3 3=1 4=1 5=1 6={w.size}{act}", out)

    def scaled_add(self, y: str, x: str) -> str:
        """y * 0.2 + x (the residual scaling of ESRGAN's dense blocks)."""
        s = self.add("BinaryOp", [y], "0=2 1=1 2=2.000000e-01")
        return self.add("BinaryOp", [s, x], "0=0")

    def text(self) -> str:
        """The .param text, with a Split inserted for every blob that several layers read."""
        uses = Counter(i for _, _, ins, _, _ in self.layers for i in ins)
        seen: Counter[str] = Counter()
        out_layers = []
        for kind, name, ins, outs, params in self.layers:
            renamed = []
            for i in ins:
                if uses[i] > 1:
                    renamed.append(f"{i}_s{seen[i]}")
                    seen[i] += 1
                else:
                    renamed.append(i)
            out_layers.append((kind, name, renamed, outs, params))
            for o in outs:
                if uses[o] > 1:
                    splits = [f"{o}_s{k}" for k in range(uses[o])]
                    out_layers.append(("Split", f"split_{o}", [o], splits, ""))
        blobs = {b for _, _, ins, outs, _ in out_layers for b in ins + outs}
        lines = [str(NCNN_MAGIC), f"{len(out_layers)} {len(blobs)}"]
        for kind, name, ins, outs, params in out_layers:
            lines.append(f"{kind:<16} {name:<24} {len(ins)} {len(outs)} {' '.join(ins + outs)} {params}".rstrip())
        return "\n".join(lines) + "\n"


def conv_names(spec: GeneratorSpec) -> list[str]:
    """The RRDBNet convolutions (BasicSR parameter names) in forward order."""
    names = ["conv_first"]
    for b in range(spec.num_block):
        names += [f"body.{b}.rdb{r}.conv{c}" for r in (1, 2, 3) for c in range(1, 6)]
    return names + ["conv_body", *(f"conv_up{i}" for i in range(1, spec.num_upsample + 1)), "conv_hr", "conv_last"]


def check_writable(spec: GeneratorSpec | None, source: str) -> GeneratorSpec:
    """The architectures this writer handles; anything else is refused in one line."""
    if spec is None:
        raise ModelError(f"{source}: no esrgan.spec in its metadata, so it cannot be written as ncnn files; "
                         "export its checkpoint with esrgan-export (which writes the spec), or convert this file with "
                         "ncnn's own converter (pnnx) and pass the .param file as --model")
    if spec.arch != "rrdbnet" or spec.unshuffle_factor != 1:
        raise ModelError(f"{source}: {spec.describe()}: the ncnn writer handles RRDBNet without pixel-unshuffle "
                         "only; convert it with ncnn's pnnx and pass the .param file as --model")
    return spec


def write_ncnn(state: Mapping[str, np.ndarray], spec: GeneratorSpec, param_path: Path, bin_path: Path) -> None:
    """Write an RRDBNet (``state``: BasicSR parameter names -> arrays) as ncnn files, input blob
    ``in0``, output blob ``out0``."""
    check_writable(spec, str(param_path))
    missing = [n for n in conv_names(spec) for k in ("weight", "bias") if f"{n}.{k}" not in state]
    if missing:
        raise ModelError(f"{param_path}: {len(missing)} weights missing for {spec.describe()}, e.g. {missing[0]}")

    def conv(name: str, x: str, leaky: bool, out: str | None = None) -> str:
        return g.conv(np.asarray(state[f"{name}.weight"]), np.asarray(state[f"{name}.bias"]), x, leaky, out)

    g = _Graph()
    g.layers.append(("Input", "in0", [], ["in0"], ""))
    feat = conv("conv_first", "in0", leaky=False)
    h = feat
    for b in range(spec.num_block):
        r = h
        for rdb in (f"body.{b}.rdb1", f"body.{b}.rdb2", f"body.{b}.rdb3"):
            feats = [r]
            for k in range(1, 5):
                inp = feats[0] if len(feats) == 1 else g.add("Concat", list(feats), "0=0")
                feats.append(conv(f"{rdb}.conv{k}", inp, leaky=True))
            x5 = conv(f"{rdb}.conv5", g.add("Concat", list(feats), "0=0"), leaky=False)
            r = g.scaled_add(x5, feats[0])
        h = g.scaled_add(r, h)
    h = g.add("BinaryOp", [feat, conv("conv_body", h, leaky=False)], "0=0")
    for i in range(1, spec.num_upsample + 1):
        up = g.add("Interp", [h], "0=1 1=2.000000e+00 2=2.000000e+00")
        h = conv(f"conv_up{i}", up, leaky=True)
    h = conv("conv_hr", h, leaky=True)
    conv("conv_last", h, leaky=False, out="out0")
    param_path.write_text(g.text())
    bin_path.write_bytes(b"".join(g.weights))


def read_onnx_weights(path: Path) -> tuple[GeneratorSpec, dict[str, np.ndarray]]:
    """The ``esrgan.spec`` and the named weights of an esrgan ONNX export (``onnx``: the ncnn extra)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise DependencyError(f"writing {path.name} as ncnn files reads it with the onnx package: "
                              f"{install_hint('ncnn')}") from None
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and friends on a damaged file
        raise ModelError(f"{path}: not a readable ONNX file ({first_line(exc)})") from None
    meta = parse_metadata({p.key: p.value for p in proto.metadata_props}, str(path), require_scale=False)
    spec = check_writable(meta.spec, str(path))
    # Per Conv node rather than per initializer name: exporters store equal tensors once (e.g. the
    # all-zero biases of one size) and pass the copies through Identity nodes, so only the nodes say
    # which tensor each conv reads. The nodes are in execution order, which is conv_names' order; a
    # weight named after its PyTorch parameter confirms it.
    arrays = {t.name: t for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Identity" and node.input[0] in arrays:
            arrays[node.output[0]] = arrays[node.input[0]]
    names = conv_names(spec)
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    if len(convs) != len(names):
        raise ModelError(f"{path}: {len(convs)} convolutions, not the {len(names)} of {spec.describe()}")
    state: dict[str, np.ndarray] = {}
    for name, node in zip(names, convs, strict=True):
        weight, bias = node.input[1], node.input[2] if len(node.input) > 2 else ""
        if weight.endswith(".weight") and weight[: -len(".weight")] in names and weight != f"{name}.weight":
            raise ModelError(f"{path}: convolution {weight} where {name} was expected; not an esrgan RRDBNet export")
        if weight not in arrays or (bias and bias not in arrays):
            raise ModelError(f"{path}: the weights of convolution {name} are computed in the graph, not stored; "
                             "write ncnn files from an FP32 export")
        w = numpy_helper.to_array(arrays[weight]).astype(np.float32)
        state[f"{name}.weight"] = w
        state[f"{name}.bias"] = (numpy_helper.to_array(arrays[bias]).astype(np.float32) if bias
                                 else np.zeros(w.shape[0], np.float32))
    return spec, state


def writer_version() -> str:
    """This writer's code digest, part of every cached ncnn folder's name: a fix to the writer reaches
    files written before it."""
    return code_digest(sys.modules[__name__])


def ncnn_files(onnx_path: Path, say: Callable[[str], None] = lambda line: None) -> tuple[Path, Path, GeneratorSpec]:
    """The ncnn files and spec of an esrgan ONNX export, written once into the cache (keyed by the
    model's digest, ``esrgan.hashing.model_sha256``, which covers its external data, and the writer's
    version): ``model.param``, ``model.bin`` and ``model.json`` (the spec, so that a cached model loads
    without reading the ONNX file again, and the two files' sizes).

    Each file is written atomically and ``model.json`` last, so that a folder whose ``model.json``
    names the sizes its files have is complete even after an interrupted or concurrent first run; a
    folder damaged later (a file cut short, removed or replaced) is written again. The same model's
    folders from other writer versions are removed once unused for ``UNUSED_DAYS``: each is a full copy
    of the weights (67 MB for Real-ESRGAN x4plus), and every release that changes the writer would add
    one; another install sharing the cache may still use one (its use marks ``model.json``).
    """
    digest = model_sha256(onnx_path)
    folder = cache_dir() / "ncnn" / f"{digest}-{writer_version()}"
    param, weights, spec_file = folder / "model.param", folder / "model.bin", folder / "model.json"
    try:
        record = json.loads(spec_file.read_text())
        if record["sizes"] == [param.stat().st_size, weights.stat().st_size]:  # cut short or replaced: written again
            _mark_used(spec_file)
            _remove_unused_versions(folder, digest)
            return param, weights, GeneratorSpec.from_json(record["spec"])
    except Exception:  # noqa: BLE001 - missing, damaged or foreign: the files are written again
        pass
    spec, state = read_onnx_weights(onnx_path)
    with writing_cache(folder):  # ncnn loads files: without a writable cache there is nothing to load
        folder.mkdir(parents=True, exist_ok=True)
        say(f"writing the model as ncnn files, once; cached in {folder}")  # onnx_path may be a cached export
        with write_atomic(param) as staged_param, write_atomic(weights) as staged_bin:
            write_ncnn(state, spec, Path(staged_param), Path(staged_bin))
        with write_atomic(spec_file) as staged:  # last: its sizes say the two files above are whole
            sizes = [param.stat().st_size, weights.stat().st_size]
            Path(staged).write_text(json.dumps({"spec": spec.to_json(), "sizes": sizes}))
    _remove_unused_versions(folder, digest)
    return param, weights, spec


UNUSED_DAYS = 7


def _mark_used(spec_file: Path) -> None:
    try:
        os.utime(spec_file)
    except OSError:  # a read-only cache: nothing is removed from it either
        pass


def _remove_unused_versions(folder: Path, digest: str) -> None:
    """Remove the folders this model's files were written into by other writer versions (named by the
    digest alone before versions were added) and not used for ``UNUSED_DAYS``: an install that uses
    one marks it first, so no folder is removed between another run's lookup and its load."""
    oldest = time.time() - UNUSED_DAYS * 86400
    for other in folder.parent.glob(f"{digest}*"):
        if other == folder or not other.is_dir() or not (other.name == digest or other.name.startswith(f"{digest}-")):
            continue
        try:
            used = max(p.stat().st_mtime for p in (other, other / "model.json") if p.exists())
        except (OSError, ValueError):
            continue
        if used < oldest:
            shutil.rmtree(other, ignore_errors=True)
