"""How far post-training INT8 can follow the FP32 output of real ESRGAN weights (Real-ESRGAN x4plus).

    python -m benchmarks.int8_study -o benchmarks/reports/int8 \
        --weights /tmp/esrgan-real/realesrgan_x4plus.safetensors --onnx x4plus_fp32.onnx \
        [--stages sens,weights,bits,ort,nncf,speed]

``--weights``: the safetensors file ``python -m benchmarks.real_weights`` writes; ``--onnx``: the same
weights exported to FP32 ONNX (``esrgan-export --gan WEIGHTS -o DIR``), needed by the ``ort``, ``nncf`` and ``speed`` stages.

Stages (each adds its figures to ``results.json`` in the output folder, so they can run separately):
* ``sens``: fake quantisation in PyTorch, switchable per convolution. Activations: per-tensor
  asymmetric uint8 with MinMax ranges from the calibration crops; weights: symmetric int8 per output
  channel -- the scheme of ``esrgan.export.int8`` (ONNX Runtime QDQ). All convs except
  ``DEFAULT_KEEP_FP32`` quantised is checked against the ONNX Runtime file's figure, then every RRDB
  alone and every conv position (rdbR.convJ across all RRDBs) alone, weights and activations apart
  and together, on the hardest held-out tiles. A greedy choice of groups to keep in FP32 follows,
  predicted by adding the groups' error powers (``additivity_sum_over_measured`` says how well that
  holds per tile), then measured on all tiles, adding groups until the goal holds.
* ``weights``: cheaper weight rounding: per-channel MSE-optimal clipping of the scale, and GPTQ
  (error-compensating rounding with the conv inputs of the calibration crops).
* ``bits``: activations or weights at 8, 9, 10, 12 bits (the other half FP32): the width each needs.
* ``ort``: the ONNX Runtime file (``esrgan.export.int8``'s quantize_static call) in ONNX Runtime and
  OpenVINO, with and without Q/DQ on conv outputs, and the fake-quant model with output rounding.
* ``nncf``: OpenVINO's NNCF: SmoothQuant for convolutions and accuracy-controlled quantisation.
* ``speed``: OpenVINO on one thread, one 64 px tile: FP32, all-INT8 and the greedy mixed files.

Parity is ``esrgan.parity`` PSNR of the output against the FP32 output; "worst" is the lowest over
the 12 held-out tiles. Everything runs on one thread (the figures were taken next to a training run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from esrgan.parity import HALF_MIN_PSNR_DB, compare  # noqa: E402
from esrgan.photographs import export_photos, photograph  # noqa: E402

CALIB = ("astronaut", "rocket", "camera", "immunohistochemistry", "hubble_deep_field", "moon")
HELD = ("coffee", "chelsea", "retina")
CALIB_CROP, CALIB_PER_IMAGE = 32, 2  # 12 crops, as esrgan.export.int8's defaults
HELD_CROP, HELD_PER_IMAGE = 64, 4  # 12 held-out tiles
GOAL_DB = HALF_MIN_PSNR_DB  # 45 dB, the goal asked of INT8 here
POSITIONS = tuple(f"rdb{r}.conv{j}" for r in (1, 2, 3) for j in (1, 2, 3, 4, 5))
MODES = ("both", "weights", "acts")


# ---------------------------------------------------------------- data
def crops(names: tuple[str, ...], size: int, per: int) -> list[np.ndarray]:
    """(1, 3, size, size) crops on a regular grid, the layout of ``esrgan.export.int8.image_crops``."""
    out = []
    for name in names:
        rgb = photograph(name).astype(np.float32) / 255.0
        h, w = rgb.shape[:2]
        side = int(np.ceil(np.sqrt(per)))
        ys, xs = np.linspace(0, h - size, side).astype(int), np.linspace(0, w - size, side).astype(int)
        for y, x in [(y, x) for y in ys for x in xs][:per]:
            out.append(np.ascontiguousarray(rgb[y : y + size, x : x + size].transpose(2, 0, 1)[None]))
    return out


def psnrs(outs: list[np.ndarray], refs: list[np.ndarray]) -> list[float]:
    return [compare(r, o).psnr_db for r, o in zip(refs, outs, strict=True)]


def summary(db: list[float]) -> dict:
    return {"worst_db": round(min(db), 2), "tiles_db": [round(d, 2) for d in db]}


# ---------------------------------------------------------------- fake quantisation (PyTorch)
class FakeQuant:
    """The generator with each conv's input (uint8) and weight (int8) rounding switchable by name."""

    def __init__(self, model, calib: list[np.ndarray]) -> None:
        import torch

        self.torch, self.model = torch, model
        self.convs = {n: c for n, c in model.named_modules() if isinstance(c, torch.nn.Conv2d)}
        self.fp32 = {n: c.weight.detach().clone() for n, c in self.convs.items()}
        self.ranges = {n: [math.inf, -math.inf] for n in self.convs}
        self.out_ranges = {n: [math.inf, -math.inf] for n in self.convs}
        self.acts: set[str] = set()
        self.outs: set[str] = set()
        self.hooks = [c.register_forward_pre_hook(self._hook(n)) for n, c in self.convs.items()]
        self.hooks += [c.register_forward_hook(self._out_hook(n)) for n, c in self.convs.items()]
        self._calibrating = True
        self.run(calib)
        self._calibrating = False
        self.act_bits(8)

    def act_bits(self, bits: int) -> None:
        """Activation grid: 2**bits levels (8: uint8)."""
        self.qmax = 2**bits - 1
        self.qparams = {n: self._qparams(*r, self.qmax) for n, r in self.ranges.items()}
        self.out_qparams = {n: self._qparams(*r, self.qmax) for n, r in self.out_ranges.items()}

    @staticmethod
    def _qparams(lo: float, hi: float, qmax: int) -> tuple[float, int]:
        """ONNX Runtime's asymmetric uint8 rule: the range is widened to hold 0."""
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        scale = (hi - lo) / qmax or 1.0
        return scale, int(round(-lo / scale))

    def _out_hook(self, name: str):
        """Conv outputs: ONNX Runtime's QDQ quantiser rounds them too (unless told not to)."""

        def hook(_module, _args, y):
            if self._calibrating:
                r = self.out_ranges[name]
                r[0], r[1] = min(r[0], float(y.min())), max(r[1], float(y.max()))
            elif name in self.outs:
                scale, zp = self.out_qparams[name]
                return self.torch.fake_quantize_per_tensor_affine(y, scale, zp, 0, self.qmax)
            return None

        return hook

    def _hook(self, name: str):
        def hook(_module, args):
            x = args[0]
            if self._calibrating:
                r = self.ranges[name]
                r[0], r[1] = min(r[0], float(x.min())), max(r[1], float(x.max()))
            elif name in self.acts:
                scale, zp = self.qparams[name]
                return (self.torch.fake_quantize_per_tensor_affine(x, scale, zp, 0, self.qmax),)
            return None

        return hook

    def set(self, acts=(), weights: dict | None = None, outs=()) -> None:
        """Quantise the inputs of ``acts`` and outputs of ``outs``; ``weights``: name -> replacement weight."""
        self.acts, self.outs = set(acts), set(outs)
        weights = weights or {}
        for n, c in self.convs.items():
            c.weight.data = weights.get(n, self.fp32[n])

    def run(self, tiles: list[np.ndarray]) -> list[np.ndarray]:
        with self.torch.inference_mode():
            return [self.model(self.torch.from_numpy(t)).numpy() for t in tiles]

    def trunk_inputs(self, tiles: list[np.ndarray]) -> list[list]:
        """Per tile: conv_first's output and the FP32 input of every RRDB (to restart from RRDB k)."""
        self.set()
        cached = []
        with self.torch.inference_mode():
            for t in tiles:
                feat = self.model.conv_first(self.torch.from_numpy(t))
                h, states = feat, [feat]
                for block in self.model.body:
                    states.append(h)
                    h = block(h)
                cached.append(states)
        return cached

    def run_from(self, k: int, cached: list[list]) -> list[np.ndarray]:
        """The forward pass from RRDB k on (RRDBNet.forward's tail; the RRDBs before k are FP32)."""
        import torch.nn.functional as F

        m, outs = self.model, []
        with self.torch.inference_mode():
            for states in cached:
                feat, h = states[0], states[k + 1]
                for block in m.body[k:]:
                    h = block(h)
                feat = feat + m.conv_body(h)
                for i in range(1, m.num_upsample + 1):
                    feat = m.lrelu(getattr(m, f"conv_up{i}")(F.interpolate(feat, scale_factor=2.0, mode="nearest")))
                outs.append(m.conv_last(m.lrelu(m.conv_hr(feat))).numpy())
        return outs


