"""Weights files: save/load round trip, safe loading, and one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medfuse.errors import WeightsError
from medfuse.nets import get_network, load_pretrained, load_weights, save_weights


@pytest.mark.parametrize("name,kwargs", [("ecfusion", {"features": 8}), ("s3imfusion", {})])
def test_round_trip_is_bit_exact(tmp_path: Path, name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    net = get_network(name, **kwargs)
    path = save_weights(net, tmp_path / f"{name}.safetensors", name, kwargs, task="ct-mri")
    assert not list(tmp_path.glob("*.tmp"))
    back = load_weights(path)
    assert type(back) is type(net) and not back.training
    for (k, v), (k2, v2) in zip(net.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_torch_checkpoint_loads_safely(tmp_path: Path) -> None:
    net = get_network("ecfusion", features=8)
    torch.save({"model": net.state_dict(), "network": "ecfusion", "kwargs": {"features": 8}},
               tmp_path / "c.pt")
    assert torch.equal(load_weights(tmp_path / "c.pt").decoder[0].weight, net.decoder[0].weight)
    # an object the safe unpickler refuses: one line naming the file and the reason, no advice to
    # load unsafely
    import datetime

    torch.save({"model": net.state_dict(), "when": datetime.date(2026, 1, 1)},
               tmp_path / "unsafe.pt")
    with pytest.raises(WeightsError) as err:
        load_weights(tmp_path / "unsafe.pt", network="ecfusion")
    msg = str(err.value)
    assert msg.startswith(str(tmp_path / "unsafe.pt")) and "\n" not in msg and "weights_only" in msg
    assert "datetime.date" in msg and "will likely succeed" not in msg


def test_bad_files_fail_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint" * 4)
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    net = get_network("s3imfusion")
    save_weights(net, tmp_path / "s3im.safetensors", "s3imfusion")
    cases = {
        tmp_path / "absent.safetensors": "not found",
        tmp_path / "junk.pt": "not a readable PyTorch checkpoint",
        tmp_path / "junk.safetensors": "not a readable safetensors file",
    }
    for path, reason in cases.items():
        with pytest.raises(WeightsError) as err:
            load_weights(path, network="ecfusion")
        assert reason in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(WeightsError, match="do not match network 'ecfusion'"):
        load_weights(tmp_path / "s3im.safetensors", network="ecfusion")


def test_missing_shipped_weights_is_a_clear_error(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(WeightsError, match="unknown task"):
        load_pretrained("ecfusion", task="xray-mri")
    import medfuse.nets.pretrained as pretrained

    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path)  # an install without the weights
    with pytest.raises(WeightsError) as err:
        load_pretrained("s3imfusion", task="spect-mri")
    msg = str(err.value)
    assert ("no shipped weights for s3imfusion on spect-mri (shipped: none)" in msg
            and "\n" not in msg)
