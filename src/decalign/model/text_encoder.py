"""Optional BERT-family text encoder, fine-tuned end to end (docs/method.md §2).

Loaded with ``transformers`` from a local directory only: nothing can be downloaded from a model
hub here, and loading by name offline can silently come back with a wrong (tiny) vocabulary or
retry for minutes. Weights are read from ``.safetensors`` files only, never a pickle
(``pytorch_model.bin`` is refused, naming the file), and no code from the folder is run. The
input is the dataset's ``text_bert`` tensor ``[B, 3, T]`` (token ids, attention mask, segment
ids) and the output the last hidden states ``[B, T, hidden]``.

Fine-tuning only the top ``k`` layers (``train_layers=k``) freezes the embeddings and the lower
layers and runs them in eval mode (no dropout), so their output is a fixed function of a sample's
tokens. With ``cache_frozen`` that output is computed once per sample and reused: an epoch then
costs only the ``k`` trainable layers (see :class:`FrozenStatesCache`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["BertTextEncoder", "FrozenStatesCache"]


class FrozenStatesCache:
    """Hidden states of the frozen lower layers, one ``[T, hidden]`` tensor per distinct sample.

    Why hand-written: the key must make a stale entry impossible, which no generic memoiser
    offers. A sample is keyed by the bytes of its own ``[3, T]`` token row (ids, mask, segments),
    so the cache needs no sample indices and is shared by every split; the whole cache is keyed
    by a fingerprint of the frozen parameters (storage address and in-place version counter of
    each, plus device and dtype), so loading other weights, an in-place edit or moving the model
    empties it. Entries are plain tensors, not buffers: they are never written to checkpoints.
    """

    def __init__(self) -> None:
        self._states: dict[bytes, Tensor] = {}
        self._fingerprint: tuple[object, ...] | None = None
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._states)

    def clear(self) -> None:
        self._states.clear()
        self._fingerprint = None

    def lookup(self, tokens: Tensor, fingerprint: tuple[object, ...], compute: Callable[[Tensor], Tensor]) -> Tensor:
        """``[B, T, hidden]`` frozen states for ``tokens`` ``[B, 3, T]``; computes the missing rows
        (in one batch) with ``compute(tokens_subset)``."""
        if fingerprint != self._fingerprint:
            self._states.clear()
            self._fingerprint = fingerprint
        rows = tokens.detach().to("cpu", torch.int64).contiguous()
        keys = [row.numpy().tobytes() for row in rows]
        missing = [i for i, key in enumerate(keys) if key not in self._states]
        if missing:
            index = torch.tensor(missing, device=tokens.device)
            fresh = compute(tokens.index_select(0, index))
            for i, state in zip(missing, fresh):
                self._states[keys[i]] = state
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        return torch.stack([self._states[key] for key in keys])


class BertTextEncoder(nn.Module):
    """A local HuggingFace BERT-family model as DecAlign's text encoder.

    Args:
        path: local model directory (``config.json`` + weights).
        train_layers: fine-tune only the top ``k`` transformer layers (0: none, a frozen encoder);
            ``None`` fine-tunes everything, embeddings included (the released behaviour).
        cache_frozen: with ``train_layers`` set, compute the frozen part once per sample.
    """

    def __init__(self, path: str | Path, train_layers: int | None = None, cache_frozen: bool = True) -> None:
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
        from decalign.safety.paths import check_safe_weights

        AutoModel = require("transformers", extra="bert", feature="model.text_encoder.kind=bert").AutoModel
        check_safe_weights(directory, "model.text_encoder.path")  # safetensors only: a pickle can run code
        self.model = AutoModel.from_pretrained(str(directory), local_files_only=True, use_safetensors=True,
                                               trust_remote_code=False)
        self.vocab_size = int(self.model.config.vocab_size)
        self.hidden_size = int(self.model.config.hidden_size)
        self.train_layers = train_layers
        self.cache: FrozenStatesCache | None = None
        if train_layers is not None:
            layers = self._layers()
            if train_layers > len(layers):
                raise ValueError(
                    f"model.text_encoder.train_layers={train_layers} but the model in {str(directory)!r} has "
                    f"only {len(layers)} layers"
                )
            self.split = len(layers) - train_layers
            for param in self.model.parameters():
                param.requires_grad_(False)
            for layer in layers[self.split:]:
                for param in layer.parameters():
                    param.requires_grad_(True)
            if cache_frozen:
                self.cache = FrozenStatesCache()
            self.train(self.training)

    def _layers(self) -> nn.ModuleList:
        encoder = getattr(self.model, "encoder", None)
        layers = getattr(encoder, "layer", None)
        if not isinstance(layers, nn.ModuleList) or not hasattr(self.model, "embeddings"):
            raise ValueError(
                f"model.text_encoder.train_layers needs a BERT-style model (embeddings + encoder.layer); "
                f"{type(self.model).__name__} is not one"
            )
        return layers

    def train(self, mode: bool = True) -> BertTextEncoder:
        """The frozen part stays in eval mode (no dropout), so its output is a function of the
        tokens alone: the cache is then exact, and training-mode outputs equal the uncached ones."""
        super().train(mode)
        if self.train_layers is not None:
            self.model.embeddings.eval()
            for layer in self._layers()[: self.split]:
                layer.eval()
            pooler = getattr(self.model, "pooler", None)
            if pooler is not None:
                pooler.eval()
        return self

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
        if self.train_layers is None:
            out = self.model(input_ids=ids, attention_mask=mask, token_type_ids=segments)
            return out.last_hidden_state  # type: ignore[no-any-return]
        if self.cache is not None:
            hidden = self.cache.lookup(tokens, self._frozen_fingerprint(), self._frozen_states)
        else:
            hidden = self._frozen_states(tokens)
        layers = self._layers()
        additive = self._additive_mask(mask, hidden.dtype)
        for layer in layers[self.split:]:
            hidden = _layer_output(layer(hidden, attention_mask=additive))
        return hidden

    @torch.no_grad()
    def _frozen_states(self, tokens: Tensor) -> Tensor:
        """Embeddings and the frozen lower layers (eval mode, no gradient) -> ``[B, T, hidden]``."""
        ids, mask, segments = tokens[:, 0], tokens[:, 1], tokens[:, 2]
        hidden = self.model.embeddings(input_ids=ids, token_type_ids=segments)
        additive = self._additive_mask(mask, hidden.dtype)
        for layer in self._layers()[: self.split]:
            hidden = _layer_output(layer(hidden, attention_mask=additive))
        return hidden  # type: ignore[no-any-return]

    @staticmethod
    def _additive_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
        """``[B, T]`` 0/1 -> ``[B, 1, 1, T]`` additive mask (0 or the dtype's minimum), which both the
        eager and the SDPA attention of ``transformers`` accept."""
        return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min

    def _frozen_fingerprint(self) -> tuple[object, ...]:
        params = [p for p in self.model.parameters() if not p.requires_grad]
        # ``_version`` counts in-place writes (``copy_`` in ``load_state_dict``, optimizer steps).
        return tuple((p.data_ptr(), p._version, p.dtype, str(p.device)) for p in params)

    @torch.no_grad()
    def output_width(self) -> int:
        return self.hidden_size


def _layer_output(out: Tensor | tuple[Tensor, ...]) -> Tensor:
    """A ``BertLayer`` returns a tensor (transformers >= 5) or a tuple led by it (4.x)."""
    return out[0] if isinstance(out, tuple) else out
