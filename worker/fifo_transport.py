"""kombu's filesystem transport with first-in first-out file names.

kombu names a message `<monotonic milliseconds>_<uuid4>.<queue>.msg` and a worker takes the first name in sorted
order, so messages sent within the same millisecond (a sweep's runs, sent in a loop) were taken in the random
order of their uuids: a later-queued run could start before an earlier one. Here the name starts with the
wall-clock nanoseconds, zero-padded, made strictly increasing within a process, so sorted order is sending order
(across processes and machines sharing the folder, as far as their clocks agree).
"""

from __future__ import annotations

import os
import threading
import time
import uuid

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

_clock_lock = threading.Lock()
_last_ns = 0


def sortable_stamp() -> str:
    """Nanoseconds since the epoch, 20 digits, never the same twice in this process."""
    global _last_ns
    with _clock_lock:
        _last_ns = max(time.time_ns(), _last_ns + 1)
        return f"{_last_ns:020d}"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put `payload` onto `queue` under a name that sorts after every earlier message of this process. The
        file is written under a temporary name and renamed, so a worker never reads a half-written message."""
        filename = f"{sortable_stamp()}_{uuid.uuid4()}.{queue}.msg"
        path = os.path.join(self.data_folder_out, filename)
        partial = os.path.join(self.data_folder_out, f"~{filename}.partial")  # matches no queue's pattern
        try:
            with open(partial, "wb", buffering=0) as file:
                file.write(str_to_bytes(dumps(payload)))
            os.rename(partial, path)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {path!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
