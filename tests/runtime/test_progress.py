"""Progress a user can see: tiles within a large image, and throughput digits that mean something."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from esrgan.runtime import paths
from esrgan.runtime.engine import TileEngine
from esrgan.runtime.images import from_array
from esrgan.runtime.options import RunOptions
from esrgan.runtime.pipeline import FolderRun, Summary, format_rate
from tests.runtime.test_run_defaults import Nearest


@pytest.mark.parametrize(("rate", "text"), [
    (0.0041234, "0.00412"), (0.41234, "0.412"), (4.1234, "4.12"), (41.234, "41.2"), (4123.4, "4123"), (0.0, "0"),
])
def test_rates_keep_three_significant_digits(rate, text):
    assert format_rate(rate) == text


def test_a_small_output_does_not_read_as_zero_throughput():
    line = Summary(written=1, seconds=2.0, output_megapixels=0.0016).describe()
    assert "(0.000800 output MP/s)" in line


def test_a_run_that_wrote_nothing_gives_no_throughput():
    line = Summary(skipped=4, seconds=0.02).describe()
    assert line == "0 written, 4 skipped (outputs exist; --overwrite to redo), 0 failed in 0.0 s"


def test_engine_reports_tiles_within_an_image():
    image = from_array(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    seen, done = [], []
    engine = TileEngine(Nearest(), 16, 4, 2, on_done=done.append, on_fail=lambda w, m: None,
                        on_tiles=lambda work: seen.append((work.tiles_done, work.total)))
    engine.submit(0, image)
    assert len(done) == 1
    # 3 x 3 tiles in batches of 2: laid out, then after each batch that left the image unfinished
    assert seen == [(0, 9), (2, 9), (4, 9), (6, 9), (8, 9)]


def test_folder_progress_bar_names_the_image_and_its_tiles(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((40, 40, 3), 9, np.uint8)).save(src / "big.png")
    jobs = paths.plan_run(str(src), tmp_path / "out", "same", None, suffix="", overwrite=False).jobs
    summary = FolderRun(Nearest(), RunOptions(tile=16, tile_pad=4, batch=2), progress=True).run(jobs)
    assert summary.written == 1
    assert "big.png tile 0/9" in capsys.readouterr().err


def test_one_long_model_call_keeps_the_bar_moving(tmp_path, capsys, monkeypatch):
    """A whole image in one call has no tiles to count: the bar still redraws, naming the image."""
    import time

    from esrgan.runtime import pipeline

    monkeypatch.setattr(pipeline._BarStatus, "TICK_S", 0.1)

    class Slow(Nearest):
        def run(self, batch):
            time.sleep(0.6)
            return super().run(batch)

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((24, 24, 3), 9, np.uint8)).save(src / "whole.png")
    jobs = paths.plan_run(str(src), tmp_path / "out", "same", None, suffix="", overwrite=False).jobs
    summary = FolderRun(Slow(), RunOptions(tile=0, tile_pad=4), progress=True).run(jobs)
    assert summary.written == 1
    frames = [f for f in capsys.readouterr().err.split("\r") if "whole.png" in f and "0/1" in f]
    assert len(frames) >= 3, frames  # redrawn while the one call ran, not only before and after
