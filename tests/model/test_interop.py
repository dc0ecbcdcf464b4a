"""Import and export of the authors' checkpoint layout (``docs/method.md`` §18)."""

from __future__ import annotations

import pickle

import pytest
import torch

from decalign.config.presets import get_preset
from decalign.model import DecAlign
from decalign.model.interop import (
    OfficialStateDictError,
    export_official_state_dict,
    from_official,
    load_official_checkpoint,
    load_official_state_dict,
    to_official,
)
from decalign.testing.reference import PRESET_SHAPES, ReferenceDecAlign, randomize_, with_layers

torch.set_num_threads(1)

# docs/method.md §18: parameters and tensors of the authors' checkpoints (precomputed text).
SPEC_COUNTS = {"mosi": (842_241, 201), "mosei": (922_177, 165), "sims": (404_673, 165), "iemocap": (487_206, 165)}
# (d, num_layers, conv kernel, outputs) per preset, to rebuild the documented key table.
SPEC_ARCH = {"mosi": (64, 5, 1, 1), "mosei": (64, 4, 5, 1), "sims": (32, 4, 5, 1), "iemocap": (48, 4, 1, 6)}


def spec_layout(preset: str) -> dict[str, tuple[int, ...]]:
    """The key -> shape table of the authors' checkpoints (docs/method.md §18) for ``preset``, from
    the documented pattern (independently of both implementations)."""
    d, layers, kernel, outputs = SPEC_ARCH[preset]
    dims, _ = PRESET_SHAPES[preset]
    table: dict[str, tuple[int, ...]] = {}
    for x, m in zip("lav", ("text", "audio", "vision")):
        table[f"proj_{x}.weight"] = (d, dims[m], kernel)
    for x in "lav":
        table[f"encoder_uni_{x}.weight"] = (d, d, 1)
    table["encoder_com.weight"] = (d, d, 1)
    for x in "lav":
        for i in range(layers):
            p = f"trans_{x}.layers.{i}."
            table |= {
                p + "self_attn.in_proj_weight": (3 * d, d), p + "self_attn.in_proj_bias": (3 * d,),
                p + "self_attn.out_proj.weight": (d, d), p + "self_attn.out_proj.bias": (d,),
                p + "attn_layer_norm.weight": (d,), p + "attn_layer_norm.bias": (d,),
                p + "fc1.weight": (4 * d, d), p + "fc1.bias": (4 * d,),
                p + "fc2.weight": (d, 4 * d), p + "fc2.bias": (d,),
                p + "final_layer_norm.weight": (d,), p + "final_layer_norm.bias": (d,),
            }
    for x in "lav":
        table |= {f"pde_{x}.net.0.weight": (d, d), f"pde_{x}.net.0.bias": (d,),
                  f"pde_{x}.net.3.weight": (d, d), f"pde_{x}.net.3.bias": (d,)}
    table |= {"out_layer.weight": (outputs, 6 * d), "out_layer.bias": (outputs,)}
    return table


def shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def our_model(preset: str, num_layers: int | None = None) -> DecAlign:
    dims, outputs = PRESET_SHAPES[preset]
    config = get_preset(preset).model
    if num_layers is not None:
        config = with_layers(config, num_layers)
    return DecAlign(config, dims, outputs)


@pytest.mark.parametrize("preset", list(SPEC_COUNTS))
def test_parameter_and_tensor_counts_match_spec(preset: str) -> None:
    model = our_model(preset)
    params, tensors = SPEC_COUNTS[preset]
    assert sum(p.numel() for p in model.parameters()) == params
    exported = export_official_state_dict(model)
    assert len(exported) == tensors
    assert sum(t.numel() for t in exported.values()) == params
    assert shapes(exported) == spec_layout(preset)
    reference = ReferenceDecAlign(get_preset(preset).model, *PRESET_SHAPES[preset])
    assert shapes(reference.state_dict()) == spec_layout(preset)
    assert sum(p.numel() for p in reference.parameters()) == params


