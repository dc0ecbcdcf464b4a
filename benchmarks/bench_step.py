"""Benchmark: one DecAlign training step and inference at each preset's real shapes.

For every preset (MOSI, MOSEI, CH-SIMS, IEMOCAP; random inputs of the benchmark's widths and
sequence lengths, the preset's batch size) it measures, in a fresh subprocess per preset and
thread count:

* training samples/s (forward, the full objective of ``decalign.losses``, backward, gradient
  clipping and ``Adam(weight_decay)`` as the engine does) and inference samples/s (eval mode,
  ``torch.inference_mode``);
* peak memory: on CPU the growth of the resident set (``ru_maxrss``) over the size before the
  first step, for inference and then training; on CUDA ``max_memory_allocated``;
* GFLOP per training step (forward + backward) and per inference forward, counted with
  ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions and attention);
* the machine's fp32 matmul rate in the same process: matmuls of the step's own sizes
  (``[B*T, D] x [D, d]``, ``[B*T, d] x [d, 4d]``, ...), the best sustained rate over them; the
  achieved GFLOP/s of the step is reported as a fraction of it (the number to compare across
  machines);
* the time of each part of the training step: forward of the temporal projection, decoupling
  (encoders and loss), GMM + OT (heterogeneity), moments + MMD (homogeneity), fusion
  (cross-modal transformers), head and objective, then backward and the optimizer;
* the alignment losses alone (GMM EM + multi-marginal OT + local term, moments + MMD), forward +
  backward, for batch 32 to 512, with their time per sample and their share of the step.

Timings are medians over ``--repeat`` runs after warm-up; the minimum is kept too. With one
thread the CPU time of the process is recorded beside the wall time: on a shared machine it is
the steadier of the two. The load average before and after each preset is recorded so a noisy
run shows.

    python benchmarks/bench_step.py                       # all presets, 1 thread
    python benchmarks/bench_step.py --threads 1 2 --repeat 20
    python benchmarks/bench_step.py --presets mosi --quick
    python benchmarks/bench_step.py --presets mosi --compile   # torch.compile of the layers
    python benchmarks/bench_step.py --straightforward           # custom CPU kernels off
    python benchmarks/bench_step.py --ab                        # both, interleaved: speed-up
    python benchmarks/bench_step.py --tune-allocator            # glibc keeps freed memory
    python benchmarks/bench_step.py --presets mosei_unaligned --batch 16 --no-scaling
    python benchmarks/bench_step.py --reference                 # and the released layout's step
    python benchmarks/bench_step.py --device cuda --amp         # bf16 autocast, as train.amp

Results go to ``benchmarks/results/step.json`` (``--output`` to change; ``--merge`` adds to it, so a
long benchmark can be run one preset at a time).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Shapes:
    """Input widths and padded lengths of a benchmark's data (``docs/method.md`` §12)."""

    dims: dict[str, int]
    lengths: dict[str, int]
    num_outputs: int
    note: str


SHAPES: dict[str, Shapes] = {
    "mosi": Shapes({"text": 768, "audio": 5, "vision": 20}, {"text": 50, "audio": 50, "vision": 50}, 1,
                   "aligned 50/50/50"),
    "mosei": Shapes({"text": 768, "audio": 74, "vision": 35}, {"text": 50, "audio": 50, "vision": 50}, 1,
                    "aligned 50/50/50"),
    "mosei_unaligned": Shapes({"text": 768, "audio": 74, "vision": 35}, {"text": 50, "audio": 500, "vision": 500},
                              1, "unaligned 50/500/500"),
    "sims": Shapes({"text": 768, "audio": 33, "vision": 709}, {"text": 39, "audio": 400, "vision": 55}, 1,
                   "unaligned 39/400/55"),
    "iemocap": Shapes({"text": 1024, "audio": 512, "vision": 1024}, {"text": 1, "audio": 1, "vision": 1}, 6,
                      "utterance-level 1/1/1, 6 classes"),
}
DEFAULT_PRESETS = ("mosi", "mosei", "sims", "iemocap")
SCALING_BATCHES = (32, 64, 128, 256, 512)


# --------------------------------------------------------------------------------------------
# timing helpers


