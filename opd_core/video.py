"""Rollout videos as H.264 mp4 (yuv420p, faststart) that browsers play, written with PyAV's bundled libx264."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_mp4(path: str | Path, frames: list[np.ndarray] | np.ndarray, fps: int = 10, scale: int = 4) -> Path:
    """Encode RGB uint8 frames [T, H, W, 3]; `scale` enlarges small renders (nearest neighbour) for viewing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames)
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    height, width = frames.shape[1] - frames.shape[1] % 2, frames.shape[2] - frames.shape[2] % 2
    # PyAV can only mux mp4 to a real file path (not BytesIO); write beside and rename for atomicity.
    tmp = path.with_name(path.stem + ".tmp.mp4")
    with av.open(str(tmp), mode="w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for frame in frames:
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:height, :width]), format="rgb24")
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
    return path


def read_video_info(path: str | Path) -> dict:
    """Codec, pixel format, size and frame count of a video file (for tests and the dashboard)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "frames": frames,
        }
