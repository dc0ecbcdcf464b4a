"""Text features from any HuggingFace encoder in a local directory (never downloaded).

For each transcript: the encoder's token-level last hidden states ``[T, D]`` (``T`` = real tokens
including ``[CLS]``/``[SEP]``) and the BERT inputs ``[3, max_length]`` (token ids, attention
mask, segment ids) that MMSA pickles carry as ``text_bert``, so one dataset serves both a frozen
text encoder and a fine-tuned one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from decalign.extract.common import directory_fingerprint, load_local_model, package_version
from decalign.extract.errors import ExtractError, require
from decalign.extract.provenance import ExtractorRecord

__all__ = ["MAX_TEXT_LENGTH", "HFTextExtractor"]

MAX_TEXT_LENGTH = 512
"""Most tokens per transcript (BERT-family encoders have 512 positions)."""


class HFTextExtractor:
    """Token-level states of a local HuggingFace encoder (``AutoModel``/``AutoTokenizer``)."""

    name = "hf-text"

    def __init__(self, model_dir: str | os.PathLike[str], max_length: int = 50) -> None:
        if not 3 <= max_length <= MAX_TEXT_LENGTH:
            raise ExtractError(f"text max_length (--text-max-len) must be in [3, {MAX_TEXT_LENGTH}] (room for [CLS] "
                               f"x [SEP], at most a BERT's positions), found {max_length}")
        from decalign.safety.paths import check_safe_weights

        self.model_dir = Path(model_dir)
        self.files = check_safe_weights(model_dir, "text model", ExtractError)
        self.fingerprint = directory_fingerprint(model_dir, "text model")
        self.max_length = max_length
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder must never trigger a download
        transformers = require("transformers")
        torch = require("torch")
        transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar per worker and run
        self.tokenizer, self.model = load_local_model(transformers.AutoTokenizer, model_dir, "text model")
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if isinstance(limit, int) and max_length > limit:
            raise ExtractError(f"text max_length (--text-max-len) {max_length} is beyond the {limit} positions of the "
                               f"text model {os.fspath(model_dir)!r}")
        self._torch = torch
        self.width = int(self.model.config.hidden_size)

    def record(self) -> ExtractorRecord:
        settings = {"model_dir": str(self.model_dir), "fingerprint": self.fingerprint, "files": self.files,
                    "model_type": str(self.model.config.model_type), "max_length": self.max_length}
        return ExtractorRecord(self.name, "transformers", package_version("transformers"), settings, self.width, None)

    def __call__(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """``(states [T, D] float32, bert [3, max_length] int64)`` for one transcript."""
        enc = self.tokenizer(text, padding="max_length", truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        mask = enc["attention_mask"]
        segments = enc.get("token_type_ids")
        if segments is None:
            segments = self._torch.zeros_like(mask)
        with self._torch.inference_mode():
            hidden = self.model(input_ids=enc["input_ids"], attention_mask=mask).last_hidden_state[0]
        n = int(mask[0].sum())
        states = hidden[:n].float().numpy().astype(np.float32)
        bert = np.stack([enc["input_ids"][0].numpy(), mask[0].numpy(), segments[0].numpy()]).astype(np.int64)
        return states, bert