def _clock_pair() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def measure(fn: Callable[[], Any], repeat: int, warmup: int = 2) -> dict[str, float]:
    """Median and minimum wall and CPU seconds of ``fn`` over ``repeat`` runs after ``warmup``."""
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = _clock_pair()
        fn()
        w1, c1 = _clock_pair()
        walls.append(w1 - w0)
        cpus.append(c1 - c0)
    return {
        "wall_s": statistics.median(walls),
        "wall_min_s": min(walls),
        "cpu_s": statistics.median(cpus),
    }


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int, warmup: int = 2) -> dict[str, dict[str, float]]:
    """Like :func:`measure` for several functions, run round-robin so that a change in the
    machine's load hits all of them alike (their ratios are what the benchmark reports)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    walls: dict[str, list[float]] = {k: [] for k in fns}
    cpus: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            w0, c0 = _clock_pair()
            fn()
            w1, c1 = _clock_pair()
            walls[name].append(w1 - w0)
            cpus[name].append(c1 - c0)
    return {
        k: {"wall_s": statistics.median(walls[k]), "wall_min_s": min(walls[k]), "cpu_s": statistics.median(cpus[k])}
        for k in fns
    }


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_bytes() -> int:
    """Current resident set size (Linux), else the peak so far."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return _maxrss_bytes()


def _maxrss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


# --------------------------------------------------------------------------------------------
# the step


class Bench:
    """A model of one preset with its inputs, optimizer and training step."""

    def __init__(self, preset: str, batch: int | None, device: Any, compile_model: bool, seed: int = 0,
                 amp: bool = False) -> None:
        import torch

        from decalign.config.presets import get_preset

        shape_key = preset
        preset_name = "mosei" if preset == "mosei_unaligned" else preset
        self.shapes = SHAPES[shape_key]
        self.config = get_preset(preset_name)
        self.batch = batch or self.config.train.batch_size
        self.device = device
        self.amp = amp
        torch.manual_seed(seed)
        from decalign.model import DecAlign

        self.model = DecAlign(self.config.model, self.shapes.dims, self.shapes.num_outputs,
                              self.shapes.lengths).to(device)
        self.run_model: Any = self.model
        self.compile_wrap_s = 0.0
        if compile_model:
            from decalign.model.compile import maybe_compile

            start = time.perf_counter()
            self.run_model = maybe_compile(self.model, True)
            self.compile_wrap_s = time.perf_counter() - start
        gen = torch.Generator().manual_seed(seed + 1)
        self.features = {
            m: torch.randn(self.batch, self.shapes.lengths[m], d, generator=gen).to(device)
            for m, d in self.shapes.dims.items()
        }
        if self.shapes.num_outputs == 1:
            self.labels = (torch.rand(self.batch, generator=gen) * 6 - 3).to(device)
        else:
            self.labels = torch.randint(0, self.shapes.num_outputs, (self.batch,), generator=gen).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.train.lr,
                                          weight_decay=self.config.train.weight_decay)
        self.params = [p for p in self.model.parameters() if p.requires_grad]

    def loss(self, output: Any) -> Any:
        from decalign.losses import objective

        return objective(output, self.labels, self.config.objective)[0]

    def autocast(self) -> Any:
        """The engine's own context for ``train.amp`` (bf16 autocast on CUDA, else nothing), so
        the benchmark times exactly what a run does."""
        from decalign.train.loop import autocast

        return autocast(self.device, self.amp)

    def forward_loss(self) -> Any:
        self.run_model.train()
        with self.autocast():
            return self.loss(self.run_model(self.features))

    def backward_update(self, loss: Any) -> None:
        import torch

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.train.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.train.grad_clip)
        self.optimizer.step()

    def train_step(self) -> None:
        self.backward_update(self.forward_loss())
        _sync(self.device)

    def infer(self) -> None:
        import torch

        self.run_model.eval()
        with torch.inference_mode(), self.autocast():
            self.run_model(self.features)
        _sync(self.device)


