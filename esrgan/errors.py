"""One exception hierarchy for everything a user can cause.

Library code raises these; the CLIs turn them into one line on stderr and an exit code
(see ``esrgan.cli_support``). Anything else escaping a CLI is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import json

PACKAGE = "esrgan"  # the distribution name: what pip installs and importlib.metadata reads


def install_hint(extra: str) -> str:
    """The command that installs an extra (double quotes work in POSIX shells and on Windows alike),
    from where this install came: the package is not on PyPI, so ``pip install "esrgan[...]"`` would find
    nothing (or someone else's package of that name)."""
    return f"pip install {_requirement(extra)}"


@functools.cache
def _requirement(extra: str) -> str:
    """``"esrgan[extra]"`` from where pip installed it, as PEP 610's direct_url.json records: a local
    folder (``-e`` for an editable install, which a plain one would replace) or wheel by its path, a VCS
    checkout by its URL and revision, an archive by its URL; from an index (no record), the bare name."""
    from importlib import metadata
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    try:
        # Every copy of the metadata: run from a clone, the setuptools build's esrgan.egg-info in the
        # working folder comes first and has no record of where pip installed from.
        records = (dist.read_text("direct_url.json") for dist in metadata.distributions(name=PACKAGE))
        origin = json.loads(next((text for text in records if text), "{}"))
        url = origin.get("url", "")
        vcs, folder = origin.get("vcs_info"), origin.get("dir_info")
    except (metadata.PackageNotFoundError, ValueError, AttributeError, OSError):
        return f'"{PACKAGE}[{extra}]"'
    if isinstance(vcs, dict) and vcs.get("vcs"):
        revision = f"@{vcs['requested_revision']}" if vcs.get("requested_revision") else ""
        return f'"{PACKAGE}[{extra}] @ {vcs["vcs"]}+{url}{revision}"'
    if url.startswith("file:"):
        parsed = urlparse(url)
        where = url2pathname(f"//{parsed.netloc}{parsed.path}" if parsed.netloc else parsed.path)
        editable = isinstance(folder, dict) and folder.get("editable")
        return f'{"-e " if editable else ""}"{where}[{extra}]"'
    return f'"{PACKAGE}[{extra}] @ {url}"' if url else f'"{PACKAGE}[{extra}]"'


class EsrganError(Exception):
    """Base class: a problem the user can fix (bad path, bad file, missing dependency...)."""

    exit_code = 2


class UsageError(EsrganError):
    """Arguments that do not make sense together or are out of range."""


class ConfigError(EsrganError):
    """A configuration key or value that is unknown or invalid."""


class CheckpointError(EsrganError):
    """A checkpoint that cannot be read, is not a generator, or does not match what was expected."""


class ModelError(EsrganError):
    """A model file (ONNX, engine) that cannot be loaded or has unusable metadata."""


class ModelShapeError(ModelError):
    """A model whose input or output the tiler cannot feed (not RGB, a fixed batch other than 1, a fixed
    non-square size): no backend would run it, so ``auto`` tries none other."""


class ImageError(EsrganError):
    """One input image that cannot be read, is too large, or cannot be processed."""

    exit_code = 1


class CacheError(EsrganError):
    """The cache folder cannot be written (a read-only home, ``ESRGAN_CACHE_DIR`` naming a file)."""


class DependencyError(EsrganError):
    """An optional package (torch, openvino, tensorrt...) or device (CUDA GPU) that is not available."""


class BackendError(EsrganError):
    """An inference backend failed to load or run a model."""


class OutOfMemoryError(BackendError):
    """The device ran out of memory for this batch/tile: the caller may retry smaller."""


class VerificationError(EsrganError):
    """An exported artefact does not match PyTorch within its precision's threshold.

    ``failures`` is the figures alone, for callers that word the error their own way (an export to
    a temporary folder must not point at the folder it is about to delete).
    """

    exit_code = 1

    def __init__(self, failures: str, kept: object = None) -> None:
        self.failures = failures
        super().__init__(f"verification failed: {failures}" + (f" (files kept in {kept})" if kept else ""))


class TrainingError(EsrganError):
    """Training cannot continue (non-finite loss, empty data, missing stage)."""


# Longest third-party message shown in a one-line error: ONNX Runtime and OpenVINO put whole
# graph dumps and file paths on their first line.
FIRST_LINE_LIMIT = 300


def first_line(exc: BaseException | str, limit: int = FIRST_LINE_LIMIT) -> str:
    """The first non-empty line of ``exc``'s message, else its class name, cut to ``limit`` characters.

    Third-party errors (ONNX Runtime, OpenVINO, protobuf, PyYAML...) often carry pages of context;
    wrapped into an EsrganError they must still end in one short line.
    """
    for line in str(exc).splitlines():
        if line.strip():
            text = line.strip()
            return text if len(text) <= limit else text[: limit - 3] + "..."
    return type(exc).__name__