@pytest.mark.parametrize("preset", list(SPEC_COUNTS))
def test_export_import_export_is_identity(preset: str) -> None:
    torch.manual_seed(0)
    model = randomize_(our_model(preset), seed=1)
    first = export_official_state_dict(model)
    again = export_official_state_dict(load_official_state_dict(first, preset))
    assert list(again) == list(first)
    for key, value in first.items():
        assert torch.equal(again[key], value), key
    imported = load_official_state_dict(first, preset)
    for key, value in model.state_dict().items():
        assert torch.equal(imported.state_dict()[key], value), key


def test_widths_and_outputs_are_inferred_from_the_checkpoint() -> None:
    reference = ReferenceDecAlign(with_layers(get_preset("iemocap").model, 1), {"text": 30, "audio": 7, "vision": 9}, 4)
    model = load_official_state_dict(reference.state_dict(), with_layers(get_preset("iemocap").model, 1))
    assert model.modalities == ("text", "audio", "vision")
    assert model.input_dims == {"text": 30, "audio": 7, "vision": 9}
    assert model.num_outputs == 4


def test_preset_may_be_name_run_config_or_model_config() -> None:
    state = export_official_state_dict(our_model("sims"))
    for preset in ("sims", get_preset("sims"), get_preset("sims").model):
        assert load_official_state_dict(state, preset).config == get_preset("sims").model
    with pytest.raises(ValueError, match="unknown preset"):
        load_official_state_dict(state, "nope")


def test_all_key_problems_are_reported_in_one_error() -> None:
    state = export_official_state_dict(our_model("mosei"))
    del state["encoder_com.weight"]
    del state["trans_v.layers.3.fc1.bias"]
    state["proj_a.weight"] = torch.zeros(64, 74, 3)  # kernel 3, preset says 5
    state["out_layer.weight"] = torch.zeros(1, 300)
    state["some_extra.weight"] = torch.zeros(2, 2)
    with pytest.raises(OfficialStateDictError) as info:
        load_official_state_dict(state, "mosei")
    err = info.value
    assert isinstance(err, ValueError)
    assert err.unknown == [("some_extra.weight", (2, 2))]
    assert sorted(err.missing) == [("encoder_com.weight", (64, 64, 1)), ("trans_v.layers.3.fc1.bias", (256,))]
    assert sorted(err.mismatched) == [("out_layer.weight", (1, 384), (1, 300)),
                                      ("proj_a.weight", (64, 74, 5), (64, 74, 3))]
    text = str(err)
    for key in ("some_extra.weight", "encoder_com.weight", "trans_v.layers.3.fc1.bias", "proj_a.weight",
                "out_layer.weight", "(64, 74, 5)", "(64, 74, 3)"):
        assert key in text


def test_checkpoint_with_more_layers_than_the_preset_is_refused() -> None:
    state = export_official_state_dict(our_model("mosi", num_layers=5))
    with pytest.raises(OfficialStateDictError) as info:
        load_official_state_dict(state, with_layers(get_preset("mosi").model, 4))
    assert len(info.value.unknown) == 3 * 12
    assert all(".layers.4." in k for k, _ in info.value.unknown)
    assert not info.value.missing and not info.value.mismatched


def test_explicit_input_dims_that_disagree_are_shape_mismatches() -> None:
    state = export_official_state_dict(our_model("mosi"))
    with pytest.raises(OfficialStateDictError) as info:
        load_official_state_dict(state, "mosi", input_dims={"text": 768, "audio": 6, "vision": 20})
    assert info.value.mismatched == [("proj_a.weight", (64, 6, 1), (64, 5, 1))]


def test_data_parallel_prefix_is_accepted() -> None:
    state = export_official_state_dict(our_model("sims"))
    model = load_official_state_dict({f"module.{k}": v for k, v in state.items()}, "sims")
    assert torch.equal(export_official_state_dict(model)["out_layer.weight"], state["out_layer.weight"])


def test_export_returns_compact_copies() -> None:
    """Slices of stacked weights must not be views: saving a view writes the whole stack, and
    editing the export must not edit the model."""
    model = our_model("sims", num_layers=1)
    exported = export_official_state_dict(model)
    w = exported["trans_a.layers.0.fc1.weight"]
    assert w.untyped_storage().nbytes() == w.numel() * w.element_size()
    w.zero_()
    assert model.fusion.layers[0].fc1.weight[1].abs().sum() > 0