def quant_weight(w, ratio=None, bits: int = 8):
    """Symmetric per-output-channel int8 (-127..127) rounding; ``ratio`` clips the scale per channel."""
    qmax = 2 ** (bits - 1) - 1
    absmax = w.abs().flatten(1).amax(1).clamp_min(1e-12)
    if ratio is not None:
        absmax = absmax * ratio
    scale = (absmax / qmax).view(-1, 1, 1, 1)
    return (w / scale).round().clamp(-qmax, qmax) * scale


CLIP_GRID = np.linspace(0.5, 1.0, 51)  # clipping ratios searched per output channel


def mse_ratio(w, grid=CLIP_GRID):
    """Per output channel, the clipping ratio of the scale that minimises the weight's rounding MSE."""
    import torch

    errs = torch.stack([((quant_weight(w, float(r)) - w) ** 2).flatten(1).sum(1) for r in grid])
    return torch.tensor(grid, dtype=w.dtype)[errs.argmin(0)]


def macs(fq: FakeQuant, size: int) -> dict[str, int]:
    """Multiply-adds of each conv on a size x size input tile."""
    out = {}
    hooks = [c.register_forward_hook(lambda m, i, o, n=n: out.__setitem__(
        n, int(o.shape[-2] * o.shape[-1] * m.weight.numel()))) for n, c in fq.convs.items()]
    fq.set()
    fq.run([np.zeros((1, 3, size, size), np.float32)])
    for h in hooks:
        h.remove()
    return out