class ReferenceStep:
    """The same step on ``decalign.testing.reference``: a plain re-implementation of the
    authors' released forward pass (their module layout, sequence-first tensors, Python loops over
    modalities and pairs, ``nn.MultiheadAttention``, the kernel-domain Sinkhorn), checked against
    our model to 1e-5 by ``tests/model/test_model_reference.py``. It stands in for the authors' step:
    same inputs, the same weighted loss terms (the contrastive term, which needs the fused
    representation the reference does not return, is left out: one batch-by-batch similarity
    matrix, which makes the reference's step slightly cheaper than the authors'), the same
    clipping and Adam, always in float32."""

    def __init__(self, bench: Bench) -> None:
        import torch

        from decalign.testing.reference import ReferenceDecAlign

        self.bench = bench
        torch.manual_seed(0)
        self.model = ReferenceDecAlign(bench.config.model, bench.shapes.dims, bench.shapes.num_outputs).to(bench.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=bench.config.train.lr,
                                          weight_decay=bench.config.train.weight_decay)

    def _forward(self) -> Any:
        f = self.bench.features
        return self.model(f["text"], f["audio"], f["vision"])

    def train_step(self) -> None:
        import torch
        import torch.nn.functional as F

        obj = self.bench.config.objective
        self.model.train()
        out = self._forward()
        labels = self.bench.labels
        pred = out["prediction"]
        task = F.cross_entropy(pred, labels) if pred.shape[-1] > 1 else F.mse_loss(pred.flatten(), labels)
        loss = (task + obj.w_dec * out["decoupling"] + obj.alpha * out["heterogeneity"]
                + obj.beta * out["homogeneity"])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.bench.config.train.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.bench.config.train.grad_clip)
        self.optimizer.step()
        _sync(self.bench.device)

    def infer(self) -> None:
        import torch

        self.model.eval()
        with torch.inference_mode():
            self._forward()
        _sync(self.bench.device)


def count_flops(bench: Bench) -> dict[str, float]:
    """GFLOP of one training forward + backward and of one inference forward.

    Counted with the custom kernels on when they exist: ``FlopCounterMode`` has no formula for
    the CPU flash-attention kernels that the straightforward path uses, and the FLOPs are a
    property of the maths, not of the kernels.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with _fast_kernels(True), FlopCounterMode(display=False) as counter:
        loss = bench.forward_loss()
        loss.backward()
    train = counter.get_total_flops()
    bench.optimizer.zero_grad(set_to_none=True)
    bench.run_model.eval()
    with _fast_kernels(True), FlopCounterMode(display=False) as counter, torch.inference_mode():
        bench.run_model(bench.features)
    return {"train_gflop": train / 1e9, "infer_gflop": counter.get_total_flops() / 1e9}


@contextlib.contextmanager
def _fast_kernels(enabled: bool) -> Iterator[None]:
    """Switch :mod:`decalign.model.kernels` on or off (no-op for a version without it)."""
    try:
        from decalign.model.kernels import set_fast_kernels
    except ImportError:
        yield
        return
    previous = set_fast_kernels(enabled)
    try:
        yield
    finally:
        set_fast_kernels(previous)


def _with_kernels(fn: Callable[[], None], enabled: bool) -> Callable[[], None]:
    def run() -> None:
        with _fast_kernels(enabled):
            fn()

    return run


def matmul_sizes(bench: Bench) -> list[tuple[int, int, int]]:
    """(rows, inner, cols) of the step's main matmuls."""
    cfg = bench.config.model
    d = cfg.d_model
    b = bench.batch
    sizes = []
    for m, width in bench.shapes.dims.items():
        steps = max(1, bench.shapes.lengths[m] - cfg.kernel_for(m) + 1)
        if width != d:
            sizes.append((b * steps, width * cfg.kernel_for(m), d))
    t = max(1, min(bench.shapes.lengths.values()) - cfg.kernel_for("text") + 1)
    rows = b * max(t, 8)
    sizes += [(rows, d, 4 * d), (rows, 4 * d, d), (2 * rows, d, d)]
    return sorted(set(sizes))


class MatmulProbe:
    """fp32 matmuls of the step's own sizes (``torch.mm`` into preallocated outputs).

    Each call of :meth:`run` times every size a few times and records its GFLOP/s; the machine's
    rate is the best size's median over the calls (:meth:`summary`). The benchmark calls it
    between training steps so both see the same machine load.
    """

    def __init__(self, bench: Bench, inner_reps: int = 4) -> None:
        import torch

        self.device = bench.device
        self.inner_reps = inner_reps
        self.cases = []
        for rows, inner, cols in matmul_sizes(bench):
            a = torch.randn(rows, inner, device=bench.device)
            w = torch.randn(inner, cols, device=bench.device)
            self.cases.append(((rows, inner, cols), a, w, torch.empty(rows, cols, device=bench.device)))
        self.rates: dict[tuple[int, int, int], list[float]] = {c[0]: [] for c in self.cases}

    def run(self) -> None:
        import torch

        for shape, a, w, out in self.cases:
            torch.mm(a, w, out=out)
            _sync(self.device)
            times = []
            for _ in range(self.inner_reps):
                start = time.perf_counter()
                torch.mm(a, w, out=out)
                _sync(self.device)
                times.append(time.perf_counter() - start)
            self.rates[shape].append(2.0 * shape[0] * shape[1] * shape[2] / min(times) / 1e9)

    def summary(self) -> dict[str, Any]:
        per_size = [{"shape": list(k), "gflops": statistics.median(v)} for k, v in self.rates.items() if v]
        best = max(per_size, key=lambda r: r["gflops"])
        return {"gflops": best["gflops"], "best_shape": best["shape"], "per_size": per_size}


