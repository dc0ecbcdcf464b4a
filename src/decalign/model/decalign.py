"""The DecAlign model (Qian et al., ICLR 2026), assembled from its parts (docs/method.md §1).

::

    x_m --(text dropout, text only)--> TemporalProjection --> p_m
    p_m --Decoupler--> unique s_m, common c_m          (L_dec: squared cosine of s_m and c_m)
    mean_t s_m --PrototypeTransport (GMM + OT)--> L_hete
    mean_t c_m --DistributionMatching (moments + MMD)--> L_homo
    s_m --CrossModalTransformer--> h_m
    [h_1..h_M, mean_t c_1..mean_t c_M] --PredictionHead--> prediction

Modalities are data: the model is built for the modalities of a dataset (any number >= 1, names
and widths from the data) and ``forward`` takes a mapping name -> ``[B, T, D]``. A modality that
is switched off (``ModelConfig.modalities``) or absent from the input is *inactive*: it is not
computed, its slots of the representation are zeros, it is left out of every other modality's
cross-modal context and of the decoupling average, and the alignment losses are 0 unless every
modality of the model is active (with the three benchmark modalities this is the released rule).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from decalign.config import ModelConfig
from decalign.model.base import MultimodalModel
from decalign.model.decoupling import Decoupler, decoupling_loss
from decalign.model.heads import PredictionHead
from decalign.model.heterogeneity import PrototypeTransport
from decalign.model.homogeneity import DistributionMatching
from decalign.model.kernels import masked_mean
from decalign.model.output import MODEL_LOSSES, MODEL_TERMS, ModelOutput
from decalign.model.transformer import CrossModalTransformer

__all__ = ["DecAlign"]


def _at_least_fp32(x: Tensor) -> Tensor:
    """Half-precision tensors (from autocast) in float32; float32/float64 unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class DecAlign(MultimodalModel):
    """DecAlign for the modalities ``input_dims`` (name -> feature width, in data order).

    Args:
        config: architecture and alignment switches (validated :class:`ModelConfig`).
        input_dims: modality name -> input width ``D_m``. With the BERT text encoder the text
            entry is ignored and the encoder's hidden size is used.
        num_outputs: 1 for regression, C >= 2 for C-class classification.
        seq_lens: modality name -> padded length, if known; checked against the conv kernels at
            construction so a kernel longer than a sequence fails early with what to set.
    """

    def __init__(
        self,
        config: ModelConfig,
        input_dims: Mapping[str, int],
        num_outputs: int = 1,
        seq_lens: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(config, input_dims, num_outputs, seq_lens)
        d, n = config.d_model, len(self.modalities)
        self.projection = self.make_projection()
        self.decoupler = Decoupler(n, d)
        self.heterogeneity = PrototypeTransport(config.heterogeneity)
        self.homogeneity = DistributionMatching(n, d, config.output_dropout, config.homogeneity)
        self.fusion = CrossModalTransformer(self.modalities, d, config.fusion)
        self.head = PredictionHead(2 * n * d, num_outputs, config.output_dropout)

    def forward(self, features: Mapping[str, Tensor], lengths: Mapping[str, Tensor] | None = None) -> ModelOutput:
        """Run the model.

        Args:
            features: modality name -> ``[B, T_m, D_m]`` float tensor (for the BERT text encoder,
                ``text`` is the ``[B, 3, T]`` token tensor). Modalities may be left out.
            lengths: optional modality name -> ``[B]`` true lengths; used only by the options
                ``model.padding_mask`` and ``heterogeneity.masked_pooling`` (released behaviour
                pools over padding too).
        """
        index, projected = self.project(self.projection, features)
        names = [self.modalities[i] for i in index]
        masks = self._masks(projected, names, lengths) if self.config.padding_mask else None
        unique_seq, unique_pooled, common_pooled, common_seq = self._decouple(projected, index, masks)
        if isinstance(unique_seq, Tensor) and isinstance(common_seq, Tensor):  # stacked together, or lists
            dec = decoupling_loss(unique_seq, common_seq)
        else:
            dec = torch.stack([decoupling_loss(u, c) for u, c in zip(unique_seq, common_seq)]).mean()
        if self.config.heterogeneity.masked_pooling and masks is None and lengths is not None:
            unique_pooled = _pool(list(unique_seq), self._masks(projected, names, lengths))
        align_unique, align_common = unique_pooled, common_pooled  # [M', B, d]
        if self.feature_gather is not None and self.training:
            align_unique = self.feature_gather(unique_pooled, 1)  # [M', B_global, d]
            align_common = self.feature_gather(common_pooled, 1)
        if not self.config.decoupling_loss:
            dec = unique_pooled.new_zeros(())
        all_active = len(index) == len(self.modalities) and len(index) >= 2
        hetero, homo, plan, terms = self._alignment(align_unique, align_common, index, all_active)
        terms = {"decoupling": dec, **terms}
        representation, prediction = self._fuse(unique_seq, common_pooled, index, masks)
        common_all, unique_all = self.scatter(common_pooled, index), self.scatter(unique_pooled, index)
        return ModelOutput(
            prediction=prediction,
            losses=dict(zip(MODEL_LOSSES, (dec, hetero, homo))),  # decoupling, heterogeneity, homogeneity
            terms=terms,
            representation=representation,
            unique=unique_all,
            common=common_all,
            plan=plan,
        )

    def predict(self, features: Mapping[str, Tensor], lengths: Mapping[str, Tensor] | None = None) -> Tensor:
        """``forward(features).prediction`` without the training losses.

        The alignment losses (GMM EM, Sinkhorn, MMD) and the decoupling loss do not touch the
        prediction, which reads only the fused unique sequences and the pooled common features;
        they are batch statistics with data-dependent loops that neither ``torch.export`` nor
        ONNX can capture. This path is what the predictor and the exported graphs run.
        ``lengths`` is used only with ``model.padding_mask`` (the released model pools over
        padding).
        """
        index, projected = self.project(self.projection, features)
        names = [self.modalities[i] for i in index]
        masks = self._masks(projected, names, lengths) if self.config.padding_mask else None
        unique_seq, _, common_pooled, _ = self._decouple(projected, index, masks)
        return self._fuse(unique_seq, common_pooled, index, masks)[1]

    def _masks(
        self, projected: list[Tensor], names: list[str], lengths: Mapping[str, Tensor] | None
    ) -> list[Tensor] | None:
        """Per active modality a boolean ``[B, T'_m]``, True at the projected sequence's real steps
        (the true length minus the steps the projection removes, at least 1; a modality without
        lengths is all real). ``None`` without lengths."""
        if lengths is None:
            return None
        masks = []
        for m, p in zip(names, projected):
            batch, steps = p.shape[0], p.shape[1]
            if m not in lengths:
                masks.append(torch.ones(batch, steps, dtype=torch.bool, device=p.device))
                continue
            valid = self.projection.output_lengths(m, lengths[m].to(p.device)).clamp(1, steps)
            masks.append(torch.arange(steps, device=p.device)[None, :] < valid[:, None])
        return masks

    def _decouple(
        self, projected: list[Tensor], index: list[int], masks: list[Tensor] | None = None
    ) -> tuple[Tensor | list[Tensor], Tensor, Tensor, Tensor | list[Tensor]]:
        """Unique sequences (stacked ``[M', B, T, d]`` when the lengths agree, else a list),
        time-pooled unique and common features ``[M', B, d]`` (over the real steps when
        ``masks`` are given), and the common sequences."""
        if len({p.shape[1] for p in projected}) == 1:
            unique, common = self.decoupler(torch.stack(projected), index)
            if masks is None:
                return unique, unique.mean(2), common.mean(2), common
            stacked = torch.stack(masks)
            return unique, masked_mean(unique, stacked, 2), masked_mean(common, stacked, 2), common
        pairs = [self.decoupler.one(p, i) for p, i in zip(projected, index)]
        unique_list, common_list = [u for u, _ in pairs], [c for _, c in pairs]
        return unique_list, _pool(unique_list, masks), _pool(common_list, masks), common_list

    def _fuse(
        self, unique_seq: Tensor | list[Tensor], common_pooled: Tensor, index: list[int],
        masks: list[Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Cross-modal fusion and the head: the representation ``[B, 2 M d]`` and the prediction."""
        fused = self.fusion(unique_seq, index, masks)  # [M', B, d]
        scattered = [self.scatter(fused, index), self.scatter(common_pooled, index)]
        representation = self.concat(torch.cat(scattered, dim=0))
        return representation, self.head(representation)

    def _alignment(
        self, unique_pooled: Tensor, common_pooled: Tensor, index: list[int], all_active: bool
    ) -> tuple[Tensor, Tensor, Tensor | None, dict[str, Tensor]]:
        """Heterogeneity and homogeneity losses (0 unless every modality of the model is active).

        They run in float32 with autocast off: EM, Sinkhorn, moments and kernel sums lose too
        much in bfloat16/float16 (a variance floor of 1e-4 is below bf16's resolution near 1).
        """
        zero = _at_least_fp32(unique_pooled).new_zeros(())
        hetero = homo = zero
        plan = None
        terms = {k: zero for k in MODEL_TERMS if k not in MODEL_LOSSES}  # ot, proto_local, moments, mmd
        if not all_active:
            return hetero, homo, plan, terms
        with torch.autocast(device_type=unique_pooled.device.type, enabled=False):
            if self.config.heterogeneity.enabled:
                out = self.heterogeneity(_at_least_fp32(unique_pooled))
                hetero, plan = out.loss, out.plan
                terms["ot"], terms["proto_local"] = out.ot, out.local
            if self.config.homogeneity.enabled:
                hout = self.homogeneity(_at_least_fp32(common_pooled), index)
                homo = hout.loss
                terms["moments"], terms["mmd"] = hout.moments, hout.mmd
        return hetero, homo, plan, terms


def _pool(seqs: list[Tensor], masks: list[Tensor] | None) -> Tensor:
    """Time-means ``[M', B, d]`` of per-modality sequences ``[B, T_m, d]``, over the real steps
    when ``masks`` are given."""
    if masks is None:
        return torch.stack([s.mean(1) for s in seqs])
    return torch.stack([masked_mean(s, mk, 1) for s, mk in zip(seqs, masks)])