# ---------------------------------------------------------------- stage: sensitivity
def group_convs(names, group: str) -> list[str]:
    if group.startswith("body."):  # one RRDB
        return [n for n in names if n.startswith(group + ".")]
    if group.startswith("rdb"):  # one position in every RRDB
        return [n for n in names if n.startswith("body.") and n.endswith(group)]
    return [group]


def stage_sens(fq: FakeQuant, tiles, refs, res: dict, hard_n: int) -> None:
    from esrgan.export.int8 import DEFAULT_KEEP_FP32

    names = [n for n in fq.convs if not n.startswith(DEFAULT_KEEP_FP32)]
    wq = {n: quant_weight(fq.fp32[n]) for n in names}
    mac = macs(fq, HELD_CROP)
    res["macs_64px"] = {"total": sum(mac.values()), "quantisable": sum(mac[n] for n in names)}

    def measure(convs, mode, which, start=None):
        fq.set(acts=convs if mode != "weights" else (), weights={n: wq[n] for n in convs} if mode != "acts" else None)
        outs = fq.run([tiles[i] for i in which]) if start is None else fq.run_from(start, cached)
        return psnrs(outs, [refs[i] for i in which])

    every = list(range(len(tiles)))
    res["fake_all"] = {m: summary(measure(names, m, every)) for m in MODES}
    print("all quantised", {m: v["worst_db"] for m, v in res["fake_all"].items()}, flush=True)
    hard = sorted(every, key=lambda i: res["fake_all"]["both"]["tiles_db"][i])[:hard_n]
    res["hard_tiles"] = hard
    cached = fq.trunk_inputs([tiles[i] for i in hard])
    start = fq.run_from(0, cached)  # the restart path reproduces the full forward pass
    assert max(float(np.abs(a - refs[i]).max()) for a, i in zip(start, hard, strict=True)) < 1e-4
    groups = [f"body.{k}" for k in range(len(fq.model.body))] + list(POSITIONS) + ["conv_body"]
    sens = {}
    for g in groups:
        convs = group_convs(names, g)
        k = int(g.split(".")[1]) if g.startswith("body.") else None
        sens[g] = {m: [round(d, 2) for d in measure(convs, m, hard, k)] for m in MODES}
        sens[g]["macs"] = sum(mac[n] for n in convs)
        print(g, {m: min(sens[g][m]) for m in MODES}, flush=True)
    res["sensitivity"] = sens

    # Additivity: error powers of the 23 RRDBs + conv_body vs the all-quantised error power.
    def power(db):
        return 10 ** (-np.asarray(db) / 10)

    rrdbs = [g for g in groups if g.startswith("body.")] + ["conv_body"]
    summed = sum(power(sens[g]["both"]) for g in rrdbs)
    measured = power([res["fake_all"]["both"]["tiles_db"][i] for i in hard])
    res["additivity_sum_over_measured"] = [round(float(x), 3) for x in summed / measured]

    # Greedy: keep in FP32 the group whose removal lowers the worst predicted tile error most,
    # until the prediction clears the goal by 0.5 dB; then measure and add groups until it holds.
    def greedy(cands):
        kept, left = [], list(cands)
        predicted = lambda ks: -10 * np.log10(max(sum(power(sens[g]["both"]) for g in left if g not in ks)))  # noqa: E731
        while left and predicted(kept) < GOAL_DB + 0.5:
            best = min((g for g in left if g not in kept), key=lambda g: -predicted(kept + [g]))
            kept.append(best)
        return kept

    plans = {}
    for label, cands in (("rrdb", rrdbs), ("position", list(POSITIONS) + ["conv_body"])):
        kept = greedy(cands)
        while True:
            keep_convs = {n for g in kept for n in group_convs(names, g)}
            q = [n for n in names if n not in keep_convs]
            db = measure(q, "both", every)
            int8_share = sum(mac[n] for n in q) / res["macs_64px"]["total"]
            print(label, "keep", kept, round(min(db), 2), "int8 MAC share", round(int8_share, 3), flush=True)
            if min(db) >= GOAL_DB or len(kept) == len(cands):
                break
            rest = [g for g in cands if g not in kept]
            kept.append(min(rest, key=lambda g: min(sens[g]["both"])))
        plans[label] = {"keep_fp32": kept, **summary(db), "int8_mac_share": round(int8_share, 4),
                        "int8_convs": len(q)}
    res["greedy"] = plans


