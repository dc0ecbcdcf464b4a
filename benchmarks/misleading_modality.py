"""Add a misleading third modality to an MMSA-layout pickle (e.g. the real mosi-dev file).

The added modality (``vision``, utterance level, ``[N, 1, D]``) fits the training labels far
better than anything real: on the train split it is the label times a fixed random direction plus
noise; on the valid and test splits it is built the same way from the split's labels *shuffled*,
so it has the same distribution but says nothing about the sample. This is the failure the
modality check (``train.modality_dropout`` + ``train.modality_check``) is for: features that
were fitted to the training labels (like vision features from a network trained on the same
clips) and do not generalise. Deterministic for a given ``--seed``::

    python benchmarks/misleading_modality.py mosi_dev.pkl mosi_dev_misleading.pkl
    decalign train --data mosi_dev_misleading.pkl --dataset mosi ...

The input file is not modified; the output is a new pickle with the same splits and keys plus
``vision`` and ``vision_lengths``.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_misleading_modality", "main"]


def add_misleading_modality(data: dict[str, dict[str, Any]], dim: int = 16, noise: float = 0.5,
                            seed: int = 0, name: str = "vision") -> dict[str, dict[str, Any]]:
    """A copy of the MMSA dict ``data`` plus ``name`` and ``<name>_lengths`` from
    :func:`decalign.data.misleading.misleading_features` (label-driven on train only)."""
    from decalign.data.misleading import misleading_features

    if name in data.get("train", {}):
        raise ValueError(f"the data already has a modality {name!r}")
    feats = misleading_features({s: d["regression_labels"] for s, d in data.items()}, dim, noise, seed)
    return {s: {**d, name: feats[s], f"{name}_lengths": np.ones(len(feats[s]), np.int64)} for s, d in data.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", type=Path, help="an MMSA-layout pickle (e.g. mosi_dev.pkl)")
    ap.add_argument("output", type=Path, help="where to write the pickle with the added modality")
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--noise", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.output.resolve() == args.input.resolve():
        ap.error("output must differ from input")
    from decalign.data.safe_pickle import load_pickle
    from decalign.errors import DecalignError

    try:
        data = add_misleading_modality(load_pickle(args.input), args.dim, args.noise, args.seed)
    except (DecalignError, OSError, ValueError) as err:
        ap.error(str(err))
    with open(args.output, "wb") as f:
        pickle.dump(data, f, protocol=4)
    print(f"wrote {args.output}: + vision [N, 1, {args.dim}] (label-driven on train, shuffled labels elsewhere)")


if __name__ == "__main__":
    main()
