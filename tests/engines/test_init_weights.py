"""``init_weights``: a run starts from a weights file (real recipe, shipped weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medfuse.engines.recipes import load_config
from medfuse.engines.run_config import RunSettings, build_components
from medfuse.errors import InputError
from medfuse.nets.pretrained import pretrained_path
from tests.helpers import REPO

RECIPE = [REPO / "pipelines/ecfusion_spect-mri.json", REPO / "pipelines/cpu_reduced_ecfusion.json",
          REPO / "pipelines/ecfusion_identity_output.json"]
FAST = ["loss#lam=0", "train_limit=1", "val_limit=1"]


def _build(*overrides: str):
    parser = load_config(RECIPE, [*FAST, *overrides])
    return build_components(parser, RunSettings.from_parser(parser), torch.device("cpu"))


def test_the_network_starts_from_the_file_with_the_configs_own_output() -> None:
    """Every tensor from the file (another task's shipped weights); the output activation stays
    the config's (identity, where the file was trained with the clamp); the optimiser steps it."""
    from safetensors.torch import load_file

    src = pretrained_path("ecfusion", "ct-mri")
    comp = _build(f"init_weights={src}")
    state = load_file(str(src))
    assert all(torch.equal(v, state[k]) for k, v in comp.model.state_dict().items())
    assert comp.net_kwargs["out_activation"] == "identity"
    assert type(comp.model.decoder[-1]).__name__ == "ClipInEval"
    fresh = _build()  # the seeded initialisation differs from the file
    assert not torch.equal(fresh.model.decoder[0].weight, comp.model.decoder[0].weight)
    params = {id(p) for g in comp.optimizer.param_groups for p in g["params"]}
    assert params == {id(p) for p in comp.model.parameters()}  # the loaded tensors are trained


@pytest.mark.parametrize("what", ["missing", "other network", "not safetensors"])
def test_a_bad_init_file_fails_in_one_line(tmp_path: Path, what: str) -> None:
    path = {"missing": tmp_path / "none.safetensors",
            "other network": pretrained_path("s3imfusion", "ct-mri"),
            "not safetensors": tmp_path / "x.safetensors"}[what]
    if what == "not safetensors":
        path.write_text("not a weights file")
    with pytest.raises(InputError) as exc:
        _build(f"init_weights={path}")
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg


@pytest.mark.slow
def test_a_resumed_run_keeps_the_digest_of_the_file_it_started_from(
        tmp_path: Path, harvard_dir: Path) -> None:
    """``config.json`` records the ``init_weights`` file's sha256 at the first start; a resume
    keeps it after the file was replaced (here by the run's own exported weights, as shipping a
    fine-tune does), and the model card's ship step reads it from there."""
    import json
    import shutil
    import sys

    from medfuse.engines.run_folder import INIT_DIGEST_KEY
    from medfuse.engines.workflow import run_training
    from medfuse.nets.pretrained import sha256

    init = tmp_path / "start.safetensors"
    shutil.copyfile(pretrained_path("ecfusion", "spect-mri"), init)
    first = sha256(init)

    def config(epochs: int):
        return load_config(RECIPE, [*FAST, "input_size=64", "validation#metrics=[\"Qabf\"]",
                                    "trainer#num_workers=0", "trainer#amp=off", "device=cpu",
                                    f"trainer#max_epochs={epochs}", f"init_weights={init}",
                                    f"data_root={json.dumps(str(harvard_dir))}"])

    run = tmp_path / "run"
    run_training(config(1), output_dir=run, progress=False)
    assert json.loads((run / "config.json").read_text())[INIT_DIGEST_KEY] == first
    shutil.copyfile(run / "ecfusion-spect-mri.safetensors", init)  # the run's weights "shipped"
    assert sha256(init) != first
    run_training(config(2), output_dir=run, resume="auto", progress=False)
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["init_weights"] == str(init) and recorded[INIT_DIGEST_KEY] == first

    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from ship_weights import init_digest
    finally:
        sys.path.remove(str(REPO / "scripts"))
    assert init_digest(recorded) == first
    # a fresh run from the replaced file records the new digest
    run_training(config(1), output_dir=tmp_path / "fresh", progress=False)
    assert json.loads((tmp_path / "fresh" / "config.json").read_text())[INIT_DIGEST_KEY] \
        == sha256(init)
