"""The model config: family and kind (``model=wan21_i2v model/kind=tiny``), every mapping declared once in its
family's registry entry (videoshop/families.py), and every old ``model=`` spelling composing the node it composed
when each was a conf/model/*.yaml file (tests/data/model_nodes_5954a90.json: the resolved ``cfg.model`` of each
choice and preset at main 5954a90, so ``edit_hash`` and the goldens are unchanged)."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf

import videoshop_bench.experiments  # noqa: F401  (the config store)
from videoshop.families import FAMILIES, model_mapping, model_preset, model_presets

ROOT = Path(__file__).resolve().parents[1]
BEFORE = json.loads((ROOT / "tests" / "data" / "model_nodes_5954a90.json").read_text())


@pytest.fixture(scope="module", autouse=True)
def hydra_conf():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        yield


def _model(*overrides):
    return OmegaConf.to_container(compose("config", overrides=list(overrides)).model, resolve=True)


@pytest.mark.parametrize("choice", sorted(BEFORE))
def test_every_old_model_choice_and_preset_composes_the_node_it_composed_before(choice):
    overrides = [] if choice == "(default)" else [choice] if "=" in choice else [f"model={choice}"]
    node = _model(*overrides)
    assert node == BEFORE[choice]
    assert list(node) == list(BEFORE[choice])  # same key order: `--cfg job` prints as before


def test_family_and_kind_compose_the_registry_mapping():
    for fam in FAMILIES:
        for kind in fam.kinds():
            assert _model(f"model={fam.name}", f"model/kind={kind}") == model_mapping(fam.name, kind)
    assert _model("model=tiny", "model/kind=random")["name"] == "svd_random"  # a name selects family and kind
    assert _model("model=svd", "model/kind=toy") == BEFORE["toy"]


def test_a_kind_the_family_lacks_is_one_error_naming_its_kinds():
    with pytest.raises(HydraException, match="model_entry/wan21_i2v/toy"):
        _model("model=wan21_i2v", "model/kind=toy")
    with pytest.raises(ValueError, match="model=wan21_i2v model/kind=toy: the family has the kinds pretrained, "
                                         "random, tiny"):
        model_mapping("wan21_i2v", "toy")


def test_the_cli_presets_are_the_registry_mappings():
    presets = model_presets()
    assert {n: presets[n] for n in BEFORE if n in presets} == {n: v for n, v in BEFORE.items() if n in presets}
    assert set(BEFORE) - set(presets) == {"(default)", "experiment=paper_table2", "experiment=paper_table3",
                                          "experiment=paper_table5", "experiment=regression", "smoke=on"}
    with pytest.raises(ValueError, match="model=nope: expected one of svd, "):
        model_preset("nope")


def test_a_checkpoints_scheduler_becomes_the_invertible_sampler_its_family_declares():
    """Wan's repos ship UniPC (multistep): Euler at its flow_shift; CogVideoX's DPM (stochastic): DDIM on the same
    noise schedule; a sampler that already is the invertible one is kept."""
    import torch
    from diffusers import (CogVideoXDDIMScheduler, CogVideoXDPMScheduler, FlowMatchEulerDiscreteScheduler,
                           UniPCMultistepScheduler)

    from videoshop.cogvideox import cogvideox_i2v_configs

    wan = FAMILIES.get("wan21_i2v").resolve("sampler")
    euler = wan(UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0))
    assert isinstance(euler, FlowMatchEulerDiscreteScheduler) and euler.config.shift == 3.0
    assert wan(euler) is euler
    cog = FAMILIES.get("cogvideox_i2v").resolve("sampler")
    dpm = CogVideoXDPMScheduler(**cogvideox_i2v_configs("tiny")["scheduler"])
    ddim = cog(dpm)
    assert isinstance(ddim, CogVideoXDDIMScheduler) and torch.equal(ddim.alphas_cumprod, dpm.alphas_cumprod)
    assert cog(ddim) is ddim


def test_a_familys_own_keys_are_checked_before_any_work_from_their_one_declaration():
    from videoshop_bench.experiments.config_schema import validate_config

    cfg = compose("config", overrides=["model=ltx_i2v", "model/kind=tiny", "model.max_sequence_length=abc",
                                       "model.decode_timestep=2", "device=cpu", "paths.output=."])
    problems = validate_config(cfg)
    assert "model.max_sequence_length=abc: must be an integer (got 'abc')" in problems
    assert any(p.startswith("model.decode_timestep=2: must be") for p in problems)
    ok = compose("config", overrides=["model=wan22_i2v", "model/kind=tiny", "model.guidance_scale_2=3.5",
                                      "device=cpu", "paths.output=."])
    assert not [p for p in validate_config(ok) if p.startswith("model.")]
    assert FAMILIES.get("wan22_i2v").option_checks()["guidance_scale_2"].nullable


def test_the_kind_does_not_name_the_run_folder_twice():
    """model.name (in the run folder's path) already says the kind: `model/kind=tiny` is not an override folder."""
    cfg = compose("config", overrides=["model=wan21_i2v", "model/kind=tiny"], return_hydra_config=True)
    assert "model/kind" in cfg.hydra.job.config.override_dirname.exclude_keys
    assert cfg.hydra.runtime.choices["model/kind"] == "tiny"
