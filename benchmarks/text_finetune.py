"""Reference: the text encoder fine-tuned alone, the standard way (no DecAlign, no audio).

The ridge probe answers "what do the *frozen* text features give?". Once DecAlign fine-tunes its
text encoder, the fair question is instead "what does the same encoder give when fine-tuned on
its own?": if DecAlign with text + audio is not above that, its alignment and its second
modality add nothing over a plain text regressor. This script trains that regressor with the
usual recipe for sentence regression with a BERT-family model: every encoder parameter trained,
mean of the last hidden states over the attention mask, one linear output, mean squared error,
AdamW (encoder lr ``--lr``, head ``--head-lr``), the learning rate warmed up linearly over the
first ``--warmup`` of the steps and then decayed linearly to 0, the epoch selected on the
validation split's MSE.

It writes one run directory in the engine's layout, so ``real_table.py`` and ``video_cv.py``
read it as a row beside DecAlign's runs::

    python benchmarks/text_finetune.py --data mosi_dev.pkl --bert MODEL_DIR --dataset mosi \\
        --out runs/text_ft --seeds 1111 1112 1113
    python benchmarks/real_table.py --split test "text fine-tuned=runs/text_ft" "recipe=runs/recipe"

``OUT/seed_<s>/result.json`` holds the selected epoch, the valid and test metrics and the
per-epoch history; ``OUT/seed_<s>/test_predictions.csv`` the test predictions.
Only sentiment regression files (MOSI, MOSEI, SIMS layouts that carry ``text_bert``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from decalign.config import DataConfig
from decalign.data.detect import DATASET_KINDS, SPLITS
from decalign.data.loading import load_dataset
from decalign.data.types import MultimodalDataset
from decalign.errors import DecalignError
from decalign.metrics import metrics_for
from decalign.model.text_encoder import BertTextEncoder
from decalign.safety.cells import csv_writer
from decalign.train.optim import lr_factor as step_factor

__all__ = ["Recipe", "TextRegressor", "lr_factor", "main", "train_seed"]


@dataclass(frozen=True)
class Recipe:
    """The fine-tuning settings (the command line's, checked there)."""

    epochs: int = 6
    lr: float = 5e-5
    head_lr: float = 1e-3
    warmup: float = 0.1
    weight_decay: float = 0.01
    batch_size: int = 32


class TextRegressor(nn.Module):
    """BERT-family encoder -> mean over the attended tokens -> one linear output."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.encoder = BertTextEncoder(path)  # train_layers=None: every parameter is trained
        self.head = nn.Linear(self.encoder.hidden_size, 1)

    def forward(self, text_bert: Tensor) -> Tensor:
        # Cut the padding every sample of the batch has: attention over it is wasted work.
        width = int(text_bert[:, 1].sum(1).max())
        tokens = text_bert[:, :, :max(width, 1)]
        hidden = self.encoder(tokens)
        mask = tokens[:, 1].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled).squeeze(-1)


def lr_factor(step: int, total: int, warmup: float) -> float:
    """The engine's warm-up x linear decay (:func:`decalign.train.optim.lr_factor`) over
    ``total`` steps, the warm-up given as a fraction of them (at least one step)."""
    return step_factor(step, warmup=max(1.0, warmup * total), decay=total)


@torch.no_grad()
def predict(model: TextRegressor, text_bert: Tensor, batch_size: int = 64) -> np.ndarray:
    model.eval()
    parts = [model(text_bert[i:i + batch_size]) for i in range(0, len(text_bert), batch_size)]
    return torch.cat(parts).numpy()


def train_seed(ds: MultimodalDataset, bert: Path, seed: int, recipe: Recipe) -> dict[str, Any]:
    """One seed: train, select the epoch on valid MSE, return metrics and test predictions."""
    torch.manual_seed(seed)
    metric_fn = metrics_for(ds.kind, ds.task, ds.label_range)
    tokens = {s: torch.as_tensor(ds.splits[s].text_bert, dtype=torch.long) for s in SPLITS}
    labels = {s: torch.as_tensor(ds.splits[s].labels, dtype=torch.float32) for s in tokens}
    model = TextRegressor(bert)
    optimizer = torch.optim.AdamW(
        [{"params": model.encoder.parameters(), "lr": recipe.lr},
         {"params": model.head.parameters(), "lr": recipe.head_lr}],
        weight_decay=recipe.weight_decay,
    )
    n = len(labels["train"])
    total = recipe.epochs * -(-n // recipe.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, recipe.warmup))
    generator = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    best: dict[str, Any] | None = None
    for epoch in range(1, recipe.epochs + 1):
        model.train()
        start, losses = time.perf_counter(), []
        for batch in torch.randperm(n, generator=generator).split(recipe.batch_size):
            loss = nn.functional.mse_loss(model(tokens["train"][batch]), labels["train"][batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        valid_pred = predict(model, tokens["valid"])
        valid_mse = float(np.mean((valid_pred - labels["valid"].numpy()) ** 2))
        history.append({"epoch": epoch, "train_mse": float(np.mean(losses)), "valid_mse": valid_mse,
                        "time_s": time.perf_counter() - start})
        print(f"seed {seed} epoch {epoch}: train mse {history[-1]['train_mse']:.3f}, valid mse {valid_mse:.3f}, "
              f"{history[-1]['time_s']:.0f} s", file=sys.stderr)
        if best is None or valid_mse < best["valid_mse"]:
            test_pred = predict(model, tokens["test"])
            best = {"epoch": epoch, "valid_mse": valid_mse, "valid_pred": valid_pred, "test_pred": test_pred}
    assert best is not None
    return {
        "seed": seed,
        "best_epoch": best["epoch"],
        "epochs_run": recipe.epochs,
        "valid": metric_fn(best["valid_pred"], labels["valid"].numpy()),
        "test": metric_fn(best["test_pred"], labels["test"].numpy()),
        "history": history,
        "test_pred": best["test_pred"],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="an MMSA pickle that carries text_bert")
    ap.add_argument("--dataset", default="auto", choices=[*DATASET_KINDS, "auto"],
                    help="the benchmark, for its metrics (as `decalign train --dataset`)")
    ap.add_argument("--bert", type=Path, required=True, help="local directory of the text encoder")
    ap.add_argument("--out", type=Path, required=True, help="run directory to write (seed_<s>/ in it)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1111, 1112, 1113])
    ap.add_argument("--epochs", type=int, default=Recipe.epochs)
    ap.add_argument("--lr", type=float, default=Recipe.lr, help="encoder learning rate")
    ap.add_argument("--head-lr", type=float, default=Recipe.head_lr)
    ap.add_argument("--warmup", type=float, default=Recipe.warmup, help="fraction of the steps warmed up")
    ap.add_argument("--weight-decay", type=float, default=Recipe.weight_decay)
    ap.add_argument("--batch-size", type=int, default=Recipe.batch_size)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    for name in ("epochs", "batch_size", "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if not 0.0 <= args.warmup <= 1.0:
        ap.error("--warmup must be a fraction in [0, 1]")
    torch.set_num_threads(args.threads)
    if not (args.bert / "config.json").is_file():
        ap.error(f"--bert {args.bert}: not a HuggingFace model directory (no config.json in it)")
    try:
        ds = load_dataset(args.data, DataConfig(dataset=args.dataset))
    except (DecalignError, OSError) as err:
        ap.error(str(err))
    if ds.task != "regression":
        ap.error(f"{args.data}: a {ds.task} dataset; this reference is for sentiment regression only")
    missing = [s for s in SPLITS if ds.splits[s].text_bert is None]
    if missing:
        ap.error(f"{args.data}: split(s) {missing} carry no 'text_bert' (token ids to fine-tune on)")
    vocab = json.loads((args.bert / "config.json").read_text()).get("vocab_size")
    top = max(int(ds.splits[s].text_bert[:, 0].max()) for s in SPLITS)
    if vocab is not None and top >= int(vocab):
        ap.error(f"{args.data}: 'text_bert' has token id {top}, but the encoder in {args.bert} has a vocabulary "
                 f"of {vocab}: the data was tokenised for another model")
    recipe = Recipe(epochs=args.epochs, lr=args.lr, head_lr=args.head_lr, warmup=args.warmup,
                    weight_decay=args.weight_decay, batch_size=args.batch_size)
    settings = {"data": str(args.data), "dataset": args.dataset, "bert": str(args.bert), "out": str(args.out),
                "seeds": args.seeds, "threads": args.threads, **asdict(recipe)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    test_ids = ds.splits["test"].ids
    for seed in args.seeds:
        result = train_seed(ds, args.bert, seed, recipe)
        directory = args.out / f"seed_{seed}"
        directory.mkdir(exist_ok=True)
        with open(directory / "test_predictions.csv", "w", newline="") as f:
            writer = csv_writer(f)  # ids come from the data file: escaped like every CSV decalign writes
            writer.writerow(["id", "label", "prediction"])
            for i, y, p in zip(test_ids, ds.splits["test"].labels, result.pop("test_pred")):
                writer.writerow([i, f"{float(y):.6g}", f"{float(p):.6g}"])
        (directory / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"seed {seed}: epoch {result['best_epoch']}, test acc2_non0 {result['test']['acc2_non0']:.4f}, "
              f"corr {result['test']['corr']:.4f}, mae {result['test']['mae']:.3f}")


if __name__ == "__main__":
    main()
