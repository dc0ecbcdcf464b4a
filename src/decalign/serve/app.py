"""The FastAPI application of ``decalign serve``: pages, the JSON API, and the rules that make it
safe to leave running (docs/serve.md).

* Limits are applied before a body is read: ``Content-Length`` beyond the limit of the route
  (JSON or upload) is a 413 at once, and a body without one is counted as it arrives.
* With a token every request needs it (``Authorization: Bearer``, the ``X-Decalign-Token``
  header, or ``?token=`` once in a browser, which sets a cookie); without it: 401.
* Run names are checked by :class:`~decalign.serve.runs.RunIndex` (no ``..``, absolute paths
  or symbolic links out of ``--runs``).
* A user's error is a 4xx with ``{"error": "<one line>"}`` (pages: the line in a page); a bug is
  a 500 whose body says only that, the traceback going to the server's log.
* Loading and inference run in worker threads (at most ``threads`` at once), so the event loop
  keeps answering while a model works.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations, and the
routes are defined inside :func:`create_app`, where the lazily imported FastAPI types live.
"""

import hmac
import logging
import math
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from decalign.errors import DecalignError, UsageError
from decalign.serve import pages as P
from decalign.serve.models import ModelCache, predict_with_contributions
from decalign.serve.runs import RunIndex, RunNotFound, UnsafeName, read_json

__all__ = ["LOCAL_HOSTS", "MEDIA_SUFFIXES", "ServeConfig", "create_app", "serve"]