# ---------------------------------------------------------------- stage: weight rounding
def hessians(fq: FakeQuant, names, calib) -> dict:
    """H = sum X X^T of each conv's unfolded FP32 input over the calibration crops (GPTQ's statistic)."""
    import torch.nn.functional as F

    hs = {n: None for n in names}

    def hook(name):
        def f(module, args):
            cols = F.unfold(args[0], module.kernel_size, padding=module.padding)[0]  # (Cin*k*k, L)
            h = cols @ cols.T
            hs[name] = h if hs[name] is None else hs[name] + h

        return f

    handles = [fq.convs[n].register_forward_pre_hook(hook(n)) for n in names]
    fq.set()
    fq.run(calib)
    for h in handles:
        h.remove()
    return hs


def gptq(w, h, ratio=None, block=128, damp=0.01):
    """GPTQ (Frantar et al. 2022) rounding of one conv's weight, per-channel symmetric int8 scale fixed."""
    import torch

    shape = w.shape
    W = w.flatten(1).double().clone()
    H = h.double().clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += damp * torch.mean(torch.diag(H)) * torch.eye(H.shape[0], dtype=H.dtype)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    absmax = w.abs().flatten(1).amax(1).double().clamp_min(1e-12)
    scale = (absmax * (ratio.double() if ratio is not None else 1.0) / 127.0)
    Q = torch.zeros_like(W)
    for i1 in range(0, W.shape[1], block):
        i2 = min(i1 + block, W.shape[1])
        W1, Hinv1 = W[:, i1:i2].clone(), Hinv[i1:i2, i1:i2]
        Err1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            col = W1[:, i]
            q = (col / scale).round().clamp(-127, 127) * scale
            Q[:, i1 + i] = q
            err = (col - q) / Hinv1[i, i]
            W1[:, i:] -= err.unsqueeze(1) @ Hinv1[i, i:].unsqueeze(0)
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return Q.reshape(shape).to(w.dtype)


def stage_weights(fq: FakeQuant, tiles, refs, calib, res: dict) -> None:
    from esrgan.export.int8 import DEFAULT_KEEP_FP32

    names = [n for n in fq.convs if not n.startswith(DEFAULT_KEEP_FP32)]
    t0 = time.time()
    ratios = {n: mse_ratio(fq.fp32[n]) for n in names}
    variants = {"minmax": {n: quant_weight(fq.fp32[n]) for n in names},
                "mse_clip": {n: quant_weight(fq.fp32[n], ratios[n].view(-1)) for n in names}}
    res.setdefault("weights", {})["mse_clip_seconds"] = round(time.time() - t0, 1)
    r = np.concatenate([ratios[n].numpy() for n in names])
    res["weights"]["mse_clip_ratio"] = {"median": round(float(np.median(r)), 3), "min": round(float(r.min()), 3),
                                        "share_below_1": round(float((r < 1).mean()), 3)}
    t0 = time.time()
    hs = hessians(fq, names, calib)
    variants["gptq"] = {n: gptq(fq.fp32[n], hs[n]) for n in names}
    variants["gptq_mse_clip"] = {n: gptq(fq.fp32[n], hs[n], ratios[n]) for n in names}
    del hs
    res["weights"]["gptq_seconds"] = round(time.time() - t0, 1)
    for label, wts in variants.items():
        out = {}
        for mode, acts in (("weights", ()), ("both", names)):
            fq.set(acts=acts, weights=wts)
            out[mode] = summary(psnrs(fq.run(tiles), refs))
        res["weights"][label] = out
        print(label, {m: v["worst_db"] for m, v in out.items()}, flush=True)
    fq.set()


