"""An "API server" that accepts connections and never answers, for testing that every review
call gives up instead of hanging. Counts how many connections are open at once."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import yaml


class SilentServer:
    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = self.open = self.max_open = 0
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
                self.accepted += 1
                self.open += 1
                self.max_open = max(self.max_open, self.open)
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn: socket.socket) -> None:
        try:
            while conn.recv(65536):  # read what the client sends, answer nothing
                pass
        except OSError:
            pass
        with self._lock:
            self.open -= 1

    def kubeconfig(self, real: Path, path: Path) -> Path:
        """`real` (a kubeconfig of the test cluster) with its server replaced by this one."""
        cfg = yaml.safe_load(real.read_text())
        cfg["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)
        return path

    def close(self) -> None:
        self.listener.close()
        for c in self._conns:
            try:
                c.close()
            except OSError:
                pass