# --------------------------------------------------------------------------------------------
# parts of the step


PARTS = {  # submodule of DecAlign -> part name in the report
    "projection": "projection",
    "decoupler": "decoupling",
    "heterogeneity": "gmm_ot",
    "homogeneity": "moments_mmd",
    "fusion": "fusion",
    "head": "head",
}


@contextlib.contextmanager
def timed_parts(bench: Bench, totals: dict[str, float]) -> Iterator[None]:
    """Accumulate the forward wall time of each part of the model into ``totals`` while active.

    Forward pre/post hooks on the submodules, plus wrappers around the per-modality decoupler
    (``Decoupler.one``, used for unaligned inputs) and the decoupling loss, which are plain calls.
    """
    import decalign.model.decalign as decalign_module

    model = bench.model
    starts: dict[str, float] = {}
    handles = []

    def pre(label: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            _sync(bench.device)
            starts[label] = time.perf_counter()

        return hook

    def post(label: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            _sync(bench.device)
            totals[label] = totals.get(label, 0.0) + time.perf_counter() - starts.pop(label)

        return hook

    def timed(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            _sync(bench.device)
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            _sync(bench.device)
            totals[label] = totals.get(label, 0.0) + time.perf_counter() - start
            return out

        return call

    for name, label in PARTS.items():
        module = getattr(model, name)
        handles.append(module.register_forward_pre_hook(pre(label)))
        handles.append(module.register_forward_hook(post(label)))
    original_one, original_loss = model.decoupler.one, decalign_module.decoupling_loss
    model.decoupler.one = timed("decoupling", original_one)  # type: ignore[method-assign]
    decalign_module.decoupling_loss = timed("decoupling", original_loss)
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        del model.decoupler.one
        decalign_module.decoupling_loss = original_loss


def part_timings(bench: Bench, repeat: int) -> dict[str, float]:
    """Milliseconds per training step of each part's forward, of the rest of the forward
    (pooling, glue, the objective), of the backward and of clipping + the optimizer, measured
    inside real training steps (medians of the per-step split; parts: means)."""
    import torch

    if bench.run_model is not bench.model:
        return {}  # a compiled whole model runs no submodule hooks
    totals: dict[str, float] = {}
    fwd, bwd, opt = [], [], []
    for i in range(repeat + 2):
        if i == 2:
            totals.clear()
        with timed_parts(bench, totals):
            w0 = time.perf_counter()
            loss = bench.forward_loss()
            _sync(bench.device)
            w1 = time.perf_counter()
        bench.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _sync(bench.device)
        w2 = time.perf_counter()
        if bench.config.train.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(bench.params, bench.config.train.grad_clip)
        bench.optimizer.step()
        _sync(bench.device)
        w3 = time.perf_counter()
        if i >= 2:
            fwd.append(w1 - w0)
            bwd.append(w2 - w1)
            opt.append(w3 - w2)
    out = {label: totals.get(label, 0.0) / repeat * 1e3 for label in PARTS.values()}
    forward_total = sum(fwd) / repeat * 1e3
    out["forward_other"] = forward_total - sum(out.values())
    out["forward_total"] = forward_total
    out["backward"] = statistics.median(bwd) * 1e3
    out["clip_and_optimizer"] = statistics.median(opt) * 1e3
    return out


def attention_ceiling(bench: Bench, rate_gflops: float, flops: dict[str, float], repeat: int) -> dict[str, float]:
    """How fast the step could be if everything but attention ran at the matmul rate.

    Records the attention calls of one training step (shapes, dropout), replays them alone
    (forward + backward, and forward only without dropout as in inference) and combines their
    time with the remaining FLOPs at ``rate_gflops``. With 4-12 dimensions per head, the
    attention matmuls (inner dimension = head width) and the softmax over the score matrix cannot
    approach the matmul rate; this bounds the fraction any implementation built on these
    kernels can reach.
    """
    import torch

    import decalign.model.transformer as transformer_module

    if not hasattr(transformer_module, "attention"):
        return {}
    calls: list[dict[str, Any]] = []
    original = transformer_module.attention

    def record(q: Any, k: Any, v: Any, **kwargs: Any) -> Any:
        calls.append({"q": tuple(q.shape), "k": tuple(k.shape), "kwargs": kwargs})
        return original(q, k, v, **kwargs)

    transformer_module.attention = record
    try:
        bench.forward_loss()
    finally:
        transformer_module.attention = original
    tensors = []
    attn_train_flop = attn_infer_flop = 0.0
    for call in calls:
        *lead, t_q, e = call["q"]
        t_k = call["k"][-2]
        n = 1
        for x in lead:
            n *= x
        q = torch.randn(call["q"], device=bench.device, requires_grad=True)
        k = torch.randn(call["k"], device=bench.device, requires_grad=True)
        v = torch.randn(call["k"], device=bench.device, requires_grad=True)
        tensors.append((q, k, v, call["kwargs"]))
        attn_infer_flop += 4.0 * n * t_q * t_k * e
        attn_train_flop += 12.0 * n * t_q * t_k * e

    def train() -> None:
        for q, k, v, kwargs in tensors:
            original(q, k, v, **kwargs).sum().backward()
        _sync(bench.device)

    def infer() -> None:
        with torch.inference_mode():
            for q, k, v, kwargs in tensors:
                original(q, k, v, **{**kwargs, "dropout_p": 0.0})
        _sync(bench.device)

    timed = interleaved({"train": train, "infer": infer}, repeat)
    out: dict[str, float] = {"attention_calls": float(len(calls))}
    for kind in ("train", "infer"):
        attn_s = timed[kind]["wall_s"]
        attn_flop = attn_train_flop if kind == "train" else attn_infer_flop
        total = flops[f"{kind}_gflop"] * 1e9
        ideal_s = attn_s + max(total - attn_flop, 0.0) / (rate_gflops * 1e9)
        out[f"{kind}_attention_ms"] = attn_s * 1e3
        out[f"{kind}_attention_gflop"] = attn_flop / 1e9
        out[f"{kind}_attention_gflops"] = attn_flop / attn_s / 1e9
        out[f"{kind}_ceiling_ms"] = ideal_s * 1e3
        out[f"{kind}_ceiling_fraction"] = total / ideal_s / (rate_gflops * 1e9)
    return out


def _pooled_features(bench: Bench) -> tuple[Any, Any]:
    """The pooled unique and common features ``[M, B, d]`` the alignment losses get in training."""
    seen: dict[str, Any] = {}
    handles = [
        bench.model.heterogeneity.register_forward_pre_hook(lambda _m, a: seen.__setitem__("unique", a[0])),
        bench.model.homogeneity.register_forward_pre_hook(lambda _m, a: seen.__setitem__("common", a[0])),
    ]
    try:
        bench.forward_loss()
    finally:
        for h in handles:
            h.remove()
    return seen["unique"].detach(), seen["common"].detach()


def alignment_scaling(bench: Bench, repeat: int, batches: tuple[int, ...]) -> list[dict[str, float]]:
    """Forward + backward time of the alignment losses alone, on pooled features like the model's.

    The features of one training forward (the preset's batch) are resampled to each batch size
    (rows drawn with replacement, plus noise of a tenth of each feature's spread), so the EM and
    Sinkhorn see data of the model's scale and structure, not unit Gaussians.
    """
    import torch

    model = bench.model
    model.train()
    index = list(range(len(model.modalities)))
    unique0, common0 = _pooled_features(bench)
    rows = []
    for batch in batches:
        gen = torch.Generator(device=unique0.device).manual_seed(batch)

        def resample(x: Any, g: Any = gen, b: int = batch) -> Any:
            pick = torch.randint(0, x.shape[1], (b,), generator=g, device=x.device)
            noise = torch.randn(x.shape[0], b, x.shape[2], generator=g, device=x.device)
            return (x[:, pick] + 0.1 * x.std(1, keepdim=True) * noise).requires_grad_()

        unique, common = resample(unique0), resample(common0)

        def hetero(u: Any = unique) -> None:
            model.heterogeneity(u).loss.backward()
            _sync(bench.device)

        def homo(c: Any = common) -> None:
            model.homogeneity(c, index).loss.backward()
            _sync(bench.device)

        timed = interleaved({"hetero": hetero, "homo": homo}, repeat)
        h, m = timed["hetero"], timed["homo"]
        total = h["wall_s"] + m["wall_s"]
        rows.append({
            "batch": batch,
            "gmm_ot_local_ms": h["wall_s"] * 1e3,
            "moments_mmd_ms": m["wall_s"] * 1e3,
            "total_ms": total * 1e3,
            "us_per_sample": total / batch * 1e6,
            "total_cpu_ms": (h["cpu_s"] + m["cpu_s"]) * 1e3,
        })
    return rows


# --------------------------------------------------------------------------------------------
# one preset (child process)


def run_preset(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    if args.straightforward:
        try:
            from decalign.model.kernels import set_fast_kernels

            set_fast_kernels(False)
        except ImportError:
            pass
    allocator_tuned = False
    if args.tune_allocator:
        from decalign.model.compile import tune_cpu_allocator

        allocator_tuned = tune_cpu_allocator()
    device = torch.device(args.device)
    load_before = os.getloadavg()
    bench = Bench(args.preset, args.batch, device, args.compile, amp=args.amp)
    repeat = args.repeat
    result: dict[str, Any] = {
        "preset": args.preset,
        "shapes": SHAPES[args.preset].note,
        "batch": bench.batch,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "amp": args.amp,
        "parameters": sum(p.numel() for p in bench.model.parameters()),
        "compile": args.compile,
        "straightforward": args.straightforward,
        "allocator_tuned": allocator_tuned,
    }
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss0 = _rss_bytes()
    # first calls: compilation (if any) and allocator warm-up, timed on their own
    w0 = time.perf_counter()
    bench.infer()
    result["first_infer_s"] = time.perf_counter() - w0
    infer_only = measure(bench.infer, 2, warmup=1)
    peak_infer = _maxrss_bytes() - rss0
    if device.type == "cuda":
        peak_infer = torch.cuda.max_memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    w0 = time.perf_counter()
    bench.train_step()
    result["first_train_step_s"] = time.perf_counter() - w0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        bench.train_step()
    result["train_page_faults_per_step"] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / 3
    peak_train = _maxrss_bytes() - rss0
    if device.type == "cuda":
        peak_train = torch.cuda.max_memory_allocated(device)
    probe = MatmulProbe(bench)
    fns: dict[str, Callable[[], Any]] = {"train": bench.train_step, "infer": bench.infer, "matmul": probe.run}
    if args.ab:  # the same model with the custom kernels off, interleaved step by step
        fns["train_straightforward"] = _with_kernels(bench.train_step, False)
        fns["infer_straightforward"] = _with_kernels(bench.infer, False)
        fns["train"], fns["infer"] = _with_kernels(bench.train_step, True), _with_kernels(bench.infer, True)
    if args.reference:  # the released code's step, re-implemented, interleaved step by step
        reference = ReferenceStep(bench)
        fns["train_reference"], fns["infer_reference"] = reference.train_step, reference.infer
    timed = interleaved(fns, repeat, warmup=1)
    train, infer = timed["train"], timed["infer"]
    rate = probe.summary()
    flops = count_flops(bench)
    train_s, infer_s = train["wall_s"], infer["wall_s"]
    result.update({
        "train_ms": train_s * 1e3,
        "train_min_ms": train["wall_min_s"] * 1e3,
        "train_cpu_ms": train["cpu_s"] * 1e3,
        "train_samples_per_s": bench.batch / train_s,
        "infer_ms": infer_s * 1e3,
        "infer_min_ms": infer["wall_min_s"] * 1e3,
        "infer_cpu_ms": infer["cpu_s"] * 1e3,
        "infer_samples_per_s": bench.batch / infer_s,
        "infer_first_runs_ms": infer_only["wall_s"] * 1e3,
        "peak_memory_train_mib": peak_train / 2**20,
        "peak_memory_infer_mib": peak_infer / 2**20,
        "memory_measure": (
            "cuda max_memory_allocated" if device.type == "cuda" else "RSS growth (ru_maxrss - RSS before)"
        ),
        **flops,
        "matmul_gflops": rate["gflops"],
        "matmul_best_shape": rate["best_shape"],
        "matmul_per_size": rate["per_size"],
    })
    if args.ab:
        for kind in ("train", "infer"):
            other = timed[f"{kind}_straightforward"]
            result[f"{kind}_straightforward_ms"] = other["wall_s"] * 1e3
            result[f"{kind}_straightforward_cpu_ms"] = other["cpu_s"] * 1e3
            result[f"{kind}_speedup"] = other["wall_s"] / timed[kind]["wall_s"]
            result[f"{kind}_speedup_cpu"] = other["cpu_s"] / timed[kind]["cpu_s"]
            result[f"{kind}_straightforward_fraction_of_matmul"] = (
                flops[f"{kind}_gflop"] / other["wall_s"] / rate["gflops"])
    if args.reference:
        for kind in ("train", "infer"):
            other = timed[f"{kind}_reference"]
            result[f"{kind}_reference_ms"] = other["wall_s"] * 1e3
            result[f"{kind}_reference_speedup"] = other["wall_s"] / timed[kind]["wall_s"]
    result["train_gflops"] = flops["train_gflop"] / train_s
    result["train_fraction_of_matmul"] = result["train_gflops"] / rate["gflops"]
    result["infer_gflops"] = flops["infer_gflop"] / infer_s
    result["infer_fraction_of_matmul"] = result["infer_gflops"] / rate["gflops"]
    if not args.no_parts:
        result["parts_ms"] = part_timings(bench, repeat)
        result["ceiling"] = attention_ceiling(bench, rate["gflops"], flops, repeat)
    if not args.no_scaling:
        batches = tuple(b for b in SCALING_BATCHES if b <= args.max_scaling_batch)
        rows = alignment_scaling(bench, max(3, repeat // 2), batches)
        for row in rows:
            if row["batch"] == bench.batch:
                row["share_of_step"] = row["total_ms"] / result["train_ms"]
        result["alignment_scaling"] = rows
        at_32 = next((r for r in rows if r["batch"] == 32), None)
        if at_32 is not None and bench.batch == 32:
            result["alignment_share_at_32"] = at_32["total_ms"] / result["train_ms"]
    result["loadavg_before"] = list(load_before)
    result["loadavg_after"] = list(os.getloadavg())
    return result


# --------------------------------------------------------------------------------------------
# driver


def _metadata() -> dict[str, Any]:
    import torch

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    commit = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
    return {
        "command": "python " + " ".join([os.path.relpath(sys.argv[0]), *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "git_commit": commit,
        "decalign_path": _package_path(),
    }


def _package_path() -> str:
    """Where the measured decalign came from: relative to the repository when it is this
    checkout's ``src/`` (so recorded results name no machine-specific path), else absolute."""
    path = Path(__import__("decalign").__file__).resolve().parent
    try:
        return str(path.relative_to(HERE.parent))
    except ValueError:
        return str(path)


def _child_command(args: argparse.Namespace, preset: str, threads: int) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--preset", preset, "--threads", str(threads),
           "--repeat", str(args.repeat), "--device", args.device, "--max-scaling-batch", str(args.max_scaling_batch)]
    if args.batch:
        cmd += ["--batch", str(args.batch)]
    for flag in ("ab", "compile", "straightforward", "tune_allocator", "no_parts", "no_scaling", "amp", "reference"):
        if getattr(args, flag):
            cmd.append("--" + flag.replace("_", "-"))
    return cmd


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(results: list[dict[str, Any]]) -> None:
    head = (f"{'preset':16s} {'thr':>3s} {'batch':>5s} {'train ms':>9s} {'train/s':>8s} {'infer ms':>9s} "
            f"{'infer/s':>8s} {'GFLOP':>6s} {'GFLOP/s':>8s} {'matmul':>7s} {'frac':>5s} {'mem MiB':>8s} {'align%':>6s}")
    print(head)
    print("-" * len(head))
    for r in results:
        share = r.get("alignment_share_at_32")
        print(f"{r['preset']:16s} {r['threads']:3d} {r['batch']:5d} {r['train_ms']:9.1f} "
              f"{r['train_samples_per_s']:8.1f} "
              f"{r['infer_ms']:9.1f} {r['infer_samples_per_s']:8.1f} {r['train_gflop']:6.2f} {r['train_gflops']:8.1f} "
              f"{r['matmul_gflops']:7.1f} {r['train_fraction_of_matmul']:5.2f} {r['peak_memory_train_mib']:8.1f} "
              f"{_fmt(None if share is None else 100 * share, '6.1f')}")
    for r in results:
        if "train_speedup" in r:
            print(f"{r['preset']} ({r['threads']} thr) straightforward path: "
                  f"train {r['train_straightforward_ms']:.1f} ms "
                  f"(fraction {r['train_straightforward_fraction_of_matmul']:.2f}), "
                  f"infer {r['infer_straightforward_ms']:.1f} ms; "
                  f"speed-up train {r['train_speedup']:.2f}x (CPU time {r['train_speedup_cpu']:.2f}x), "
                  f"infer {r['infer_speedup']:.2f}x (CPU time {r['infer_speedup_cpu']:.2f}x)")
    for r in results:
        if "train_reference_speedup" in r:
            print(f"{r['preset']} ({r['threads']} thr) reference (released layout): "
                  f"train {r['train_reference_ms']:.1f} ms, infer {r['infer_reference_ms']:.1f} ms; "
                  f"decalign is {r['train_reference_speedup']:.2f}x faster to train, "
                  f"{r['infer_reference_speedup']:.2f}x to infer")
    for r in results:
        if "parts_ms" in r:
            parts = ", ".join(f"{k} {v:.1f}" for k, v in r["parts_ms"].items())
            print(f"\n{r['preset']} ({r['threads']} thr) parts, ms: {parts}")
        c = r.get("ceiling")
        if c:
            print(f"{r['preset']} ({r['threads']} thr) attention alone: train {c['train_attention_ms']:.1f} ms for "
                  f"{c['train_attention_gflop']:.2f} GFLOP ({c['train_attention_gflops']:.1f} GFLOP/s); "
                  "with everything "
                  f"else at the matmul rate the step would take {c['train_ceiling_ms']:.1f} ms = fraction "
                  f"{c['train_ceiling_fraction']:.2f} (inference: {c['infer_ceiling_fraction']:.2f})")
        if "alignment_scaling" in r:
            rows = "; ".join(f"B={x['batch']}: {x['total_ms']:.1f} ms ({x['us_per_sample']:.0f} us/sample)"
                             for x in r["alignment_scaling"])
            print(f"{r['preset']} ({r['threads']} thr) alignment losses fwd+bwd: {rows}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS), choices=sorted(SHAPES),
                        help="presets to run (mosei_unaligned: MOSEI at 50/500/500; at its batch of 128 the "
                             "saved attention probabilities and masks need > 24 GB, so pass --batch 16)")
    parser.add_argument("--threads", nargs="+", type=int, default=[1], help="torch thread counts to run")
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per measurement (median)")
    parser.add_argument("--batch", type=int, default=None, help="override the presets' batch size")
    parser.add_argument("--quick", action="store_true", help="3 repeats, scaling up to batch 128")
    parser.add_argument("--compile", action="store_true", help="torch.compile the transformer layers")
    parser.add_argument("--ab", action="store_true",
                        help="also time the straightforward path (kernels off), interleaved step by step")
    parser.add_argument("--tune-allocator", action="store_true",
                        help="decalign.model.compile.tune_cpu_allocator() in each benchmark process")
    parser.add_argument("--straightforward", action="store_true",
                        help="custom CPU kernels off (F.dropout, scaled_dot_product_attention)")
    parser.add_argument("--no-parts", action="store_true", help="skip the per-part timings")
    parser.add_argument("--no-scaling", action="store_true", help="skip the alignment-loss scaling")
    parser.add_argument("--max-scaling-batch", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true",
                        help="bf16 autocast around forward and loss, as train.amp (needs --device cuda)")
    parser.add_argument("--reference", action="store_true",
                        help="also time the reference re-implementation of the released model "
                             "(decalign.testing.reference), interleaved step by step")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "step.json")
    parser.add_argument("--merge", action="store_true",
                        help="add to the results already in --output (replacing the same preset and settings)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--preset", default="mosi", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.amp and not args.device.startswith("cuda"):
        parser.error("--amp needs --device cuda: train.amp has no effect on other devices")
    if args.quick:
        args.repeat = min(args.repeat, 3)
        args.max_scaling_batch = min(args.max_scaling_batch, 128)
    if args.child:
        args.threads = args.threads[0]
        print(json.dumps(run_preset(args)))
        return 0
    results = []
    env = {**os.environ}
    for threads in args.threads:
        env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
        for preset in args.presets:
            proc = subprocess.run(_child_command(args, preset, threads), capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                raise SystemExit(f"benchmark of {preset} with {threads} thread(s) failed")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"done: {preset}, {threads} thread(s)", file=sys.stderr)
    print_table(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    meta = _metadata()
    if args.merge and args.output.exists():  # keep other presets/thread counts from earlier runs
        previous = json.loads(args.output.read_text())
        key = lambda r: (r["preset"], r["threads"], r.get("compile"), r.get("straightforward"),  # noqa: E731
                         r.get("allocator_tuned"), r.get("device", "cpu"), r.get("amp", False))
        fresh = {key(r) for r in results}
        results = [r for r in previous.get("results", []) if key(r) not in fresh] + results
        meta["commands"] = [*previous.get("meta", {}).get("commands", []), meta["command"]]
    else:
        meta["commands"] = [meta["command"]]
    args.output.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