def stage_bits(fq: FakeQuant, tiles, refs, res: dict) -> None:
    """How many bits each half would need: activations or weights at 8..12 bits, the other FP32."""
    from esrgan.export.int8 import DEFAULT_KEEP_FP32

    names = [n for n in fq.convs if not n.startswith(DEFAULT_KEEP_FP32)]
    out = res.setdefault("bits", {"acts_only": {}, "weights_only": {}, "both": {}})
    for bits in (8, 9, 10, 12):
        fq.act_bits(bits)
        fq.set(acts=names)
        out["acts_only"][bits] = summary(psnrs(fq.run(tiles), refs))["worst_db"]
        wts = {n: quant_weight(fq.fp32[n], bits=bits) for n in names}
        fq.set(weights=wts)
        out["weights_only"][bits] = summary(psnrs(fq.run(tiles), refs))["worst_db"]
        fq.set(acts=names, weights=wts)
        out["both"][bits] = summary(psnrs(fq.run(tiles), refs))["worst_db"]
        print("bits", bits, {k: v[bits] for k, v in out.items()}, flush=True)
    fq.act_bits(8)
    fq.set()


# ---------------------------------------------------------------- ONNX Runtime files
def keep_prefixes(groups) -> tuple[str, ...]:
    """Weight-name prefixes (``keep_fp32`` of esrgan.export.int8) of the sensitivity groups."""
    out = []
    for g in groups:
        out += [g + "."] if g.startswith("body.") else ([f"body.{k}.{g}" for k in range(23)] if g.startswith("rdb")
                                                         else [g])
    return tuple(out)

