"""Type-check the two TensorRT modules (engine build, runtime backend) with mypy against ``tensorrt-stubs``.

TensorRT itself cannot be installed in CI, so this is how its API use is checked. The stubs need two
fixes before mypy can read them (tensorrt-stubs 10.13): they ship no ``py.typed`` marker for the
``tensorrt`` package, some plugin methods have a parameter named ``in`` (a Python keyword) and one
non-default parameter follows defaulted ones. So the .pyi files are copied to a temporary folder,
fixed, and the folder put on MYPYPATH.
Usage: python .ci/typecheck_tensorrt.py [FILES...]   (exit status: mypy's)
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from importlib import metadata
from pathlib import Path

MODULES = ("tensorrt", "tensorrt_bindings")


def stub_root() -> Path:
    try:
        dist = metadata.distribution("tensorrt-stubs")
    except metadata.PackageNotFoundError:
        sys.exit("tensorrt-stubs is not installed: pip install --no-deps 'tensorrt-stubs>=10.13'")
    return Path(str(dist.locate_file("")))


def copy_fixed_stubs(src: Path, dest: Path) -> None:
    for module in MODULES:
        for pyi in (src / module).rglob("*.pyi"):
            target = dest / pyi.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(fix_stub(pyi.read_text(encoding="utf-8")), encoding="utf-8")
    # tensorrt/__init__.pyi imports the libraries wheel, which has no stubs of its own.
    (dest / "tensorrt_libs").mkdir(exist_ok=True)
    (dest / "tensorrt_libs" / "__init__.pyi").write_text("", encoding="utf-8")


def fix_stub(text: str) -> str:
    """Make the generated stubs valid Python: rename keyword parameters, give a default to a
    parameter that follows defaulted ones (add_scale_nd's channel_axis)."""
    text = re.sub(r"([(,]\s*)in(\s*:)", r"\1in_\2", text)
    return re.sub(r"(= None, )(channel_axis: int)\)", r"\1\2 = ...)", text)


def main(argv: list[str]) -> int:
    from mypy import api

    files = argv or ["esrgan/export/tensorrt_build.py", "esrgan/runtime/backends/tensorrt_backend.py"]
    with tempfile.TemporaryDirectory(prefix="trt-stubs-") as tmp:
        copy_fixed_stubs(stub_root(), Path(tmp))
        os.environ["MYPYPATH"] = tmp
        out, err, status = api.run(["--follow-imports=silent", "--no-error-summary", *files])
    # The generated stubs have errors of their own (e.g. a ``bool`` alias shadowing the builtin); only
    # what mypy says about our files counts.
    ours = [ln for ln in out.splitlines() if ln.startswith(tuple(files))]
    errors = [ln for ln in ours if ": error:" in ln]
    if err.strip() or (status != 0 and not out.strip()):
        sys.stderr.write(err or out)
        return 2
    print("\n".join(ours + [f"mypy (tensorrt-stubs) on {', '.join(files)}: {len(errors)} error(s)"]))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
