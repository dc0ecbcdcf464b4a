"""Optional BERT-family text encoder, fine-tuned end to end (docs/method.md §2).

Loaded with ``transformers`` from a local directory only: nothing can be downloaded from a model
hub here, and loading by name offline can silently come back with a wrong (tiny) vocabulary or
retry for minutes. The input is the dataset's ``text_bert`` tensor ``[B, 3, T]`` (token ids,
attention mask, segment ids) and the output the last hidden states ``[B, T, hidden]``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["BertTextEncoder"]


class BertTextEncoder(nn.Module):
    def __init__(self, path: str | Path) -> None:
        super().__init__()
        directory = Path(path)
        if not directory.is_dir():
            raise FileNotFoundError(
                f"BERT directory {str(directory)!r} does not exist. decalign loads text encoders only from a "
                "local directory (nothing can be downloaded from a model hub): save one with "
                "`AutoModel.from_pretrained(...).save_pretrained(DIR)` on a machine with access, then set "
                "model.text_encoder.path=DIR"
            )
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"{str(directory)!r} is not a HuggingFace model directory: no config.json in it")
        from decalign._optional import require

        AutoModel = require("transformers", extra="bert", feature="model.text_encoder.kind=bert").AutoModel
        self.model = AutoModel.from_pretrained(str(directory), local_files_only=True)
        self.vocab_size = int(self.model.config.vocab_size)
        self.hidden_size = int(self.model.config.hidden_size)

    def forward(self, text_bert: Tensor) -> Tensor:
        """``text_bert`` ``[B, 3, T]`` (ids, mask, segments; any numeric dtype) -> ``[B, T, hidden]``."""
        if text_bert.dim() != 3 or text_bert.shape[1] != 3:
            raise ValueError(f"text_bert must have shape [B, 3, T], found {tuple(text_bert.shape)}")
        tokens = text_bert.long()
        ids, mask, segments = tokens[:, 0], tokens[:, 1], tokens[:, 2]
        if int(ids.max()) >= self.vocab_size or int(ids.min()) < 0:
            raise ValueError(
                f"token ids range over [{int(ids.min())}, {int(ids.max())}] but the text encoder's vocabulary "
                f"has {self.vocab_size} entries: the data was tokenised for another model"
            )
        out = self.model(input_ids=ids, attention_mask=mask, token_type_ids=segments)
        return out.last_hidden_state

    @torch.no_grad()
    def output_width(self) -> int:
        return self.hidden_size