def ort_int8(src: Path, calib_dir: Path, dst: Path, keep: tuple[str, ...], conv_outputs: bool,
             dedicated: bool = False) -> Path:
    """``esrgan.export.int8.quantize_int8``'s quantize_static call; ``conv_outputs=False`` adds
    ``OpTypesToExcludeOutputQuantization=["Conv"]`` (Q/DQ on conv inputs and weights only);
    ``dedicated`` adds ``DedicatedQDQPair`` (a tensor read by a quantised and an FP32 conv is then
    rounded only on the quantised conv's edge)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from esrgan.export.int8 import _calibration_reader, conv_nodes_for, image_crops, image_files

    calib = list(image_crops(image_files(calib_dir), CALIB_CROP, CALIB_PER_IMAGE))[:12]
    prepped = dst.with_suffix(".prep.onnx")
    quant_pre_process(str(src), str(prepped), skip_symbolic_shape=True)
    extra = {"ActivationSymmetric": False, "WeightSymmetric": True}
    if not conv_outputs:
        extra["OpTypesToExcludeOutputQuantization"] = ["Conv"]
    if dedicated:
        extra["DedicatedQDQPair"] = True
    quantize_static(str(prepped), str(dst), _calibration_reader(calib, "input"), quant_format=QuantFormat.QDQ,
                    per_channel=True, op_types_to_quantize=["Conv"], activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, nodes_to_exclude=conv_nodes_for(src, keep),
                    calibrate_method=CalibrationMethod.MinMax, extra_options=extra)
    prepped.unlink()
    return dst


def ort_outputs(path: Path, tiles, threads=1) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return [sess.run(None, {name: t})[0] for t in tiles]


def stage_ort(fq: FakeQuant, onnx_path: Path, tiles, refs, res: dict, work: Path) -> None:
    """Conv-output rounding: the fake-quant model with it, and the ONNX Runtime file with and without it."""
    from esrgan.export.int8 import DEFAULT_KEEP_FP32

    names = [n for n in fq.convs if not n.startswith(DEFAULT_KEEP_FP32)]
    out = res.setdefault("conv_outputs", {})
    if "fake_quant_inputs_weights_outputs" not in out:
        fq.set(acts=names, weights={n: quant_weight(fq.fp32[n]) for n in names}, outs=names)
        out["fake_quant_inputs_weights_outputs"] = summary(psnrs(fq.run(tiles), refs))
    if "greedy" in res and "fake_quant_keep_rrdb_with_outputs" not in out:
        keep = DEFAULT_KEEP_FP32 + keep_prefixes(res["greedy"]["rrdb"]["keep_fp32"])
        q = [n for n in names if not n.startswith(keep)]
        fq.set(acts=q, weights={n: quant_weight(fq.fp32[n]) for n in q}, outs=q)
        out["fake_quant_keep_rrdb_with_outputs"] = summary(psnrs(fq.run(tiles), refs))
        print("fake quant, RRDB plan, outputs rounded", out["fake_quant_keep_rrdb_with_outputs"]["worst_db"])
    fq.set()
    calib_dir = work / "calib"
    export_photos(calib_dir, CALIB)
    files = [("ort_file_default", (), True, False), ("ort_file_no_conv_output_qdq", (), False, False)]
    if "greedy" in res:  # the greedy RRDB plan as a file, with shared and with dedicated Q/DQ pairs
        keep = keep_prefixes(res["greedy"]["rrdb"]["keep_fp32"])
        files += [("ort_file_keep_rrdb", keep, True, False), ("ort_file_keep_rrdb_dedicated_qdq", keep, True, True),
                  ("ort_file_keep_rrdb_no_conv_output_qdq", keep, False, False)]
    for label, keep, conv_outputs, dedicated in files:
        if label in out:
            continue
        t0 = time.time()
        path = ort_int8(onnx_path, calib_dir, work / f"{label}.onnx", DEFAULT_KEEP_FP32 + keep, conv_outputs,
                        dedicated)
        secs = time.time() - t0
        out[label] = {"seconds": round(secs), "onnxruntime": summary(psnrs(ort_outputs(path, tiles), refs)),
                      "openvino": summary(psnrs(ov_model_run(str(path), tiles), refs))}
        print(label, out[label]["onnxruntime"]["worst_db"], out[label]["openvino"]["worst_db"], flush=True)
    print("fake quant with outputs", out["fake_quant_inputs_weights_outputs"]["worst_db"], flush=True)


# ---------------------------------------------------------------- stage: NNCF
def ov_model_run(model, tiles, threads=1):
    from esrgan.runtime.backends.openvino_backend import openvino_core

    core = openvino_core()
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
    req = compiled.create_infer_request()
    return [req.infer({0: t})[0].copy() for t in tiles]


def stage_nncf(onnx_path: Path, tiles, refs, calib, res: dict, alphas, ac_tiles: int, ac_calib: int,
               ac_iterations: int) -> None:
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import (
        AdvancedAccuracyRestorerParameters,
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    from esrgan.export.int8 import DEFAULT_KEEP_FP32
    from esrgan.runtime.backends.openvino_backend import openvino_core

    base = openvino_core().read_model(str(onnx_path))
    kept = [op.get_friendly_name() for op in base.get_ordered_ops() if op.get_type_name() == "Convolution"
            and op.input_value(1).get_node().get_friendly_name().startswith(DEFAULT_KEEP_FP32)]
    # Only conv inputs are quantised, as in esrgan.export.int8 (quantising the residual adds and
    # concats costs ~10 dB more); the head and tail convs stay FP32.
    scope = nncf.IgnoredScope(names=kept, types=["Add", "Multiply", "Concat", "Interpolate"])
    out = res.setdefault("nncf", {})

    def quantize(model, alpha, data):
        adv = AdvancedQuantizationParameters(
            smooth_quant_alphas=AdvancedSmoothQuantParameters(convolution=alpha, matmul=-1),
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
        # NNCF 3.4 runs SmoothQuant only for ModelType.TRANSFORMER (post_training/pipeline.py), and
        # even then skips convs fed by a quantisation-agnostic op such as Concat.
        return nncf.quantize(model, nncf.Dataset(data), preset=nncf.QuantizationPreset.MIXED,
                             target_device=nncf.TargetDevice.CPU, subset_size=len(data), ignored_scope=scope,
                             advanced_parameters=adv, model_type=nncf.ModelType.TRANSFORMER if alpha >= 0 else None)

    for alpha in alphas:
        t0 = time.time()
        q = quantize(base.clone(), alpha, calib)
        secs = time.time() - t0
        fqs = sum(1 for op in q.get_ops() if op.get_type_name() == "FakeQuantize")
        smoothed = sum(1 for op in q.get_ops() if "smooth_quant" in op.get_friendly_name())
        out[f"smoothquant_{alpha}"] = {**summary(psnrs(ov_model_run(q, tiles), refs)), "seconds": round(secs),
                                       "fake_quantize_ops": fqs, "smooth_quant_ops": smoothed}
        print("nncf alpha", alpha, out[f"smoothquant_{alpha}"]["worst_db"], flush=True)

    if not ac_iterations:
        return
    # Accuracy control: the metric is the worst PSNR (capped at 100) on the hardest held-out tiles.
    hard = res.get("hard_tiles", list(range(ac_tiles)))[:ac_tiles]
    val = [(tiles[i], refs[i]) for i in hard]

    def validate(compiled, items) -> float:
        req = compiled.create_infer_request()
        dbs = [compare(ref, req.infer({0: x})[0]).psnr_db for x, ref in items]
        return float(min(min(dbs), 100.0))

    t0 = time.time()
    adv = AdvancedQuantizationParameters(
        smooth_quant_alphas=AdvancedSmoothQuantParameters(convolution=-1, matmul=-1),
        activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
    q = nncf.quantize_with_accuracy_control(
        base.clone(), nncf.Dataset(calib[:ac_calib]), nncf.Dataset(val), validate, max_drop=100.0 - GOAL_DB,
        drop_type=nncf.DropType.ABSOLUTE, preset=nncf.QuantizationPreset.MIXED, target_device=nncf.TargetDevice.CPU,
        subset_size=ac_calib, ignored_scope=scope, advanced_quantization_parameters=adv,
        # Ranking on the single hardest tile, one worker (one thread), at most ac_iterations reverts.
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
            max_num_iterations=ac_iterations, ranking_subset_size=1, num_ranking_workers=1))
    secs = time.time() - t0
    convs = [op for op in q.get_ordered_ops() if op.get_type_name() == "Convolution"]
    # An FP32 conv reads its weight straight from a Constant; an INT8 one through FakeQuantize/dequantise ops.
    int8 = sum(1 for op in convs if op.input_value(1).get_node().get_type_name() != "Constant")
    ov.save_model(q, str(Path(tempfile.gettempdir()) / "int8_study_ac.xml"))
    out["accuracy_control"] = {**summary(psnrs(ov_model_run(q, tiles), refs)), "seconds": round(secs),
                               "convs": len(convs), "int8_convs": int8, "validation_tiles": hard,
                               "calibration_crops": ac_calib, "max_iterations": ac_iterations,
                               "saved": str(Path(tempfile.gettempdir()) / "int8_study_ac.xml")}
    print("accuracy control", out["accuracy_control"], flush=True)


# ---------------------------------------------------------------- stage: speed
def stage_speed(onnx_path: Path, res: dict, tiles, refs, repeat: int, conv_outputs: bool) -> None:
    """OpenVINO speed (and parity) of FP32, all-INT8 and the greedy mixed files, plus PyTorch FP32."""
    import torch

    from esrgan.bench.timing import interleaved
    from esrgan.export.int8 import DEFAULT_KEEP_FP32
    from esrgan.runtime.backends.openvino_backend import openvino_core

    plans = {"int8_all": ()}
    for label, plan in res.get("greedy", {}).items():
        plans[f"int8_keep_{label}"] = keep_prefixes(plan["keep_fp32"])
    core = openvino_core()
    config = {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    x = np.random.default_rng(0).random((1, 3, HELD_CROP, HELD_CROP), dtype=np.float32)
    parity, cases = {}, []
    with tempfile.TemporaryDirectory(prefix="int8-study-") as tmp:
        calib_dir = Path(tmp) / "calib"
        export_photos(calib_dir, CALIB)
        files = {"fp32": onnx_path}
        for label, extra in plans.items():
            files[label] = ort_int8(onnx_path, calib_dir, Path(tmp) / f"{label}.onnx", DEFAULT_KEEP_FP32 + extra,
                                    conv_outputs)
        saved = res.get("nncf", {}).get("accuracy_control", {}).get("saved")
        if saved and Path(saved).is_file():
            files["nncf_accuracy_control"] = Path(saved)
        for label, path in files.items():
            req = core.compile_model(str(path), "CPU", config).create_infer_request()
            parity[label] = summary(psnrs([req.infer({0: t})[0].copy() for t in tiles], refs))["worst_db"]
            cases.append((f"openvino_{label}", lambda req=req: req.infer({0: x})))
        model = res.pop("_torch_model", None)
        if model is not None:
            xt = torch.from_numpy(x)

            def torch_run():
                with torch.inference_mode():
                    model(xt)

            cases.append(("pytorch_fp32", torch_run))
        stats = interleaved(cases, repeat=repeat, warmup=1)
    base = stats["openvino_fp32"].median
    torch_s = stats["pytorch_fp32"].median if "pytorch_fp32" in stats else None
    res["speed"] = {name: {"median_s": round(s.median, 4), "spread": round(s.spread, 3),
                           "x_openvino_fp32": round(base / s.median, 2),
                           **({"x_pytorch_fp32": round(torch_s / s.median, 2)} if torch_s else {}),
                           **({"worst_db_openvino": parity[name[9:]]} if name[9:] in parity else {})}
                    for name, s in stats.items()}
    res["speed_setup"] = {"tile": HELD_CROP, "threads": 1, "repeat": repeat, "warmup": 1,
                          "conv_output_qdq": conv_outputs, "keep_fp32_extra": plans}
    print(json.dumps(res["speed"], indent=1), flush=True)


# ---------------------------------------------------------------- machine and plot
def machine() -> dict:
    from esrgan.runtime.cpu_features import probe_cpu_features

    features = probe_cpu_features()
    info = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": features.report_name,
            "flags": {f: f in features.flags for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile",
                                                       "amx_int8", "amx_bf16")}}
    import nncf
    import onnxruntime
    import openvino
    import torch

    info["versions"] = {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                        "openvino": openvino.__version__, "nncf": nncf.__version__}
    return info


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sens = res["sensitivity"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [23, 16]})
    for ax, groups, title in ((axes[0], [g for g in sens if g.startswith("body.")], "one RRDB quantised"),
                              (axes[1], [g for g in sens if not g.startswith("body.")],
                               "one conv position quantised in all 23 RRDBs")):
        xs = np.arange(len(groups))
        for k, (mode, colour) in enumerate((("both", "C3"), ("weights", "C0"), ("acts", "C2"))):
            ax.bar(xs + (k - 1) * 0.27, [min(sens[g][mode]) for g in groups], 0.27, color=colour,
                   label={"both": "weights + activations", "weights": "weights only", "acts": "activations only"}[mode])
        ax.axhline(GOAL_DB, color="k", lw=0.8, ls="--")
        ax.set_xticks(xs, [g.replace("body.", "") for g in groups], rotation=90, fontsize=8)
        ax.set_ylim(30, 70)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(f"worst PSNR vs FP32, dB ({len(res['hard_tiles'])} hardest tiles)")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle("Real-ESRGAN x4plus, INT8 sensitivity (dashed: 45 dB); all quantised: "
                 f"{res['fake_all']['both']['worst_db']} dB", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", type=Path, required=True, help="folder for results.json and the plot")
    ap.add_argument("--weights", type=Path, required=True, help="realesrgan_x4plus.safetensors (real_weights.py)")
    ap.add_argument("--onnx", type=Path, help="the same weights as FP32 ONNX (nncf and speed stages)")
    ap.add_argument("--stages", default="sens,weights,bits,ort,nncf,speed")
    ap.add_argument("--hard", type=int, default=3, help="hardest held-out tiles used for the sensitivity scan")
    ap.add_argument("--alphas", default="0.15,0.5", help="SmoothQuant alphas for convolutions")
    ap.add_argument("--ac-tiles", type=int, default=3, help="held-out tiles in accuracy control's metric")
    ap.add_argument("--ac-calib", type=int, default=12, help="calibration crops for accuracy control")
    ap.add_argument("--ac-iterations", type=int, default=40, help="most convs accuracy control returns to FP32")
    ap.add_argument("--skip-accuracy-control", action="store_true")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--no-conv-output-qdq", action="store_true",
                    help="speed stage: INT8 files without Q/DQ on conv outputs (see the ort stage)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from esrgan.models.checkpoints import load_generator

    stages = args.stages.split(",")
    if {"ort", "nncf", "speed"} & set(stages) and args.onnx is None:
        sys.exit("int8_study: --onnx is needed for the ort, nncf and speed stages")
    args.out.mkdir(parents=True, exist_ok=True)
    out_json = args.out / "results.json"
    res = json.loads(out_json.read_text()) if out_json.is_file() else {}
    res["machine"] = machine()
    model = load_generator(args.weights).eval()
    tiles = crops(HELD, HELD_CROP, HELD_PER_IMAGE)
    calib = crops(CALIB, CALIB_CROP, CALIB_PER_IMAGE)
    fq = FakeQuant(model, calib)
    fq.set()
    refs = fq.run(tiles)  # PyTorch FP32: the reference of every figure

    def save():
        out_json.write_text(json.dumps({k: v for k, v in res.items() if not k.startswith("_")}, indent=1) + "\n")

    if "sens" in stages:
        stage_sens(fq, tiles, refs, res, args.hard)
        save()
        plot(res, args.out / "sensitivity.png")
    if "weights" in stages:
        stage_weights(fq, tiles, refs, calib, res)
        save()
    if "bits" in stages:
        stage_bits(fq, tiles, refs, res)
        save()
    if "ort" in stages:
        with tempfile.TemporaryDirectory(prefix="int8-study-") as tmp:
            stage_ort(fq, args.onnx, tiles, refs, res, Path(tmp))
        save()
    if "nncf" in stages:
        stage_nncf(args.onnx, tiles, refs, calib, res, [float(a) for a in args.alphas.split(",")],
                   args.ac_tiles, args.ac_calib, 0 if args.skip_accuracy_control else args.ac_iterations)
        save()
    if "speed" in stages:
        for h in fq.hooks:
            h.remove()
        fq.set()
        res["_torch_model"] = model
        stage_speed(args.onnx, res, tiles, refs, args.repeat, not args.no_conv_output_qdq)
        save()
    if "sensitivity" in res and "sens" not in stages:
        plot(res, args.out / "sensitivity.png")


if __name__ == "__main__":
    main()
