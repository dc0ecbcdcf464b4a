"""Data-parallel training (DDP, gloo on CPU): one step equals the single-process step on the same
global batch; a ``torchrun`` run evaluates every sample exactly once, and a killed run resumes to
exactly the result of one that ran straight through."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from decalign.testing.crash import kill_when_saved
from decalign.train.distributed import Context, chunk_sizes

pytestmark = pytest.mark.slow

TINY = [
    "model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8",
    "train.num_threads=1", "train.device=cpu",
]
NO_DROPOUT = [
    "model.fusion.attn_dropout=0.0", "model.fusion.relu_dropout=0.0", "model.fusion.embed_dropout=0.0",
    "model.fusion.res_dropout=0.0", "model.text_dropout=0.0", "model.output_dropout=0.0",
]
STEP_N = 23  # one global batch, split 12 / 11 over two processes


def test_chunk_sizes_match_tensor_split() -> None:
    for n in range(0, 12):
        for world in (1, 2, 3, 5):
            expected = [len(c) for c in torch.arange(n).tensor_split(world)]
            assert chunk_sizes(n, world) == expected


def test_single_context_is_the_identity() -> None:
    ctx = Context.single()
    index = torch.tensor([3, 0, 2, 1])
    assert ctx.feature_gather is None and ctx.is_main
    assert torch.equal(ctx.shard(index), index) and ctx.loss_scale(4, 4) == 1.0
    assert torch.equal(ctx.gather_predictions(torch.tensor([30.0, 0.0, 20.0, 10.0]), index, 4),
                       torch.tensor([0.0, 10.0, 20.0, 30.0]))


# -- one step: DDP (world 2) against one process ---------------------------------------------------


def _step_setup(gather: bool) -> tuple[Any, Any]:
    from decalign.api import prepare, resolve_config
    from decalign.config import DataConfig, SyntheticConfig
    from decalign.data import load_dataset

    dataset = load_dataset(None, DataConfig(dataset="synthetic", synthetic=SyntheticConfig(
        n_train=STEP_N, n_valid=4, n_test=4, seq_len=6, dims={"text": 12, "audio": 5, "vision": 7})))
    overrides = [*TINY, *NO_DROPOUT, f"train.batch_size={STEP_N}", "train.grad_clip=null",
                 f"train.gather_alignment={str(gather).lower()}", "model.heterogeneity.num_prototypes=4"]
    config = resolve_config(dataset, None, overrides)
    return config, prepare(config, dataset)


def _subset(split: Any, index: torch.Tensor) -> Any:
    from decalign.train.batches import SplitTensors

    return SplitTensors({m: x[index] for m, x in split.features.items()},
                        {m: v[index] for m, v in split.lengths.items()}, split.labels[index], split.ids[index.numpy()])


def _train_step(ctx: Context, gather: bool, n: int) -> tuple[dict[str, float], list[torch.Tensor]]:
    """One global batch of the first ``n`` training samples through the engine's ``train_epoch``;
    the optimizer has lr 0, so the (DDP-averaged) gradients stay in ``.grad``."""
    from decalign.train.checkpoint import build_model
    from decalign.train.loop import probe_loss, train_epoch
    from decalign.train.seeding import seed_everything

    config, prepared = _step_setup(gather)
    data = _subset(prepared.splits["train"], torch.arange(n))
    seed_everything(5)
    model = build_model(config, prepared.info)
    cpu = torch.device("cpu")
    train_model = ctx.wrap(model, gather_alignment=gather, probe=lambda m: probe_loss(m, data, config, cpu))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    stats = train_epoch(train_model, data, config, optimizer, torch.Generator().manual_seed(9), cpu, ctx,
                        prepared.metric_fn, progress=False)
    grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
    return stats, grads


def _step_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    from decalign.train.distributed import DistributedContext

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    ctx = DistributedContext.initialize(rank, world, torch.device("cpu"))
    results = {
        "gather": _train_step(ctx, True, STEP_N),
        "gather_one_sample": _train_step(ctx, True, 1),  # rank 1 runs a stand-in with weight 0
        "local": _train_step(ctx, False, STEP_N),
        "local_one_sample": _train_step(ctx, False, 1),
    }
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    ctx.close()


def _local_reference(config: Any, prepared: Any) -> tuple[float, list[torch.Tensor]]:
    """Without gathering each process's loss is its own chunk's: the expected step is the
    sample-weighted mean of the single-process losses and gradients of the two chunks."""
    from decalign.losses import objective
    from decalign.train.checkpoint import build_model
    from decalign.train.seeding import seed_everything

    data = _subset(prepared.splits["train"], torch.arange(STEP_N))
    order = torch.randperm(STEP_N, generator=torch.Generator().manual_seed(9))
    seed_everything(5)
    model = build_model(config, prepared.info)
    model.train()
    loss_sum, grads = 0.0, [torch.zeros_like(p) for p in model.parameters()]
    for chunk in order.tensor_split(2):
        batch = data.batch(chunk, torch.device("cpu"))
        loss, _ = objective(model(batch.features, batch.lengths), batch.labels, config.objective)
        weight = len(chunk) / STEP_N
        for g, dg in zip(grads, torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)):
            if dg is not None:
                g += weight * dg
        loss_sum += weight * float(loss.detach())
    return loss_sum, grads


def _ranks_of(ranks: list[dict[str, Any]], key: str) -> list[tuple[dict[str, float], list[torch.Tensor]]]:
    return [r[key] for r in ranks]


def _assert_grads_close(got: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    worst = max(float((a - b).abs().max()) for a, b in zip(got, expected))
    assert worst <= 1e-5, f"largest gradient difference {worst:.3g}"
    assert any(float(g.abs().max()) > 1e-4 for g in expected)  # not trivially zero


def test_ddp_step_equals_single_process_step(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    torch.multiprocessing.spawn(_step_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2,
                                join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]

    # gathering on: loss, every logged term and the gradients equal one process on the global batch
    for key, n in (("gather", STEP_N), ("gather_one_sample", 1)):
        single_stats, single_grads = _train_step(Context.single(), True, n)
        for stats, grads in _ranks_of(ranks, key):
            _assert_grads_close(grads, single_grads)
            for term in ("loss", "task", "decoupling", "heterogeneity", "homogeneity", "contrastive", "mae"):
                assert stats[term] == pytest.approx(single_stats[term], abs=1e-5), (key, term)

    # default (local): each process's alignment statistics over its own chunk, gradients averaged
    config, prepared = _step_setup(False)
    loss, grads = _local_reference(config, prepared)
    for stats, got in _ranks_of(ranks, "local"):
        _assert_grads_close(got, grads)
        assert stats["loss"] == pytest.approx(loss, abs=1e-5)
    single_stats, _ = _train_step(Context.single(), False, STEP_N)
    assert abs(single_stats["heterogeneity"] - ranks[0]["local"][0]["heterogeneity"]) > 1e-6  # really local

    # one sample for two processes: the second runs a stand-in of weight 0, which must not count
    single_stats, single_grads = _train_step(Context.single(), False, 1)
    for stats, got in _ranks_of(ranks, "local_one_sample"):
        _assert_grads_close(got, single_grads)
        assert stats["loss"] == pytest.approx(single_stats["loss"], abs=1e-5)


# -- torchrun end to end ---------------------------------------------------------------------------

N_TEST = 41  # odd: the two processes' evaluation shards differ in size
RUN_ARGS = [
    "--epochs", "2", "--seeds", "3", "--no-tensorboard", "-q",
    "--set", *TINY, "train.batch_size=16", "train.gather_alignment=true", "model.fusion.embed_dropout=0.2",
    "train.early_stop_patience=10", "data.synthetic.n_train=161", "data.synthetic.n_valid=33",
    f"data.synthetic.n_test={N_TEST}",
]


def _torchrun(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "decalign", "train", "--out", str(out), *extra, *RUN_ARGS]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    # the workers' own lines come first and torchrun's summary (about 3000 characters) last: keep both
    err = proc.stderr if len(proc.stderr) <= 8000 else proc.stderr[:3000] + "\n[...]\n" + proc.stderr[-5000:]
    assert proc.returncode == 0, err


def _kill_after_epoch(out: Path, epoch: int) -> None:
    """Start a 2-process run and SIGKILL every process of it (agent and workers, one process
    group) as soon as ``epoch`` is saved, so it dies mid-way through the next epoch."""
    kill_when_saved(_torchrun(out), out / "seed_3" / "state.pt", epoch, env=_env(), poll_s=0.02, whole_group=True)


def _predictions(path: Path) -> dict[str, float]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "a test sample was written twice"
    return {r["id"]: float(r["prediction"]) for r in rows}


def test_torchrun_kill_and_resume_equals_straight_run(tmp_path: Path) -> None:
    from decalign.api import predict_checkpoint

    straight = tmp_path / "straight"
    _run(_torchrun(straight))
    resumed = tmp_path / "resumed"
    _kill_after_epoch(resumed, epoch=1)
    assert not (resumed / "seed_3" / "result.json").exists(), "the run finished before it was killed"
    _run(_torchrun(resumed, "--resume"))

    a = json.loads((straight / "results.json").read_text())["seeds"]["3"]
    b = json.loads((resumed / "results.json").read_text())["seeds"]["3"]
    assert a["epochs_run"] == b["epochs_run"] == 2 and a["best_epoch"] == b["best_epoch"]
    for key, value in a["test"].items():
        assert b["test"][key] == pytest.approx(value, rel=1e-6, abs=1e-7), key
    assert len((straight / "seed_3" / "history.csv").read_text().splitlines()) == 2 * 2 + 2

    # every test sample exactly once, each with its own prediction (as one process predicts it)
    written = _predictions(resumed / "seed_3" / "test_predictions.csv")
    assert len(written) == N_TEST
    single = tmp_path / "single.csv"
    predict_checkpoint(resumed / "seed_3" / "model.safetensors", None, single, device="cpu")
    expected = _predictions_with_split(single)
    assert set(written) == set(expected)
    for sample, value in written.items():
        assert value == pytest.approx(expected[sample], abs=1e-5), sample


def _predictions_with_split(path: Path) -> dict[str, float]:
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test"]
    return {r["id"]: float(r["prediction"]) for r in rows}



@pytest.mark.parametrize("finished", [True, False])
def test_a_finished_job_meets_at_a_barrier_before_leaving_and_a_failed_one_does_not(
        finished: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Leaving the group: after a finished job every process waits for the others first (a worker
    that left while rank 0 still wrote the results was once aborted); after an error no barrier,
    since the others may be inside another collective."""
    import torch.distributed as dist

    from decalign.train.distributed import DistributedContext

    calls: list[str] = []
    real_barrier, real_destroy = dist.barrier, dist.destroy_process_group

    def barrier(*args: Any, **kwargs: Any) -> Any:
        calls.append("barrier")
        return real_barrier(*args, **kwargs)

    def destroy(*args: Any, **kwargs: Any) -> Any:
        calls.append("destroy")
        return real_destroy(*args, **kwargs)

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    ctx = DistributedContext.initialize(0, 1, torch.device("cpu"))
    monkeypatch.setattr(dist, "barrier", barrier)
    monkeypatch.setattr(dist, "destroy_process_group", destroy)
    ctx.close(finished)
    assert calls == (["barrier", "destroy"] if finished else ["destroy"]) and not dist.is_initialized()
    ctx.close(finished)  # a second close is a no-op
    assert len(calls) == (2 if finished else 1)
