"""Optional persistence: the whole store as one JSON file, so a restarted sandbox keeps its objects.

Saving is debounced (a burst of writes produces one save, at most ``delay`` seconds later) and
atomic (write to a temporary file, then rename), so a crash leaves either the old or the new
state, never a torn file. Watches do not survive a restart: the event log starts empty at the
saved resourceVersion, and older resourceVersions answer 410 Gone, as after an etcd compaction.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from kubesim.store import Event, Store

log = logging.getLogger(__name__)


class StateFile:
    def __init__(self, path: Path, store: Store, delay: float = 0.2) -> None:
        self.path = path
        self.store = store
        self.delay = delay
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._running = False

    def load(self) -> bool:
        """Restore the store from the file, if it exists. A corrupt file is an error, not a reset."""
        if not self.path.exists():
            return False
        try:
            snapshot = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"{self.path}: cannot load sandbox state: {exc}") from exc
        self.store.restore(snapshot)
        return True

    def start(self) -> None:
        self._running = True
        self.store.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if not self._running:
            return
        with self._lock:
            if self._timer is None:
                self._timer = threading.Timer(self.delay, self._flush)
                self._timer.daemon = True
                self._timer.start()

    def _flush(self) -> None:
        with self._lock:
            self._timer = None
        self.save()

    def save(self) -> None:
        # One save at a time: the debounce timer and stop() may both want to write the file.
        with self._save_lock:
            snapshot = self.store.snapshot()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            with open(tmp, "w") as fh:
                json.dump(snapshot, fh, separators=(",", ":"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)

    def stop(self) -> None:
        """Cancel a pending save and write the final state now."""
        self._running = False
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self.save()
