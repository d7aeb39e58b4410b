"""Can quantisation-aware fine-tuning bring INT8 x4plus to 45 dB from its FP32 output?

    python -m benchmarks.int8_qat -o benchmarks/reports/int8/qat \
        --weights /tmp/esrgan-real/realesrgan_x4plus.safetensors [--steps 600] [--minutes 60]

Post-training INT8 of Real-ESRGAN x4plus stops at 36.8 dB worst held-out tile (``benchmarks/int8_study.py``):
the rounding error is spread over all 23 RRDBs. Fine-tuning with the rounding in the loop lets the
weights and the activation ranges adapt to it instead. Here the student is the generator with the
scheme VNNI kernels run, in ``int8_study``'s layout: every conv but ``DEFAULT_KEEP_FP32`` gets its
input rounded to per-tensor asymmetric uint8 (the range initialised by MinMax on the calibration crops,
then learnt, as LSQ does: ``torch._fake_quantize_learnable_per_tensor_affine``) and its weight to
symmetric per-channel int8 (scale from the current weight's absmax, straight-through gradient). The
teacher is the frozen FP32 model; the loss is the mean squared difference of their outputs (the
quantity the parity PSNR measures), on crops of photographs disjoint from the
held-out ones (a pool of 512 random 32 px crops with flips and transposes, their teacher outputs
computed once). Parity is measured as ``int8_study`` measures it: ``esrgan.parity`` PSNR against the FP32
output on the same 12 held-out 64 px tiles, "worst" the lowest.

This measures the fake-quantised student (the same rounding as the kernels, in FP32 arithmetic);
``int8_study`` found the exported ONNX Runtime file about 1 dB below its fake-quant figure.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.int8_study import (
    CALIB,
    CALIB_CROP,
    CALIB_PER_IMAGE,
    HELD,
    HELD_CROP,
    HELD_PER_IMAGE,
    crops,
    machine,
)
from esrgan.parity import HALF_MIN_PSNR_DB, compare
from esrgan.photographs import DEFAULT_MODEL_TRAIN, photograph

TRAIN = tuple(dict.fromkeys(n for n in (*CALIB, *DEFAULT_MODEL_TRAIN) if n not in HELD))
CROP, BATCH, POOL = 32, 4, 512  # a pool of crops with their teacher outputs, computed once


def quantised(model, calib: list[np.ndarray]):
    """``model`` with fake INT8 on every conv outside ``DEFAULT_KEEP_FP32``; returns the learnt scales."""
    import torch
    import torch.nn.functional as F

    from esrgan.export.int8 import DEFAULT_KEEP_FP32

    convs = {n: c for n, c in model.named_modules()
             if isinstance(c, torch.nn.Conv2d) and not n.startswith(DEFAULT_KEEP_FP32)}
    ranges = {n: [0.0, 0.0] for n in convs}  # widened to hold 0, as ONNX Runtime's rule

    def record(name):
        def hook(_m, args):
            r = ranges[name]
            r[0], r[1] = min(r[0], float(args[0].min())), max(r[1], float(args[0].max()))
        return hook

    hooks = [c.register_forward_pre_hook(record(n)) for n, c in convs.items()]
    with torch.no_grad():
        for t in calib:
            model(torch.from_numpy(t))
    for h in hooks:
        h.remove()

    params = {}
    for name, conv in convs.items():
        lo, hi = ranges[name]
        scale = (hi - lo) / 255 or 1.0
        conv.act_scale = torch.nn.Parameter(torch.tensor([scale]))
        conv.act_zp = torch.nn.Parameter(torch.tensor([float(round(-lo / scale))]), requires_grad=False)
        params[name] = conv.act_scale

        def forward(x, conv=conv):
            grad = 1.0 / float(np.sqrt(x[0].numel() * 255))  # LSQ's gradient scale
            xq = torch._fake_quantize_learnable_per_tensor_affine(x, conv.act_scale, conv.act_zp, 0, 255, grad)
            w = conv.weight
            s = (w.detach().abs().amax((1, 2, 3)).clamp_min(1e-12) / 127).float()
            wq = torch.fake_quantize_per_channel_affine(w, s, torch.zeros_like(s, dtype=torch.int32), 0, -127, 127)
            return F.conv2d(xq, wq, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)

        conv.forward = forward
    return params


def crop_pool(rng: np.random.Generator, photos: list[np.ndarray], count: int) -> np.ndarray:
    """``count`` random crops with random flips and transposes, NCHW float32."""
    out = []
    for _ in range(count):
        img = photos[rng.integers(len(photos))]
        y, x = rng.integers(img.shape[0] - CROP + 1), rng.integers(img.shape[1] - CROP + 1)
        c = img[y : y + CROP, x : x + CROP]
        if rng.random() < 0.5:
            c = c[:, ::-1]
        if rng.random() < 0.5:
            c = c.transpose(1, 0, 2)
        out.append(c.transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(out)).astype(np.float32) / 255.0


def held_out_db(student, tiles: list[np.ndarray], refs: list[np.ndarray]) -> list[float]:
    import torch

    with torch.no_grad():
        return [compare(r, student(torch.from_numpy(t)).numpy()).psnr_db for t, r in zip(tiles, refs, strict=True)]


def deploy(teacher, student, out: Path, tiles: list[np.ndarray], refs: list[np.ndarray], threads: int,
           repeat: int) -> dict:
    """The student as a real INT8 file, measured in ONNX Runtime and OpenVINO against the FP32 output,
    and timed in OpenVINO against its FP32 file and PyTorch.

    The fine-tuned FP32 weights are exported (TorchScript), then quantised by ONNX Runtime as
    ``esrgan.export.int8`` does (QDQ, per-channel symmetric int8 weights, uint8 activations, the same
    convs kept in FP32), with each conv input's scale and zero point set to the learnt ones
    (``TensorQuantOverrides``) and no rounding of conv outputs, which the student did not have. A file
    with the same weights but MinMax ranges separates what the ranges bring from what the weights do.
    """
    import copy

    import onnx
    import torch
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from benchmarks.int8_study import ort_outputs, ov_model_run, psnrs, summary
    from esrgan.bench.timing import interleaved
    from esrgan.export.int8 import DEFAULT_KEEP_FP32, _calibration_reader, conv_nodes_for
    from esrgan.export.onnx_export import export_onnx
    from esrgan.runtime.backends.openvino_backend import openvino_core

    clean = copy.deepcopy(teacher)
    clean.load_state_dict({k: v for k, v in student.state_dict().items() if not k.endswith(("act_scale", "act_zp"))})
    files = {"teacher_fp32": export_onnx(teacher, out / "teacher_fp32.onnx", exporter="torchscript"),
             "student_fp32": export_onnx(clean, out / "student_fp32.onnx", exporter="torchscript")}
    graph = onnx.load(str(files["student_fp32"]), load_external_data=False).graph
    input_of = {node.input[1]: node.input[0] for node in graph.node if node.op_type == "Conv" and len(node.input) > 1}
    overrides = {}
    for name, conv in student.named_modules():
        if hasattr(conv, "act_scale") and f"{name}.weight" in input_of:
            zp = int(round(float(conv.act_zp.clamp(0, 255))))
            overrides[input_of[f"{name}.weight"]] = [{"scale": np.array(float(conv.act_scale.detach().abs()), np.float32),
                                                       "zero_point": np.array(zp, np.uint8)}]
    calib = crops(CALIB, CALIB_CROP, CALIB_PER_IMAGE)
    kept = conv_nodes_for(files["student_fp32"], DEFAULT_KEEP_FP32)
    for label, extra in (("student_int8_learnt_ranges", {"TensorQuantOverrides": overrides}),
                         ("student_int8_minmax_ranges", {})):
        files[label] = out / f"{label}.onnx"
        quantize_static(str(files["student_fp32"]), str(files[label]), _calibration_reader(calib, "input"),
                        quant_format=QuantFormat.QDQ, per_channel=True, op_types_to_quantize=["Conv"],
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=kept,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                                       "OpTypesToExcludeOutputQuantization": ["Conv"], **extra})
    result: dict = {"overridden_tensors": len(overrides)}
    for label, path in files.items():
        if label == "teacher_fp32":
            continue
        result[label] = {"onnxruntime": summary(psnrs(ort_outputs(path, tiles, threads), refs)),
                         "openvino": summary(psnrs(ov_model_run(str(path), tiles, threads), refs))}
        print(label, result[label]["onnxruntime"]["worst_db"], result[label]["openvino"]["worst_db"], flush=True)
    core = openvino_core()
    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    x = np.random.default_rng(0).random((1, 3, HELD_CROP, HELD_CROP), dtype=np.float32)
    cases = []
    for label in ("teacher_fp32", "student_int8_learnt_ranges"):
        req = core.compile_model(str(files[label]), "CPU", config).create_infer_request()
        cases.append((f"openvino_{label}", lambda req=req: req.infer({0: x})))
    xt = torch.from_numpy(x)

    def torch_run() -> None:
        with torch.inference_mode():
            teacher(xt)

    cases.append(("pytorch_fp32", torch_run))
    stats = interleaved(cases, repeat=repeat, warmup=1)
    result["speed"] = {name: {"median_s": round(st.median, 4), "spread": round(st.spread, 3),
                              "x_pytorch_fp32": round(stats["pytorch_fp32"].median / st.median, 2)}
                       for name, st in stats.items()}
    result["speed_setup"] = {"tile": HELD_CROP, "threads": threads, "repeat": repeat, "warmup": 1}
    print(json.dumps(result["speed"]), flush=True)
    for path in out.glob("*.onnx"):
        path.unlink()  # 67 MB each: the figures are the record
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--minutes", type=float, default=60.0, help="stop after this long even if steps remain")
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--lr", type=float, default=1e-5, help="weights' learning rate (Adam)")
    ap.add_argument("--scale-lr", type=float, default=1e-4, help="activation scales' learning rate")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pool", type=int, default=POOL, help="training crops (with their teacher outputs)")
    ap.add_argument("--repeat", type=int, default=5, help="interleaved timed runs of the deployed files")
    args = ap.parse_args()

    import torch

    from esrgan.models.checkpoints import load_generator

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    teacher = load_generator(args.weights).eval()
    student = load_generator(args.weights).eval()  # eval: RRDBNet has no batch norm or dropout
    for p in teacher.parameters():
        p.requires_grad_(False)
    calib = crops(CALIB, CALIB_CROP, CALIB_PER_IMAGE)
    scales = quantised(student, calib)
    tiles = crops(HELD, HELD_CROP, HELD_PER_IMAGE)
    with torch.no_grad():
        refs = [teacher(torch.from_numpy(t)).numpy() for t in tiles]

    weights = [p for n, p in student.named_parameters() if not n.endswith(("act_scale", "act_zp"))]
    opt = torch.optim.Adam([{"params": weights, "lr": args.lr},
                            {"params": list(scales.values()), "lr": args.scale_lr}])
    rng = np.random.default_rng(0)
    pool = torch.from_numpy(crop_pool(rng, [photograph(n) for n in TRAIN], args.pool))
    with torch.no_grad():
        targets = torch.cat([teacher(pool[i : i + 16]) for i in range(0, args.pool, 16)])
    history: list[dict] = []
    started = time.perf_counter()

    def evaluate(step: int, loss: float | None) -> None:
        db = held_out_db(student, tiles, refs)
        history.append({"step": step, "seconds": round(time.perf_counter() - started, 1),
                        "train_mse": loss, "worst_db": round(min(db), 2), "mean_db": round(float(np.mean(db)), 2),
                        "tiles_db": [round(d, 2) for d in db]})
        print(f"[{history[-1]['seconds']:7.1f}s] step {step}: worst {min(db):.2f} dB, mean {np.mean(db):.2f} dB"
              + (f", train mse {loss:.3g}" if loss is not None else ""), flush=True)

    evaluate(0, None)
    losses: list[float] = []
    step = 0
    for step in range(1, args.steps + 1):
        pick = torch.from_numpy(rng.choice(args.pool, BATCH, replace=False))
        loss = torch.nn.functional.mse_loss(student(pool[pick]), targets[pick])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        over = time.perf_counter() - started > args.minutes * 60
        if step % args.eval_every == 0 or over:
            evaluate(step, float(np.mean(losses[-args.eval_every:])))
        if over:
            break

    args.out.mkdir(parents=True, exist_ok=True)
    print("deploying: the fine-tuned weights and learnt ranges as an ONNX Runtime QDQ file", flush=True)
    deployed = deploy(teacher, student, args.out, tiles, refs, args.threads, args.repeat)
    result = {"machine": machine(), "weights": str(args.weights.name), "train_photographs": list(TRAIN),
              "held_out": list(HELD), "crop": CROP, "batch": BATCH, "pool": args.pool, "lr": args.lr,
              "scale_lr": args.scale_lr, "threads": args.threads, "steps_run": step, "goal_db": HALF_MIN_PSNR_DB,
              "history": history, "deployed": deployed}
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    write_report(result, args.out)
    print(f"wrote {args.out / 'results.json'}, README.md and qat.png")


# The best post-training figure on the same tiles, cited from int8_study's report (GPTQ rounding with
# MSE-clipped scales, fake quantisation): the line the fine-tuning has to pass.
PTQ_BEST_DB = 36.8


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in result["history"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [h["worst_db"] for h in result["history"]], "o-", label="worst of 12 held-out tiles")
    ax.plot(steps, [h["mean_db"] for h in result["history"]], "s-", label="mean of 12 held-out tiles")
    ax.axhline(result["goal_db"], color="green", ls="--", label=f"goal {result['goal_db']:g} dB")
    ax.axhline(PTQ_BEST_DB, color="grey", ls=":", label=f"best post-training INT8 ({PTQ_BEST_DB} dB)")
    ax.set_xlabel(f"fine-tuning step (batch {result['batch']} x {result['crop']} px)")
    ax.set_ylabel("PSNR vs FP32 output (dB)")
    ax.set_title("x4plus, INT8 fake quantisation fine-tuned against FP32")
    ax.legend(loc="center right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(result: dict, out: Path) -> None:
    """README.md and qat.png from ``results.json``'s figures."""
    plot(result, out / "qat.png")
    m, d, hist = result["machine"], result["deployed"], result["history"]
    flags = ", ".join(f for f, on in m.get("flags", {}).items() if on)
    first, last = hist[0], hist[-1]
    best = max(hist, key=lambda h: h["worst_db"])
    file_db = d["student_int8_learnt_ranges"]["openvino"]["worst_db"]
    drift = d["student_fp32"]["openvino"]["worst_db"]
    verdict = "met" if file_db >= result["goal_db"] else "not met"
    speed = d["speed"]
    rows = "\n".join(f"| {name} | {d[name]['onnxruntime']['worst_db']} dB | {d[name]['openvino']['worst_db']} dB |"
                      for name in ("student_fp32", "student_int8_learnt_ranges", "student_int8_minmax_ranges"))
    text = f"""# Quantisation-aware fine-tuning of INT8 x4plus (`benchmarks/int8_qat.py`)

Measured {m['date']} on **{m.get('cpu', '?')}**, {result['threads']} threads (flags: {flags}). A result on this
CPU kind, not a claim about others. Weights: Real-ESRGAN x4plus (`benchmarks/real_weights.py`). Versions:
{", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())}.

**Question.** Post-training INT8 of x4plus stops at {PTQ_BEST_DB} dB worst held-out tile
([`../report.md`](../report.md)); the goal is {result['goal_db']:g} dB. Does fine-tuning with the rounding
in the loop (the weights, and LSQ-learnt activation ranges) get there?

**Setup.** Student: every conv but `DEFAULT_KEEP_FP32` rounds its input to per-tensor uint8 and its
weight to per-channel int8 (the scheme of `esrgan.export.int8`); teacher: the FP32 model; loss: mean
squared difference of their outputs. {result['pool']} random {result['crop']} px crops (flips, transposes) of
{len(result['train_photographs'])} photographs ({", ".join(result['train_photographs'])}), batch {result['batch']},
Adam, weights lr {result['lr']:g}, activation scales lr {result['scale_lr']:g}; {result['steps_run']} steps.
Held out: the 12 tiles of 64 px of `int8_study` ({", ".join(result['held_out'])}); PSNR of each against the
FP32 output (`esrgan.parity`).

**Answer: {verdict}.** After {last['step']} steps the fake-quantised student's worst tile is {last['worst_db']} dB
(best seen {best['worst_db']} dB at step {best['step']}), and the INT8 file written from it
{file_db} dB in OpenVINO, against {PTQ_BEST_DB} dB for the best post-training rounding and
{result['goal_db']:g} dB asked. The fine-tuned weights themselves, unrounded, are {drift} dB from the original
FP32 output: the student buys robustness to rounding by moving away from the model it should copy,
so the two errors meet well below the goal.

![held-out PSNR during fine-tuning](qat.png)

| | worst tile | mean |
|---|---|---|
| fake quantisation before fine-tuning (step 0) | {first['worst_db']} dB | {first['mean_db']} dB |
| after {last['step']} steps | **{last['worst_db']} dB** | {last['mean_db']} dB |

**As real files** (ONNX Runtime QDQ written from the fine-tuned weights; conv outputs not rounded, as
in the student; worst of the 12 tiles against the original FP32 output):

| file | ONNX Runtime | OpenVINO |
|---|---|---|
{rows}

`student_fp32` is the fine-tuned weights without rounding: how far the weights moved from the
original model. `learnt_ranges` carries each conv input's learnt scale and zero point
(`TensorQuantOverrides`); `minmax_ranges` recalibrates them by MinMax on the calibration crops.

**Speed** (OpenVINO, one {d['speed_setup']['tile']} px tile, {d['speed_setup']['threads']} threads, median of
{d['speed_setup']['repeat']} interleaved runs): FP32 {speed['openvino_teacher_fp32']['median_s']} s
({speed['openvino_teacher_fp32']['x_pytorch_fp32']}x PyTorch eager FP32), the INT8 file
{speed['openvino_student_int8_learnt_ranges']['median_s']} s ({speed['openvino_student_int8_learnt_ranges']['x_pytorch_fp32']}x),
PyTorch {speed['pytorch_fp32']['median_s']} s.
"""
    (out / "README.md").write_text(text)


if __name__ == "__main__":
    main()
