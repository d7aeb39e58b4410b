"""Which CPU this is, and which CPU inference path is the fastest faithful one on it.

Two parts with one job each:

* ``probe_cpu_features()`` reads what the CPU can do (``/proc/cpuinfo`` on Linux). It is injectable:
  tests and ``choose_cpu_backend`` take a ``CpuFeatures`` value, never the real machine.
* ``choose_cpu_backend(...)`` is pure: from the features, the backends that import, the model file's
  precision and the parity and speed figures measured for this model on this machine, it returns the
  path to use and one line saying why. Speed is measured rather than inferred from the flags: on an AMD
  EPYC with AVX-512 BF16, the paper-size model with real weights (Real-ESRGAN x4plus) ran OpenVINO BF16
  with the first conv in FP32 at 2.41-2.71x PyTorch eager FP32 (52.0 dB from the FP32 output, worst of
  five photographs) against 1.22-1.36x for OpenVINO FP32 (benchmarks/reports/cpu/report.md), while an
  Intel Xeon whose flags list AVX-512 BF16 too ran it at 0.66x OpenVINO FP32. On CPUs without native
  BF16 the BF16 path is emulated and slower than FP32, so it is not even measured there.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

from esrgan.errors import install_hint
from esrgan.parity import HALF_MIN_PSNR_DB, Parity, passes

# The flags that decide CPU inference speed (which path is fastest; what reports print), as Linux names
# them in /proc/cpuinfo; ``openvino_bf16`` is the pseudo-flag probe_cpu_features sets off Linux.
RELEVANT_FLAGS = (
    "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
    "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "asimddp", "bf16", "i8mm",
    "openvino_bf16",
)

OPENVINO = "openvino"
ONNXRUNTIME_CPU = "onnxruntime-cpu"

# OpenVINO's BF16 layouts (esrgan.runtime.backends.openvino_split), keyed as their measured parity is:
# "head" (first conv FP32) runs at all-BF16 speed; "ends" (first conv and upsampling tail FP32) is ~8 %
# slower and closest to FP32; "all" is used only for a model that cannot be cut.
BF16_LAYOUT_KEYS = {"head": "openvino:bf16-fp32-head", "ends": "openvino:bf16-fp32-ends", "all": "openvino:bf16"}

# The faster "head" layout is picked over "ends" only with this margin above the 45 dB threshold,
# because the figure comes from one 64x64 photograph and varies by a few dB between photographs
# (benchmarks/reports/cpu/report.md: 52.0 to 59.7 dB over five photographs for the same model).
BF16_FAST_LAYOUT_MARGIN_DB = 3.0

# INT8 is used without being asked for only when its measured PSNR vs the FP32 model is at least this
# high: the same bar as the half-precision paths, well above the INT8 export target (40 dB), because a
# user who did not ask for INT8 must not get visibly different images.
INT8_AUTO_MIN_PSNR_DB = HALF_MIN_PSNR_DB


@dataclass(frozen=True)
class CpuFeatures:
    """What the CPU offers for inference. ``flags`` use the Linux /proc/cpuinfo names (all of them, not
    only the RELEVANT_FLAGS); ``cores`` counts logical cores. ``vendor``, ``physical_cores``, ``mhz``,
    ``family`` and ``model_number`` feed the benchmark reports' environment block and FP32 peak estimate
    (esrgan.bench.env); None where /proc/cpuinfo does not say."""

    model: str = "unknown"
    arch: str = "x86_64"
    cores: int = 1
    flags: frozenset[str] = field(default_factory=frozenset)
    vendor: str = "unknown"
    physical_cores: int | None = None
    mhz: float | None = None
    family: int | None = None
    model_number: int | None = None

    @property
    def report_name(self) -> str:
        """The model name with x86's family and model numbers, as reports print it: hypervisors often show
        only "AMD EPYC", which covers Zen 2 to Zen 5 (families 23, 25, 26) with different vector units."""
        if self.family is None:
            return self.model
        number = "" if self.model_number is None else f", model {self.model_number}"
        return f"{self.model} (family {self.family}{number})"

    @property
    def bf16_native(self) -> bool:
        """BF16 dot products in hardware (AVX-512 BF16 or AMX; ARMv8.6 BF16)."""
        return bool({"avx512_bf16", "amx_bf16", "openvino_bf16"} & self.flags) or (
            self.arch in ("aarch64", "arm64") and "bf16" in self.flags
        )

    @property
    def int8_dot(self) -> bool:
        """INT8 dot-product instructions (VNNI / AMX-INT8 / ARM dot product), where INT8 pays off."""
        return bool({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm"} & self.flags)

    def relevant_flags(self) -> list[str]:
        """The flags worth printing in a report, in a stable order."""
        return [f for f in RELEVANT_FLAGS if f in self.flags]

    def describe(self) -> str:
        return f"{self.model} ({self.arch}, {self.cores} cores; {' '.join(self.relevant_flags()) or 'no SIMD flags found'})"


def _cpuinfo_records(text: str) -> list[dict[str, str]]:
    """The ``key : value`` records of /proc/cpuinfo text, keys as Linux prints them. A record ends at a
    blank line and at each ``processor`` line, so processors printed without a blank line between them
    still count one each."""
    records: list[dict[str, str]] = [{}]
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if (not line.strip() or key == "processor") and records[-1]:
            records.append({})
        if sep:
            records[-1].setdefault(key, value.strip())
    return [r for r in records if r]


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def parse_cpuinfo(text: str, arch: str | None = None) -> CpuFeatures:
    """Features from the text of /proc/cpuinfo: x86 (``model name``, ``vendor_id``, ``flags``, ``cpu MHz``,
    ``physical id``/``core id``), ARM (``Features``, ``Model``/``Hardware``), MIPS (``cpu model``); other
    layouts give what they have. The first record that names a field gives its value."""
    records = _cpuinfo_records(text)
    processors = [r for r in records if "processor" in r]

    def first(*keys: str) -> str | None:
        for key in keys:
            for record in records:
                if record.get(key):
                    return record[key]
        return None

    # hyperthreads of one core share (physical id, core id)
    physical = {(r.get("physical id", "0"), r["core id"]) for r in processors if "core id" in r}
    family, number = first("cpu family"), first("model")  # x86's "model" is a number; ARM's is "Model"
    return CpuFeatures(
        model=first("model name", "Model", "Hardware", "cpu model") or "unknown",
        arch=arch or platform.machine(),
        cores=max(len(processors), 1),
        flags=frozenset((first("flags", "Features") or "").split()),
        vendor=first("vendor_id") or "unknown",
        physical_cores=len(physical) or None,
        mhz=_float_or_none(first("cpu MHz")),
        family=int(family) if family and family.isdigit() else None,
        model_number=int(number) if number and number.isdigit() else None,
    )


def openvino_capabilities() -> frozenset[str]:
    """OpenVINO's CPU OPTIMIZATION_CAPABILITIES (it lists BF16 only where the CPU computes it natively)."""
    try:
        from esrgan.runtime.backends.openvino_backend import openvino_core

        return frozenset(str(c) for c in openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # not installed, or no CPU plugin
        return frozenset()


def probe_cpu_features(cpuinfo_path: str = "/proc/cpuinfo", capabilities=openvino_capabilities) -> CpuFeatures:  # noqa: ANN001
    """This machine's features from /proc/cpuinfo; elsewhere (Windows, macOS) from OpenVINO's view of the
    CPU (``capabilities()``: native BF16 shows as the pseudo-flag ``openvino_bf16``), else no flags."""
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            return parse_cpuinfo(f.read())
    except OSError:
        flags = frozenset({"openvino_bf16"} if "BF16" in capabilities() else set())
        return CpuFeatures(
            model=platform.processor() or "unknown", arch=platform.machine(), cores=os.cpu_count() or 1, flags=flags
        )


@dataclass(frozen=True)
class CpuChoice:
    """The CPU path ``--backend auto`` runs: a registry backend name, a precision, and why."""

    backend: str  # "openvino" | "onnxruntime-cpu"
    precision: str  # "fp32" | "bf16" | "int8" | "fp16" (the file's precision, run as is)
    reason: str
    # BF16 only: which layers stay FP32 (a key of BF16_LAYOUT_KEYS).
    bf16_layout: str = "head"
    # The file to run instead of the model given: its INT8 companion (esrgan.metadata.int8_companion).
    model: str | None = None

    def describe(self) -> str:
        """The one line the runtime prints."""
        return f"CPU backend: {self.backend} {self.precision} ({self.reason})"

    def backend_options(self) -> dict[str, str]:
        """Keyword arguments for the registry's loader: OpenVINO's compute precision; none for ORT."""
        if self.backend != OPENVINO:
            return {}
        if self.precision == "bf16":
            return {"precision": "bf16", "bf16_layout": self.bf16_layout}
        return {"precision": "fp32"}


# Keys of the measured figures (parity and seconds) of the paths that are not BF16 layouts.
FP32_KEY = "openvino:fp32"
INT8_KEY = "openvino:int8"  # the model's INT8 companion file on OpenVINO


def choose_cpu_backend(
    features: CpuFeatures,
    available_backends: Collection[str],
    model_precision: str = "fp32",
    measured_parity: Mapping[str, Parity] | None = None,
    *,
    int8_requested: bool = False,
    measured_seconds: Mapping[str, float] | None = None,
    failed_paths: Mapping[str, str] | None = None,
) -> CpuChoice:
    """The fastest CPU path for a model whose parity is within its precision's threshold.

    ``available_backends``: registry names that import here (``openvino``, ``onnxruntime-cpu``).
    ``model_precision``: the model file's ``esrgan.precision`` (an ``int8`` file means INT8 was asked for).
    ``measured_parity``: figures vs the FP32 output keyed ``"<backend>:<precision>"`` (e.g.
    ``"openvino:bf16-fp32-head"``, ``"openvino:bf16-fp32-ends"``, ``"openvino:bf16"`` (all layers),
    ``INT8_KEY`` (the model's INT8 companion)), judged by ``esrgan.parity.passes``. A path whose parity
    has not been measured is not picked when it is a reduced precision: the caller measures first
    (esrgan.runtime.cpu_parity).
    ``measured_seconds``: the time of one run of each path on the same photograph, same keys plus
    ``FP32_KEY``. When every candidate path was timed, the fastest faithful one wins: whether BF16 or
    INT8 pays off depends on the CPU and the model, not on the flags alone (OpenVINO BF16 ran the
    paper-size x4 model about 2x faster than FP32 on an AMD EPYC with AVX-512 BF16, 0.66x as fast on an
    Intel Xeon whose flags list AVX-512 BF16 too, without AMX; the built-in 32-channel model 0.7x there).
    Without timings the order is INT8, BF16, FP32 (the order measured on the AMD EPYC).
    ``failed_paths``: paths (same keys) that could not compile or run here, with the reason; they are
    skipped and the line names them.
    Raises nothing: with no CPU backend importable it still names ONNX Runtime, whose loader then
    raises the DependencyError with the install hint.
    """
    measured = dict(measured_parity or {})
    seconds = dict(measured_seconds or {})
    failed = dict(failed_paths or {})
    have_ov = OPENVINO in available_backends
    have_ort = ONNXRUNTIME_CPU in available_backends

    def ok(key: str, precision: str) -> bool:
        return key in measured and passes(measured[key], precision)

    def psnr(key: str) -> str:
        return f"{measured[key].psnr_db:.1f} dB"

    if model_precision == "int8" or int8_requested:
        # INT8 asked for: OpenVINO runs the QDQ graph with VNNI/AMX kernels; ORT's QLinearConv also uses
        # VNNI, and is what remains without OpenVINO.
        if have_ov and features.int8_dot:
            return CpuChoice(OPENVINO, "int8", "INT8 model; the CPU has INT8 dot-product instructions")
        if have_ort:
            return CpuChoice(ONNXRUNTIME_CPU, "int8", "INT8 model")
        return CpuChoice(OPENVINO if have_ov else ONNXRUNTIME_CPU, "int8", "INT8 model")
    if model_precision == "fp16":
        # ONNX Runtime's CPU provider has few FP16 kernels (it inserts casts); OpenVINO reads FP16
        # weights and computes at its own precision, so the FP16 file runs at FP32/BF16 speed there.
        if have_ov:
            return CpuChoice(OPENVINO, "fp16", "FP16 model; OpenVINO computes it at FP32 on the CPU")
        return CpuChoice(ONNXRUNTIME_CPU, "fp16", "FP16 model; OpenVINO is not installed")
    if not have_ov:
        hint = f"; {install_hint('openvino')} for the faster OpenVINO path" if features.arch in (
            "x86_64", "AMD64", "aarch64", "arm64"
        ) else ""
        return CpuChoice(ONNXRUNTIME_CPU, "fp32", f"OpenVINO is not installed{hint}")
    if FP32_KEY in measured and not ok(FP32_KEY, "fp32") and have_ort:
        return CpuChoice(ONNXRUNTIME_CPU, "fp32", "OpenVINO FP32 failed its parity check")

    # The faithful candidates, in the order used when they were not all timed.
    candidates: list[tuple[str, CpuChoice]] = []
    int8 = measured.get(INT8_KEY)
    int8_faithful = int8 is not None and int8.psnr_db >= INT8_AUTO_MIN_PSNR_DB and not int8.nonfinite_fraction
    # a companion file that was measured and refused is named, so its owner knows why it does not run
    notes = "" if int8 is None or int8_faithful else (
        f"; the INT8 file's parity {psnr(INT8_KEY)} is below {INT8_AUTO_MIN_PSNR_DB:.0f} dB, so it is not used")
    if INT8_KEY in failed:
        notes = f"; the INT8 file failed to run here ({failed[INT8_KEY]}), so it is not used"
    # BF16 that failed to run in every layout tried is named whichever path wins
    bf16_broken = [failed[k] for k in BF16_LAYOUT_KEYS.values() if k in failed]
    bf16_failed = f"BF16 failed to run here ({bf16_broken[0]})" if bf16_broken and not any(
        k in measured for k in BF16_LAYOUT_KEYS.values()) else ""
    if int8_faithful and (
        features.int8_dot or INT8_KEY in seconds  # without VNNI/AMX INT8 is taken only when timed faster
    ):
        candidates.append((INT8_KEY, CpuChoice(
            OPENVINO, "int8", f"the model's INT8 file; measured INT8 parity {psnr(INT8_KEY)} >= "
            f"{INT8_AUTO_MIN_PSNR_DB:.0f} dB")))
    bf16_note = ""
    if features.bf16_native:
        floor = HALF_MIN_PSNR_DB
        head, ends, whole = (BF16_LAYOUT_KEYS[k] for k in ("head", "ends", "all"))
        if ok(head, "bf16") and measured[head].psnr_db >= floor + BF16_FAST_LAYOUT_MARGIN_DB:
            candidates.append((head, CpuChoice(
                OPENVINO, "bf16", f"native BF16 on this CPU, first conv in FP32; measured parity "
                f"{psnr(head)} >= {floor + BF16_FAST_LAYOUT_MARGIN_DB:.0f} dB", bf16_layout="head")))
        else:
            for key, layout, note in ((ends, "ends", "first conv and upsampling tail in FP32"),
                                      (head, "head", "first conv in FP32"),
                                      (whole, "all", "all layers")):  # "all": only a model that cannot be cut
                if ok(key, "bf16"):
                    candidates.append((key, CpuChoice(
                        OPENVINO, "bf16", f"native BF16 on this CPU, {note}; measured parity {psnr(key)} >= "
                        f"{floor:.0f} dB", bf16_layout=layout)))
                    break
            else:
                tried = [k for k in (head, ends, whole) if k in measured]
                bf16_note = (f"BF16 parity {' / '.join(psnr(k) for k in tried)} too low, so FP32" if tried
                             else f"{bf16_failed}, so FP32" if bf16_failed
                             else "BF16 parity not measured, so FP32")
    candidates.append((FP32_KEY, CpuChoice(
        OPENVINO, "fp32", bf16_note or "no native BF16 on this CPU; OpenVINO FP32 is the fastest exact path")))
    choice = candidates[0][1]
    if len(candidates) > 1 and all(key in seconds and seconds[key] > 0 for key, _ in candidates):
        key, choice = min(candidates, key=lambda kc: seconds[kc[0]])
        others = ", ".join(f"{c.precision} {seconds[FP32_KEY] / seconds[k]:.2f}x" for k, c in candidates if k != key)
        if key == FP32_KEY:
            choice = replace(choice, reason=f"the fastest path measured on this CPU for this model (FP32 speed "
                                            f"= 1x: {others})")
        else:
            choice = replace(choice, reason=f"{choice.reason}; measured {seconds[FP32_KEY] / seconds[key]:.2f}x "
                                            "FP32's speed on this CPU")
    if bf16_failed and bf16_failed not in choice.reason:
        notes = f"; {bf16_failed}{notes}"
    return replace(choice, reason=choice.reason + notes)