def test_export_needs_the_three_benchmark_modalities() -> None:
    model = DecAlign(with_layers(get_preset("mosi").model, 1), {"text": 8, "audio": 5})
    with pytest.raises(ValueError, match=r"text.*audio.*vision"):
        export_official_state_dict(model)


def test_modality_order_of_the_model_does_not_matter() -> None:
    config = with_layers(get_preset("mosi").model, 1)
    torch.manual_seed(0)
    model = randomize_(DecAlign(config, {"vision": 20, "text": 768, "audio": 5}), seed=2)
    exported = export_official_state_dict(model)
    assert torch.equal(exported["encoder_uni_v.weight"].squeeze(-1), model.decoupler.unique_weight[0])
    assert torch.equal(exported["pde_a.net.3.bias"], model.homogeneity.out.bias[2])
    back = from_official(exported, model.modalities)
    for key, value in model.state_dict().items():
        assert torch.equal(back[key], value), key


def test_gradients_convert_like_weights() -> None:
    model = our_model("mosi", num_layers=1)
    grads = {k: torch.full_like(p, 1.0) for k, p in model.named_parameters()}
    official = to_official(grads, model.modalities)
    assert set(official) == set(export_official_state_dict(model))


# ----------------------------------------------------------------------------- files


def test_checkpoint_file_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    model = randomize_(our_model("sims", num_layers=1), seed=3)
    path = tmp_path / "decalign_sims.pth"
    torch.save(export_official_state_dict(model), path)
    loaded = load_official_checkpoint(path, with_layers(get_preset("sims").model, 1))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": export_official_state_dict(model), "epoch": 3}, wrapped)
    loaded = load_official_checkpoint(wrapped, with_layers(get_preset("sims").model, 1))
    assert torch.equal(loaded.head.linear.weight, model.head.linear.weight)


def test_truncated_checkpoint_gives_an_error_naming_the_file(tmp_path) -> None:
    path = tmp_path / "broken.pth"
    torch.save(export_official_state_dict(our_model("sims", num_layers=1)), path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"broken\.pth"):
        load_official_checkpoint(path, "sims")
    with pytest.raises(FileNotFoundError, match=r"absent\.pth"):
        load_official_checkpoint(tmp_path / "absent.pth", "sims")


class _Payload:
    """Stands for an arbitrary pickled object: ``weights_only`` loading must refuse it."""

    def __reduce__(self):
        return (print, ("this would run on load",))


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path) -> None:
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"out_layer.weight": _Payload()}, fh, protocol=2)
    with pytest.raises(ValueError, match=r"evil\.pth"):
        load_official_checkpoint(path, "sims")


def test_key_problems_in_a_file_name_the_file(tmp_path) -> None:
    path = tmp_path / "other_preset.pth"
    torch.save(export_official_state_dict(our_model("mosi", num_layers=1)), path)
    with pytest.raises(OfficialStateDictError, match=r"other_preset\.pth") as info:
        load_official_checkpoint(path, with_layers(get_preset("sims").model, 1))  # d 32, kernel 5
    assert ("encoder_com.weight", (32, 32, 1), (64, 64, 1)) in info.value.mismatched


def test_unreadable_widths_are_reported_with_the_other_problems() -> None:
    state = export_official_state_dict(our_model("mosi", num_layers=1))
    del state["proj_v.weight"]
    del state["out_layer.weight"]
    del state["out_layer.bias"]
    state["extra"] = torch.zeros(1)
    with pytest.raises(OfficialStateDictError, match="input_dims") as info:
        load_official_state_dict(state, with_layers(get_preset("mosi").model, 1))
    assert sorted(info.value.missing) == [("out_layer.bias", ("?",)), ("out_layer.weight", ("?", 384)),
                                          ("proj_v.weight", (64, "?", 1))]
    assert info.value.unknown == [("extra", (1,))]
    # Given explicitly, the same widths need no keys to be read from.
    with pytest.raises(OfficialStateDictError) as info:
        load_official_state_dict(state, with_layers(get_preset("mosi").model, 1),
                                 input_dims={"text": 768, "audio": 5, "vision": 20}, num_outputs=1)
    assert ("proj_v.weight", (64, 20, 1)) in info.value.missing