log = logging.getLogger("decalign")

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MEDIA_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".wav", ".flac", ".mp3", ".m4a", ".ogg")
"""Upload file types accepted (by name; the media readers then check the content)."""
UPLOAD_ROUTES = ("/api/predict/media", "/try/media")
SECURITY_HEADERS = (
    (b"content-security-policy", b"default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                                 b"form-action 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
"""Sent with every response: the pages load nothing but their own figures, run no script and
cannot be framed by another site."""
MAX_SAMPLE_INDEX = 10**7
MEMO_SIZE = 64
"""Figures and tables kept per server (each a few hundred kB at most)."""


@dataclass(frozen=True)
class ServeConfig:
    """The server's settings, checked once (:meth:`__post_init__`).

    Attributes:
        runs: the folder whose run directories are served (nothing outside it is).
        host, port: where to listen; a host other than the loopback needs ``token``.
        token: the shared secret every request must carry (``None``: none needed, local only).
        max_json_bytes: largest JSON body (``POST /api/predict``); 413 beyond.
        max_upload_bytes: largest multipart body (media uploads); 413 beyond.
        cache_size: checkpoints (and their data) kept loaded.
        threads: worker threads for loading and inference.
        device: where models run (``cpu``; ``auto`` as training picks).
    """

    runs: Path
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_json_bytes: int = 8 * 2**20
    max_upload_bytes: int = 64 * 2**20
    cache_size: int = 4
    threads: int = 4
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not Path(self.runs).is_dir():
            raise UsageError(f"--runs {os.fspath(self.runs)}: not a directory")
        if self.host not in LOCAL_HOSTS and not self.token:
            raise UsageError(f"--host {self.host}: serving beyond this machine needs --token (or the "
                             "DECALIGN_SERVE_TOKEN variable); every request must then carry it")
        if self.token is not None and len(self.token) < 8:
            raise UsageError("--token: at least 8 characters")
        if not 0 < self.port < 65536:
            raise UsageError(f"--port {self.port}: not in 1..65535")
        for name in ("max_json_bytes", "max_upload_bytes", "cache_size", "threads"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"{name.replace('_', '-')}: must be at least 1")


class _TooLarge(Exception):
    pass


class _BadBody(Exception):
    """A JSON body that does not parse or validate (422)."""


def _validation_line(errors: Any) -> str:
    """The first of the framework's validation errors as ``where: what``."""
    first = errors[0] if errors else {}
    where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
    return f"{where or 'request body'}: {first.get('msg', 'invalid')}"


def _json_error(status: int, message: str) -> tuple[int, bytes]:
    import json

    return status, json.dumps({"error": message}).encode()


class _Limits:
    """ASGI middleware: body size limits (413) and the token (401), before any route runs."""

    def __init__(self, app: Any, config: ServeConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if not self.config.token and _host_name(headers.get("host", "")) not in LOCAL_HOSTS:
            # Without a token only this machine may ask, by name too: a web page elsewhere whose
            # domain is made to resolve to 127.0.0.1 (DNS rebinding) sends its own Host header.
            await _send(send, *_json_error(400, f"Host {headers.get('host', '')[:80]!r}: this server answers "
                                                "requests to 127.0.0.1 or localhost only (start it with --token "
                                                "to serve other names)"))
            return
        set_cookie = None
        if self.config.token:
            given = _token_of(scope, headers)
            if given is None or not hmac.compare_digest(given.encode(), self.config.token.encode()):
                await _send(send, *_json_error(401, "missing or wrong token: send 'Authorization: Bearer TOKEN'"))
                return
            if "token=" in scope.get("query_string", b"").decode("latin-1"):
                set_cookie = f"decalign_token={self.config.token}; HttpOnly; SameSite=Strict; Path=/"
        limit = self.config.max_upload_bytes if scope["path"] in UPLOAD_ROUTES else self.config.max_json_bytes
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                await _send(send, *_json_error(400, "Content-Length: not a number"))
                return
            if int(length) > limit:
                await _send(send, *_json_error(413, f"request body of {length} bytes, more than the {limit} allowed "
                                                    f"for {scope['path']}"))
                return
        seen = 0
        started = exceeded = replaced = False
        too_large = _json_error(413, f"request body more than the {limit} bytes allowed for {scope['path']}")

        async def counted() -> Any:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def sending(message: Any) -> None:
            # The framework turns an error while reading the body into its own 400; a body cut
            # off for its size answers 413 instead, whatever the route would have said.
            nonlocal started, replaced
            if exceeded:
                if message["type"] == "http.response.start" and not replaced:
                    replaced = True
                    await _send(send, *too_large)
                return
            if message["type"] == "http.response.start":
                started = True
                extra = list(SECURITY_HEADERS)
                if set_cookie:
                    extra.append((b"set-cookie", set_cookie.encode("latin-1")))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except _TooLarge:
            if not started and not replaced:
                await _send(send, *too_large)


def _host_name(host: str) -> str:
    """The name of a Host header without its port (``[::1]:8000`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _token_of(scope: dict[str, Any], headers: dict[str, str]) -> str | None:
    from urllib.parse import parse_qs

    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if "x-decalign-token" in headers:
        return headers["x-decalign-token"]
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == "decalign_token":
            return value
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return query.get("token", [None])[0]


async def _send(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _status_of(err: Exception) -> int:
    from decalign._optional import MissingExtraError

    if isinstance(err, RunNotFound):
        return 404
    if isinstance(err, UnsafeName):
        return 400
    if isinstance(err, MissingExtraError):
        return 503
    return 400


class _State:
    """What the routes share: the run index, the model cache, the worker limiter and the results
    computed once per run (robustness table, class report)."""

    def __init__(self, config: ServeConfig) -> None:
        import anyio

        self.config = config
        self.index = RunIndex(config.runs)
        self.cache = ModelCache(config.cache_size, config.device)
        self.limiter = anyio.CapacityLimiter(config.threads)
        self._memo: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self._memo_lock = threading.Lock()
        self._key_locks: dict[tuple[str, ...], threading.Lock] = {}

    async def work(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Loading or inference: in one of the ``threads`` workers."""
        import anyio

        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def light(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Reading a few small files (the runs list, a results.json): in a thread too, but not
        queued behind the models, so health checks and listings answer while every worker is busy."""
        import anyio

        return await anyio.to_thread.run_sync(fn, *args)

    def memo(self, key: tuple[str, ...], build: Callable[[], Any]) -> Any:
        """``build()`` once per key (results that depend only on a run's files), the last
        :data:`MEMO_SIZE` kept: a client asking for every sample's plan cannot fill the memory."""
        with self._memo_lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            with self._memo_lock:
                if key in self._memo:
                    return self._memo[key]
            value = build()
            with self._memo_lock:
                self._memo[key] = value
                while len(self._memo) > MEMO_SIZE:
                    old, _ = self._memo.popitem(last=False)
                    self._key_locks.pop(old, None)
            return value

    def seeds(self, name: str) -> list[int]:
        return self.index.summary(name).seeds

    def checkpoint(self, name: str, seed: int | None) -> tuple[Path, int]:
        """The checkpoint file of run ``name`` and ``seed`` (default: its first)."""
        path = self.index.path_of(name)
        seeds = self.seeds(name)
        if not seeds:
            raise RunNotFound(f"run {name!r} has no finished seed")
        chosen = seeds[0] if seed is None else int(seed)
        if chosen not in seeds:
            raise RunNotFound(f"run {name!r} has no seed {chosen}; it has {seeds}")
        file = self.index.inside(path, f"seed_{chosen}/model.safetensors")
        if not file.is_file():
            raise RunNotFound(f"run {name!r}, seed {chosen}: no model.safetensors")
        return file, chosen

    def stamp(self, name: str) -> str:
        """Changes when the run's results change (keys of memoised results)."""
        return str((self.index.path_of(name) / "results.json").stat().st_mtime_ns)


def create_app(config: ServeConfig) -> Any:
    """The application for ``config`` (run it with uvicorn, or test it with FastAPI's TestClient)."""
    from decalign._optional import require

    require("fastapi", "serve", feature="decalign serve")
    require("python_multipart", "serve", feature="decalign serve's uploads")
    from fastapi import FastAPI, File, Form, Query, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from pydantic import BaseModel, ConfigDict, ValidationError
    from starlette.exceptions import HTTPException

    from decalign import __version__

    state = _State(config)
    app = FastAPI(title="decalign serve", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.decalign = state
    app.add_middleware(_Limits, config=config)

    def error_response(request: Request, status: int, message: str) -> Response:
        # Paths under --runs are shown relative to it: a client learns nothing of the server's folders.
        message = _one_line(message.replace(str(state.index.root) + os.sep, "").replace(str(state.index.root), "."))
        if request.url.path.startswith(("/api", "/figures/")):
            return JSONResponse({"error": message}, status_code=status)
        body = f"<h1>Error {status}</h1><p class='err' id='error'>{P.esc(message)}</p><p><a href='/'>Runs</a></p>"
        return HTMLResponse(P.layout(f"error {status}", body), status_code=status)

    @app.exception_handler(DecalignError)
    async def _user_error(request: Request, err: DecalignError) -> Response:
        return error_response(request, _status_of(err), str(err))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> Response:
        return error_response(request, 422, _validation_line(err.errors()))

    @app.exception_handler(_BadBody)
    async def _bad_body(request: Request, err: _BadBody) -> Response:
        return error_response(request, 422, str(err))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, err: HTTPException) -> Response:
        return error_response(request, err.status_code, str(err.detail))

    @app.exception_handler(Exception)
    async def _bug(request: Request, err: Exception) -> Response:
        log.error("serve: %s %s failed", request.method, request.url.path, exc_info=err)
        return error_response(request, 500, f"internal error ({type(err).__name__}); the server log has the details")

    # -- API ------------------------------------------------------------------------------------

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "runs": len(await state.light(state.index.names)),
                "threads": config.threads}

    @app.get("/api/runs")
    async def runs() -> list[dict[str, Any]]:
        return [s.to_json() for s in await state.light(state.index.summaries)]

    @app.get("/api/runs/{name:path}")
    async def run_detail(name: str) -> dict[str, Any]:
        return await state.light(_run_json, state, name)

    class PredictBody(BaseModel):
        model_config = ConfigDict(extra="forbid")
        run: str
        seed: int | None = None
        features: dict[str, list[list[float]]]
        drop: list[str] = []

    @app.post("/api/predict")
    async def predict(request: Request) -> dict[str, Any]:
        # The body is parsed in the worker, by pydantic's JSON parser: an 800 kB sample (MOSI's
        # text is 50 x 768 numbers) costs ~5 ms there, against ~35 ms for json.loads plus
        # validation on the event loop, where it would hold up every other request.
        raw = await request.body()

        def work() -> dict[str, Any]:
            try:
                body = PredictBody.model_validate_json(raw)
            except ValidationError as err:
                raise _BadBody(_validation_line(err.errors())) from None
            file, seed = state.checkpoint(body.run, body.seed)
            predictor = state.cache.predictor(file)
            features = {m: _matrix(m, v) for m, v in body.features.items()}
            return {"run": body.run, "seed": seed, **predict_with_contributions(predictor, features, drop=body.drop)}

        return await state.work(work)

    @app.post("/api/predict/media")
    async def predict_media(file: Annotated[UploadFile, File()], run: Annotated[str, Form()],
                            transcript: Annotated[str, Form()], seed: Annotated[int | None, Form()] = None,
                            start: Annotated[float | None, Form()] = None,
                            end: Annotated[float | None, Form()] = None) -> dict[str, Any]:
        return await _media(state, file, run, transcript, seed, start, end)

    # -- figures --------------------------------------------------------------------------------

    @app.get("/figures/curves.png")
    async def curves(run: str) -> Response:
        png = await state.work(lambda: state.memo(("curves", run, state.stamp(run)), lambda: _curves(state, run)))
        return Response(png, media_type="image/png")

    @app.get("/figures/plan.png")
    async def plan(run: str, seed: int | None = None, sample: Annotated[int, Query(ge=0, le=MAX_SAMPLE_INDEX)] = 0,
                   split: str = "test") -> Response:
        png = await state.work(_plan, state, run, seed, split, sample)
        return Response(png, media_type="image/png")

    @app.get("/figures/confusion.png")
    async def confusion(run: str) -> Response:
        report = await state.work(_class_report, state, run)
        if report is None:
            raise HTTPException(404, f"run {run!r} is not a classification run")
        from decalign.serve.figures import confusion_png

        png = await state.work(lambda: state.memo(("confusion", run, state.stamp(run)),
                                                  lambda: confusion_png(report, f"{run}: test split, all seeds")))
        return Response(png, media_type="image/png")

    # -- pages ----------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    async def index_page() -> str:
        return _runs_page(await state.light(state.index.summaries))

    @app.get("/runs/{name:path}", response_class=HTMLResponse)
    async def run_page(name: str, seed: int | None = None,
                       sample: Annotated[int, Query(ge=0, le=MAX_SAMPLE_INDEX)] = 0) -> str:
        return await state.work(_run_page, state, name, seed, sample)

    @app.get("/compare", response_class=HTMLResponse)
    async def compare_page(a: str | None = None, b: str | None = None) -> str:
        return await state.work(_compare_page, state, a, b)

    @app.get("/try", response_class=HTMLResponse)
    async def try_page(run: str | None = None, seed: int | None = None) -> str:
        return await state.work(_try_page, state, run, seed)

    @app.get("/try/sample", response_class=HTMLResponse)
    async def try_sample(run: str, seed: int | None = None, split: str = "test",
                         index: Annotated[int, Query(ge=0, le=MAX_SAMPLE_INDEX)] = 0) -> str:
        return await state.work(_try_sample_page, state, run, seed, split, index)

    @app.post("/try/media", response_class=HTMLResponse)
    async def try_media(file: Annotated[UploadFile, File()], run: Annotated[str, Form()],
                        transcript: Annotated[str, Form()], seed: Annotated[int | None, Form()] = None) -> str:
        result = await _media(state, file, run, transcript, seed, None, None)
        return _media_result_page(result)

    return app


# -- work done in threads --------------------------------------------------------------------------


def serve(config: ServeConfig) -> None:
    """Build the application for ``config`` and serve it with uvicorn on ``config.host`` and
    ``config.port`` until interrupted (``decalign serve``)."""
    from decalign._optional import require

    app = create_app(config)
    uvicorn = require("uvicorn", "serve", feature="decalign serve")
    log.info("decalign serve: %d run(s) under %s on http://%s:%d/", len(app.state.decalign.index.names()),
             config.runs, config.host, config.port)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", server_header=False)


def _paper_row(kind: str) -> dict[str, float] | None:
    from decalign.metrics.display import PAPER_RESULTS

    row = PAPER_RESULTS.get(kind, {}).get("DecAlign")
    return dict(row) if row else None


def _run_json(state: _State, name: str) -> dict[str, Any]:
    summary = state.index.summary(name)
    results = read_json(summary.path / "results.json")
    config = read_json(summary.path / "config.json")
    return {**summary.to_json(), "results": results, "config": config, "paper": _paper_row(summary.dataset)}


def _curves(state: _State, name: str) -> bytes:
    from decalign.serve.figures import curves_png
    from decalign.train.rundir import RunDir

    rows = RunDir(state.index.path_of(name)).read_history()
    return curves_png(rows, f"{name}: every loss term and metric by epoch")


def _sample_split(state: _State, file: Path, split: str, index: int) -> tuple[Any, Any]:
    data = state.cache.raw_data(file)
    if split not in data.splits:
        raise RunNotFound(f"no split {split!r}; the run's data has {sorted(data.splits)}")
    part = data.splits[split]
    if not 0 <= index < len(part):
        raise RunNotFound(f"sample {index}: the {split} split has {len(part)} samples (0..{len(part) - 1})")
    return part, part.subset([index])


def _label_text(part: Any, index: int, info: Any) -> str:
    label = part.labels[index]
    if info.task == "classification":
        names = info.class_names or [f"class_{c}" for c in range(info.num_outputs)]
        return str(names[int(label)])
    return f"{float(label):+.3f}"


def _plan(state: _State, name: str, seed: int | None, split: str, index: int) -> bytes:
    """The transport plan of the evaluation batch holding the sample (the prototypes are refitted
    on every batch: a plan belongs to a batch, not to one sample)."""
    import torch

    from decalign.serve.figures import plan_png

    file, seed = state.checkpoint(name, seed)

    def draw() -> bytes:
        ckpt = state.cache.checkpoint(file)
        prepared = state.cache.prepared_data(file)
        if split not in prepared.splits:
            raise RunNotFound(f"no split {split!r}; the run's data has {sorted(prepared.splits)}")
        data = prepared.splits[split]
        if not 0 <= index < len(data):
            raise RunNotFound(f"sample {index}: the {split} split has {len(data)} samples")
        size = ckpt.config.train.batch_size
        first = index // size * size
        rows = torch.arange(first, min(first + size, len(data)))
        device = next(ckpt.model.parameters()).device
        with torch.no_grad():
            batch = data.batch(rows, device)
            out = ckpt.model(batch.features, batch.lengths)
        if out.plan is None:
            raise RunNotFound(f"run {name!r}: the model computes no transport plan (no prototype OT term)")
        plan = out.plan.float().cpu().numpy()
        if not np.isfinite(plan).all() or plan.sum() <= 0:
            raise RunNotFound(f"run {name!r}: the transport plan of this batch has no mass")
        return plan_png(plan, ckpt.info.modalities,
                        f"Transport plan of the {split} batch of samples {first}-{int(rows[-1])} (seed {seed})")

    return state.memo(("plan", name, str(seed), split, str(index), state.stamp(name)), draw)


def _class_report(state: _State, name: str) -> dict[str, Any] | None:
    """Confusion matrix and per-class scores on the test split, pooled over the run's seeds."""
    summary = state.index.summary(name)
    if summary.task != "classification":
        return None

    def build() -> dict[str, Any]:
        from decalign.inference import class_report

        logits, labels, info = [], [], None
        for seed in summary.seeds:
            file, _ = state.checkpoint(name, seed)
            predictor = state.cache.predictor(file)
            info = predictor.info
            test = state.cache.raw_data(file).splits["test"]
            out = predictor.predict_split(test)
            logits.append(out.logits)
            labels.append(np.asarray(test.labels))
        if info is None:  # concatenating no seeds' logits would fail less clearly
            raise RunNotFound(f"run {name!r}: no seed with a checkpoint to report classes of")
        return class_report(np.concatenate(logits), np.concatenate(labels), info)

    return state.memo(("classes", name, state.stamp(name)), build)


def _robustness(state: _State, name: str) -> dict[str, Any]:
    """The missing-modality table of ``decalign eval --drop-each``: the run's own
    ``drop_each_test.json`` when it was written, else computed (once) over the run's seeds."""
    path = state.index.path_of(name)
    written = path / "drop_each_test.json"
    if written.is_file():
        return read_json(written)

    def build() -> dict[str, Any]:
        from decalign.evaluation import drop_each

        files = [state.checkpoint(name, s)[0] for s in state.seeds(name)]
        config = state.cache.checkpoint(files[0]).config
        return drop_each(files, config.data.path, "test", state.config.device)

    return state.memo(("robustness", name, state.stamp(name)), build)


def _matrix(modality: str, rows: list[list[float]]) -> np.ndarray:
    """One modality's ``T x D`` rows as an array; rows of different lengths are a user's error."""
    widths = sorted({len(r) for r in rows})
    if len(widths) > 1:
        raise UsageError(f"features[{modality!r}]: rows of different lengths {widths[:4]}; one sample is T rows "
                         "of D numbers")
    return np.asarray(rows, dtype=np.float32)


def _renamed(err: DecalignError, message: str) -> DecalignError:
    """``err`` with another message, same type where its constructor takes one message."""
    try:
        return type(err)(message)
    except TypeError:
        return DecalignError(message)


async def _media(state: _State, upload: Any, run: str, transcript: str, seed: int | None,
                 start: float | None, end: float | None) -> dict[str, Any]:
    """Save an upload (bounded, a safe name in a private folder), extract and predict in a worker."""
    file, seed = state.checkpoint(run, seed)
    suffix = Path(upload.filename or "").suffix.lower()
    if suffix not in MEDIA_SUFFIXES:
        raise UsageError(f"upload {(upload.filename or '')[:80]!r}: not a media file name; accepted: "
                         f"{', '.join(MEDIA_SUFFIXES)}")
    if not transcript.strip():
        raise UsageError("transcript: empty; type what is said in the clip")
    if len(transcript) > 10_000:
        raise UsageError("transcript: longer than 10000 characters")
    for name, value in (("start", start), ("end", end)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise UsageError(f"{name}: {value} is not a time in seconds")

    def work() -> dict[str, Any]:
        began = time.perf_counter()
        model = state.cache.media_model(file)
        loaded = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="decalign-upload-") as tmp:
            target = Path(tmp) / f"upload{suffix}"
            written = 0
            with open(target, "wb") as out:
                upload.file.seek(0)
                while chunk := upload.file.read(2**20):
                    written += len(chunk)
                    if written > state.config.max_upload_bytes:
                        raise _TooLarge
                    out.write(chunk)
            try:
                split, outcome, notes, timings = model.features(target, transcript, start=start, end=end)
            except DecalignError as err:  # name the upload as the client sent it, not our temporary path
                shown = Path(upload.filename or "upload").name
                raise _renamed(err, str(err).replace(str(target), shown).replace(str(tmp), ".")) from None
        predicted = time.perf_counter()
        result = predict_with_contributions(model.predictor, {}, split=split)
        timings = {"load": loaded - began, **timings, "predict": time.perf_counter() - predicted}
        return {"run": run, "seed": seed, "media": upload.filename, "transcript": transcript,
                "status": outcome.status, "lengths": dict(outcome.lengths),
                "extractors": {m: r.describe() for m, r in model.provenance.extractors.items()},
                "notes": notes, "timings": {k: round(v, 4) for k, v in timings.items()}, **result}

    try:
        return await state.work(work)
    except _TooLarge:
        from fastapi import HTTPException

        raise HTTPException(413, f"upload larger than the {state.config.max_upload_bytes} bytes allowed") from None


# -- pages -----------------------------------------------------------------------------------------


def _headline(summary: Any) -> list[str]:
    from decalign.bench import table_keys

    return table_keys(summary.dataset, summary.task, list(summary.metrics))[:4]


def _runs_page(summaries: list[Any]) -> str:
    if not summaries:
        return P.layout("runs", "<h1>Runs</h1><p>No run directories (config.json and results.json) under --runs "
                                "yet. Train one: <code>python -m decalign train --out runs/first</code></p>")
    rows = []
    for s in summaries:
        metrics = ", ".join(f"{k} {P.cell(k, s.metrics[k], s.std.get(k))}" for k in _headline(s))
        link = f"<a class='run' href='{P.url('/runs/' + s.name)}'>{P.esc(s.name)}</a>"
        tries = f"<a href='{P.url('/try', run=s.name)}'>try it</a>"
        rows.append(f"<tr><td class='l'>{link}</td><td class='l'>{P.esc(s.dataset)}</td><td class='l'>"
                    f"{P.esc(s.preset)}</td><td>{P.esc(', '.join(map(str, s.seeds)))}</td><td class='l'>"
                    f"{P.esc(metrics)}</td><td class='l'>{'media' if s.has_media else 'features'}</td>"
                    f"<td class='l'>{tries}</td></tr>")
    options = [(s.name, s.name) for s in summaries]
    compare = (f"<form action='/compare' method='get'>Compare {P.select('a', options, options[0][0])} with "
               f"{P.select('b', options, options[-1][0])} <button type='submit'>side by side</button></form>")
    head = "".join(f"<th class='l'>{h}</th>" for h in ("run", "data", "preset", "seeds", "test (mean ± std)",
                                                        "input", ""))
    body = (f"<h1>Runs</h1><table id='runs'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"{compare}")
    return P.layout("runs", body)


def _results_table(state: _State, summary: Any) -> str:
    results = read_json(summary.path / "results.json")
    mean, std = results.get("mean", {}), results.get("std", {})
    from decalign.model.output import LOG_KEYS

    keys = [k for k in mean if isinstance(mean[k], (int, float)) and k not in (*LOG_KEYS, "loss")]
    n = len(summary.seeds)
    rows: list[list[str]] = [[f"this run (mean ± std over {n} seed{'s' if n != 1 else ''})",
                              *(P.cell(k, mean[k], std.get(k, 0.0)) for k in keys)]]
    for seed, per in results.get("seeds", {}).items():
        test = per.get("test", {}) if isinstance(per, dict) else {}
        rows.append([f"seed {seed}", *(P.cell(k, test.get(k)) for k in keys)])
    paper = _paper_row(summary.dataset)
    if paper:
        rows.append(["paper: DecAlign", *(P.cell(k, paper[k]) if k in paper else "–" for k in keys)])
    return P.table(["test split", *keys], rows, ident="results")


def _run_header(summary: Any) -> str:
    return (f"<p>data <b>{P.esc(summary.dataset)}</b> · preset <b>{P.esc(summary.preset)}</b> · task "
            f"{P.esc(summary.task)} · seeds {P.esc(', '.join(map(str, summary.seeds)))} · "
            f"{'media (extraction record)' if summary.has_media else 'feature files'} · "
            f"<a href='{P.url('/try', run=summary.name)}'>try it</a></p>")


def _run_page(state: _State, name: str, seed: int | None, sample: int) -> str:
    summary = state.index.summary(name)
    parts = [f"<h1>Run {P.esc(name)}</h1>", _run_header(summary), "<h2>Results</h2>",
             _results_table(state, summary),
             "<p class='note'>Accuracies and F1 ×100. The paper's row is its reported DecAlign result on the "
             "benchmark (where the run's data is one of the paper's).</p>",
             "<h2>Training curves</h2>",
             f"<img id='curves' alt='training curves' src='{P.url('/figures/curves.png', run=name)}'>"]
    if summary.task == "classification":
        report = _class_report(state, name)
        if report is not None:
            rows = [(c, f"{100 * r['precision']:.2f}", f"{100 * r['recall']:.2f}", f"{100 * r['f1']:.2f}",
                     r["support"]) for c, r in report["per_class"].items()]
            parts += ["<h2>Classes (test split, every seed pooled)</h2><div class='cols'><div>",
                      P.table(["class", "precision", "recall", "f1", "support"], rows, ident="per-class"),
                      f"</div><div><img id='confusion' alt='confusion matrix' "
                      f"src='{P.url('/figures/confusion.png', run=name)}'></div></div>"]
    parts.append("<h2>Missing modalities at test time</h2>")
    try:
        parts.append(_robustness_table(_robustness(state, name)))
    except (DecalignError, OSError) as err:
        parts.append(f"<p class='err'>not available: {P.esc(_one_line(str(err)))}</p>")
    try:
        parts.append(_sample_section(state, name, seed, sample))
    except RunNotFound:
        raise  # a seed or sample number that is not there: the request's error
    except (DecalignError, OSError) as err:  # the run's data moved or unreadable: the rest still shows
        parts.append(f"<h2>A test sample</h2><p class='err'>not available: {P.esc(_one_line(str(err)))}</p>")
    return P.layout(name, "".join(parts))


def _robustness_table(result: dict[str, Any]) -> str:
    from decalign.bench import table_keys

    rows = result.get("rows", {})
    if not rows:
        return "<p>no rows</p>"
    keys = table_keys(result.get("kind", "auto"), result.get("task", "regression"),
                      list(next(iter(rows.values()))["mean"]))
    body = [[row, *(P.cell(k, r["mean"].get(k), r["std"].get(k, 0.0)) for k in keys)] for row, r in rows.items()]
    return (P.table([f"{result.get('split', 'test')} split", *keys], body, ident="robustness")
            + "<p class='note'>Each row leaves the named modality out of every sample (mean ± std over seeds).</p>")


def _sample_section(state: _State, name: str, seed: int | None, sample: int) -> str:
    file, seed = state.checkpoint(name, seed)
    predictor = state.cache.predictor(file)
    part, one = _sample_split(state, file, "test", sample)
    result = predict_with_contributions(predictor, {}, split=one)
    options = [(str(s), f"seed {s}") for s in state.seeds(name)]
    plan_url = P.url("/figures/plan.png", run=name, seed=seed, sample=sample)
    form = (f"<form method='get' action='{P.url('/runs/' + name)}'>{P.select('seed', options, str(seed))} "
            f"sample <input type='number' name='sample' min='0' max='{len(part) - 1}' value='{sample}'> "
            f"<button type='submit'>show</button></form>")
    return (f"<h2>A test sample</h2>{form}<p>sample {sample} of {len(part)}: id <code>{P.esc(part.ids[sample])}"
            f"</code></p>" + P.prediction_block(result, _label_text(part, sample, predictor.info))
            + "<h3>Prototype transport plan</h3>"
            + f"<img id='plan' alt='transport plan' src='{plan_url}'>"
            + "<p class='note'>The prototypes are refitted on every batch, so the plan shown is that of the "
              "evaluation batch holding this sample.</p>")


def _compare_page(state: _State, a: str | None, b: str | None) -> str:
    summaries = state.index.summaries()
    options = [(s.name, s.name) for s in summaries]
    form = (f"<form action='/compare' method='get'>{P.select('a', options, a)} {P.select('b', options, b)} "
            "<button type='submit'>compare</button></form>")
    if not a or not b:
        return P.layout("compare", f"<h1>Compare two runs</h1>{form}")
    columns = [f"<div style='grid-column:1/3'>{_side_by_side(state, a, b)}</div>"]
    for name in (a, b):
        summary = state.index.summary(name)
        columns.append(f"<div><h2><a href='{P.url('/runs/' + name)}'>{P.esc(name)}</a></h2>{_run_header(summary)}"
                       f"{_results_table(state, summary)}<img alt='training curves' "
                       f"src='{P.url('/figures/curves.png', run=name)}'></div>")
    return P.layout("compare", f"<h1>Compare two runs</h1>{form}<h2>Paired comparison</h2>"
                               f"{_paired_comparison(state, a, b)}<div class='cols'>{''.join(columns)}</div>")


def _side_by_side(state: _State, a: str, b: str) -> str:
    """Each run's own test metrics (mean ± std over its seeds) in one table, and B − A of the
    means: a difference of means, not the paired test (that is :func:`_paired_comparison`)."""
    from decalign.metrics.display import is_percentage

    sa, sb = state.index.summary(a), state.index.summary(b)
    keys = [k for k in sa.metrics if k in sb.metrics] + [k for k in sb.metrics if k not in sa.metrics]
    rows = []
    for k in keys:
        ma, mb = sa.metrics.get(k), sb.metrics.get(k)
        diff = "–"
        if ma is not None and mb is not None:
            diff = f"{100 * (mb - ma):+.2f}" if is_percentage(k) else f"{mb - ma:+.3f}"
        rows.append((k, P.cell(k, ma, sa.std.get(k)), P.cell(k, mb, sb.std.get(k)), diff))
    return P.table(["test metric", f"A: {a}", f"B: {b}", "B − A (means)"], rows, ident="side-by-side")


def _paired_comparison(state: _State, a: str, b: str) -> str:
    """``decalign report``'s paired comparison of the two runs (:func:`decalign.runs.report`):
    B - A of every test metric with a 95 % bootstrap interval over the test samples and the
    seeds, paired on the same samples. Runs on other data (other samples, another task) cannot be
    paired: the note says why in one line."""
    from decalign.errors import DecalignError
    from decalign.runs import report

    if a == b:
        return "<p class='note' id='paired'>The same run twice: its difference is 0.</p>"
    try:
        rep = report([state.index.path_of(a), state.index.path_of(b)], n_boot=1000, bootstrap_seed=0)
    except DecalignError as err:
        return f"<p class='note' id='paired'>No paired comparison: {P.esc(str(err).splitlines()[0][:300])}</p>"
    rows = rep._comparison_cells()
    return P.table(rows[0], rows[1:], left=2, ident="paired") + f"<p class='note'>{P.esc(rep._comparison_note())}</p>"


def _try_page(state: _State, run: str | None, seed: int | None) -> str:
    summaries = state.index.summaries()
    if not summaries:
        return P.layout("try it", "<h1>Try it</h1><p>No runs under --runs.</p>")
    options = [(s.name, f"{s.name} ({'media' if s.has_media else 'features'})") for s in summaries]
    chosen = run if run is not None else summaries[0].name
    summary = state.index.summary(chosen)
    pick = (f"<form method='get' action='/try'>run {P.select('run', options, chosen)} "
            "<button type='submit'>choose</button></form>")
    seeds = [(str(s), f"seed {s}") for s in summary.seeds]
    if summary.has_media:
        form = (f"<h2>A clip of your own</h2><form id='media-form' method='post' action='/try/media' "
                f"enctype='multipart/form-data'><input type='hidden' name='run' value='{P.esc(chosen)}'>"
                f"{P.select('seed', seeds, str(seed or summary.seeds[0]))}<br>"
                f"video or audio file <input type='file' name='file' id='file' accept='{','.join(MEDIA_SUFFIXES)}'>"
                f"<br>transcript <input type='text' name='transcript' id='transcript' size='60' "
                f"placeholder='what is said in the clip'><br><button type='submit' id='submit'>predict</button>"
                "</form><p class='note'>The features are made with the extractors recorded in the checkpoint "
                "(the same code as <code>decalign predict --media</code>).</p>")
    else:
        file, _ = state.checkpoint(chosen, seed)
        n = len(state.cache.raw_data(file).splits["test"])
        form = (f"<h2>A sample of the run's data</h2><p>This run was trained on feature files: there is no "
                f"extraction record to turn a clip into its features, so pick one of its {n} test samples.</p>"
                f"<form id='sample-form' method='get' action='/try/sample'><input type='hidden' name='run' "
                f"value='{P.esc(chosen)}'>{P.select('seed', seeds, str(seed or summary.seeds[0]))} sample "
                f"<input type='number' name='index' id='index' min='0' max='{n - 1}' value='0'>"
                "<button type='submit' id='submit'>predict</button></form>")
    return P.layout("try it", f"<h1>Try it</h1>{pick}{form}")


def _try_sample_page(state: _State, run: str, seed: int | None, split: str, index: int) -> str:
    file, seed = state.checkpoint(run, seed)
    predictor = state.cache.predictor(file)
    part, one = _sample_split(state, file, split, index)
    result = predict_with_contributions(predictor, {}, split=one)
    body = (f"<h1>Try it: {P.esc(run)}, seed {seed}</h1><p>{P.esc(split)} sample {index}: id "
            f"<code>{P.esc(part.ids[index])}</code></p>"
            + P.prediction_block(result, _label_text(part, index, predictor.info))
            + f"<p><a href='{P.url('/try', run=run, seed=seed)}'>another</a></p>")
    return P.layout("try it", body)


def _media_result_page(result: dict[str, Any]) -> str:
    timings = P.table(["stage", "seconds"], [(k, f"{v:.3f}") for k, v in result["timings"].items()],
                      ident="timings")
    status = P.table(["clip", "status", *result["lengths"]],
                     [(result["media"], result["status"], *result["lengths"].values())], ident="status")
    extractors = P.table(["modality", "extractor"], list(result["extractors"].items()), left=2)
    notes = "".join(f"<p class='note'>{P.esc(n)}</p>" for n in result.get("notes", []))
    body = (f"<h1>Try it: {P.esc(result['run'])}, seed {result['seed']}</h1><p>transcript: "
            f"<i>{P.esc(result['transcript'])}</i></p>" + P.prediction_block(result)
            + "<h3>Extraction</h3>" + status + notes + extractors + "<h3>Time per stage</h3>" + timings
            + f"<p><a href='{P.url('/try', run=result['run'])}'>another clip</a></p>")
    return P.layout("try it", body)
