"""Writing the driving view's frames to a video file: GIF (Pillow) or MP4 (imageio-ffmpeg, optional).

Frames are streamed: a GIF's frames go to a temporary folder as PNG files and are assembled at
the end (Pillow reads them one by one), an MP4's go straight into an ffmpeg process. Either way
the file appears under its name only when complete: nothing half-written is left.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

FORMATS = (".gif", ".mp4")


class VideoRecorder:
    """Writes (H, W, 3) uint8 RGB frames to ``path`` at ``fps`` frames per second.

    Args:
        path: a ``.gif`` or ``.mp4`` file (its folder is created).
        fps: playback frames per second.

    Raises:
        ValueError: another suffix, or ``.mp4`` without the ``imageio-ffmpeg`` package
            (``pip install 'ppuu[video]'``).
    """

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        self.suffix = self.check(self.path)
        if fps <= 0:
            raise ValueError(f"fps = {fps}: expected > 0")
        self.fps = float(fps)
        self.frames = 0
        self.shape: tuple[int, ...] | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        self._writer = None
        self._durations: list[int] = []     # GIF: frames each stored image lasts

    @staticmethod
    def check(path: str | Path) -> str:
        """The suffix of a writable video path; ValueError for another format or MP4 without its writer."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in FORMATS:
            raise ValueError(f"--record {path}: expected a {' or '.join(FORMATS)} file")
        if suffix == ".mp4":
            try:
                import imageio_ffmpeg  # noqa: F401
            except ImportError as exc:
                raise ValueError(f"--record {path}: writing MP4 needs the imageio-ffmpeg package "
                                 "(pip install 'ppuu[video]'); or record a .gif") from exc
        return suffix

    def add(self, frame: np.ndarray, repeat: bool = False) -> None:
        """Append one (H, W, 3) uint8 frame (every frame the same size). ``repeat``: the frame is the previous one
        again (a window's frame where nothing moved): a GIF shows the previous frame one frame longer instead of
        storing it twice (its frame count is then that of distinct frames; its timing is the same); an MP4 gets
        it again."""
        if repeat and self.frames and self.suffix == ".gif":
            self._durations[-1] += 1
            self.frames += 1
            return
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame of shape {frame.shape} and dtype {frame.dtype}: expected (H, W, 3) uint8")
        if self.shape is None:
            self.shape = frame.shape
        elif frame.shape != self.shape:
            raise ValueError(f"frame of shape {frame.shape}: the video's frames are {self.shape}")
        if self.suffix == ".gif":
            from PIL import Image

            Image.fromarray(frame).save(self._tmp / f"{self.frames:06d}.png", compress_level=1)
            self._durations.append(1)
        else:
            if self._writer is None:
                import imageio_ffmpeg

                self._writer = imageio_ffmpeg.write_frames(str(self._tmp / self.path.name), (frame.shape[1],
                                                           frame.shape[0]), fps=self.fps, macro_block_size=2,
                                                           quality=7)
                self._writer.send(None)
            self._writer.send(np.ascontiguousarray(frame))
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file and return its path (None when no frame was added)."""
        try:
            if self.frames == 0:
                return None
            target = self._tmp / self.path.name
            if self.suffix == ".gif":
                from PIL import Image

                files = sorted(self._tmp.glob("*.png"))

                def rest():
                    for f in files[1:]:
                        with Image.open(f) as image:
                            yield image.convert("RGB")

                with Image.open(files[0]) as first:
                    first.convert("RGB").save(target, save_all=True, append_images=rest(),
                                              duration=[round(1000 * n / self.fps) for n in self._durations],
                                              loop=0)
            else:
                self._writer.close()
                self._writer = None
            os.replace(target, self.path)
            return self.path
        finally:
            if self._writer is not None:
                self._writer.close()
            shutil.rmtree(self._tmp, ignore_errors=True)
