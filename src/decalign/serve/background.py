"""The app served by uvicorn in a background thread of this process, on a free loopback port:
what the browser test, the concurrency test and ``benchmarks/bench_serve.py`` talk to over real
HTTP (the framework's test client calls the app in-process instead)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Generator
from typing import Any

__all__ = ["free_port", "running"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(app: Any, port: int | None = None, timeout: float = 30.0) -> Generator[str, None, None]:
    """Serve ``app`` on ``127.0.0.1`` until the block ends; yields its base URL."""
    from decalign._optional import require

    uvicorn = require("uvicorn", "serve", feature="decalign serve")
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off", server_header=False))
    thread = threading.Thread(target=server.run, name="decalign-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
