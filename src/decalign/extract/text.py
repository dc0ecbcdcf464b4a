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

from decalign.extract.common import directory_fingerprint, package_version
from decalign.extract.errors import ExtractError, require
from decalign.extract.provenance import ExtractorRecord

__all__ = ["HFTextExtractor"]


class HFTextExtractor:
    """Token-level states of a local HuggingFace encoder (``AutoModel``/``AutoTokenizer``)."""

    name = "hf-text"

    def __init__(self, model_dir: str | os.PathLike[str], max_length: int = 50) -> None:
        if max_length < 3:
            raise ExtractError(f"text max_length must be >= 3 (room for [CLS] x [SEP]), found {max_length}")
        self.model_dir = Path(model_dir)
        self.fingerprint = directory_fingerprint(model_dir, "text model")
        self.max_length = max_length
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder must never trigger a download
        transformers = require("transformers")
        torch = require("torch")
        transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar per worker and run
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
            self.model = transformers.AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
        except (OSError, ValueError) as err:
            raise ExtractError(f"text model {os.fspath(model_dir)!r} cannot be loaded: {err}") from None
        self._torch = torch
        self.width = int(self.model.config.hidden_size)

    def record(self) -> ExtractorRecord:
        settings = {"model_dir": str(self.model_dir), "fingerprint": self.fingerprint,
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
