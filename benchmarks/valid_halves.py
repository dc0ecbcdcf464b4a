"""Compare training procedures on the validation split alone, without the selection's optimism.

A run selects its epoch on the validation split, so the selected epoch's validation metric is the
best of several noisy values and flatters a procedure whose validation curve is noisy (raw
weights at a high learning rate) over one whose curve is smooth (``train.ema_decay``). This
script splits the validation split of an MMSA-layout pickle **by video** into two halves of
about equal size and writes two files with the same train split: in ``<stem>_a.pkl`` half A is
the validation split and half B the test split, in ``<stem>_b.pkl`` the other way round. The
original test split is left out of both, so choosing with them never reads it. A run on each
file selects on one half and is measured on the other: the mean of the two "test" results is an
honest estimate of how the procedure does on videos it did not select on::

    python benchmarks/valid_halves.py mosi_dev.pkl halves      # halves_a.pkl, halves_b.pkl
    decalign train --data halves_a.pkl --dataset mosi ...; decalign train --data halves_b.pkl ...

The video of a clip is its id up to the last ``$_$`` (CMU-MOSI, MOSEI) or ``_`` (CH-SIMS style).
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from video_cv import fold_of_clips, video_of  # the sibling script (benchmarks/ is on the path when run)

__all__ = ["halves", "main"]


def halves(split: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of halves A and B of ``split`` by video: videos largest first, each to the
    half with fewer clips so far (ties to A), so the halves differ by at most one video's clips
    (``video_cv.fold_of_clips`` with two folds)."""
    n_videos = len({video_of(str(i)) for i in split["id"]})
    if n_videos < 2:
        raise ValueError(f"the validation split has {n_videos} video(s); two halves need at least 2")
    in_a = fold_of_clips(split["id"], 2) == 0
    return in_a, ~in_a


def _subset(split: dict[str, Any], mask: np.ndarray) -> dict[str, Any]:
    n = len(mask)
    return {k: (v[mask] if isinstance(v, np.ndarray) and v.shape[:1] == (n,) else v) for k, v in split.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", type=Path, help="an MMSA-layout pickle (e.g. mosi_dev.pkl)")
    ap.add_argument("stem", type=Path, help="output path without suffix: writes STEM_a.pkl and STEM_b.pkl")
    args = ap.parse_args(argv)
    from decalign.data.safe_pickle import load_pickle
    from decalign.errors import DecalignError

    try:
        data = load_pickle(args.input)
        if "valid" not in data or "id" not in data["valid"]:
            raise ValueError(f"{args.input}: no valid split with clip ids ('valid' -> 'id')")
        a, b = halves(data["valid"])
    except (DecalignError, OSError, ValueError) as err:
        ap.error(str(err))
    for name, (select, measure) in {"a": (a, b), "b": (b, a)}.items():
        out = args.stem.parent / f"{args.stem.name}_{name}.pkl"
        if out.resolve() == args.input.resolve():
            ap.error("the output would overwrite the input")
        split = {"train": data["train"], "valid": _subset(data["valid"], select),
                 "test": _subset(data["valid"], measure)}
        with open(out, "wb") as f:
            pickle.dump(split, f, protocol=4)
        videos = sorted({video_of(str(i)) for i in split["valid"]["id"]})
        print(f"wrote {out}: valid {int(select.sum())} clips of {len(videos)} videos, "
              f"test {int(measure.sum())} clips (the other half of the original valid)")


if __name__ == "__main__":
    main()
