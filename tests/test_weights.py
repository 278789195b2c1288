"""Backbone weights: 'none', 'imagenet' (offline behaviour) and local state-dict files."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.hub
import torchvision

from geofm.core import weights
from geofm.core.errors import ConfigError, InputError
from geofm.core.model import build_model
from geofm.core.weights import load_backbone_weights


class Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_none_gives_no_state() -> None:
    assert load_backbone_weights("resnet18", "none") is None


def test_unknown_backbone_lists_choices() -> None:
    with pytest.raises(ConfigError, match="resnet18, resnet34, resnet50, resnet101"):
        load_backbone_weights("vgg16", "none")


def test_imagenet_offline_names_the_local_file_option(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty cache: a download is needed

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "urlopen", offline)
    with pytest.raises(ConfigError) as err:
        load_backbone_weights("resnet18", "imagenet")
    text = str(err.value)
    assert "resnet18" in text and "download failed" in text and "pass the file as the weights" in text
    assert torchvision.models.ResNet18_Weights.DEFAULT.url in text


def test_a_firewall_that_drops_packets_fails_the_fetch_in_seconds_not_minutes(monkeypatch, tmp_path) -> None:
    """A download server that never answers (packets dropped, no refusal) would keep a plain download waiting for
    minutes; geofm gives the server (or the environment's proxy) a few seconds to accept, then says so."""
    import socket

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.org:3128")
    asked = []

    def silent(address, timeout=None):
        asked.append((address, timeout))
        raise socket.timeout("timed out")

    monkeypatch.setattr(socket, "create_connection", silent)
    monkeypatch.setattr(torch.hub, "urlopen", lambda *a, **k: pytest.fail("downloaded without a reachable server"))
    with pytest.raises(ConfigError) as err:
        load_backbone_weights("resnet18", "imagenet")
    assert asked == [(("proxy.example.org", 3128), weights.CONNECT_TIMEOUT_S)]  # the proxy the user configured
    assert f"proxy.example.org did not answer within {weights.CONNECT_TIMEOUT_S:g} s" in str(err.value)
    monkeypatch.delenv("HTTPS_PROXY")
    asked.clear()
    with pytest.raises(ConfigError):
        load_backbone_weights("resnet18", "imagenet")
    assert asked == [(("download.pytorch.org", 443), weights.CONNECT_TIMEOUT_S)]


def test_offline_training_goes_on_from_scratch_with_a_note(monkeypatch, tmp_path) -> None:
    """With a notes list (the training task passes one), unreachable ImageNet weights are not a failed run."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "urlopen", offline)
    notes: list[str] = []
    model = build_model("resnet18", "fpn", in_channels=5, num_classes=3, weights="imagenet", notes=notes)
    assert model(torch.randn(1, 5, 64, 64)).shape == (1, 3, 64, 64)
    (note,) = notes
    assert "could not get the ImageNet weights for resnet18" in note and "random weights" in note
    assert "resnet18-f37072fd.pth" in note and str(tmp_path) in note  # where to put the file so geofm finds it


def test_imagenet_uses_torchvision_default_weights(monkeypatch, resnet18_weights) -> None:
    calls = []

    def cached(self, *args, **kwargs):
        calls.append(self)
        return torch.load(resnet18_weights, weights_only=True)

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", cached)
    monkeypatch.setattr(weights, "check_reachable", lambda url: None)  # as online: the server answers
    state = load_backbone_weights("resnet18", "imagenet")
    assert calls == [torchvision.models.ResNet18_Weights.DEFAULT]
    assert "conv1.weight" in state and not any(k.startswith("fc.") for k in state)


def test_local_file_is_loaded_without_fc(resnet18_weights) -> None:
    saved = torch.load(resnet18_weights, weights_only=True)
    state = load_backbone_weights("resnet18", resnet18_weights)
    assert set(state) == {k for k in saved if not k.startswith("fc.")}
    assert torch.equal(state["layer4.1.bn2.weight"], saved["layer4.1.bn2.weight"])


def test_local_file_rgb_kernels_survive_in_adapted_conv(resnet18_weights) -> None:
    rgb = torch.load(resnet18_weights, weights_only=True)["conv1.weight"]
    model = build_model("resnet18", "simple", in_channels=5, num_classes=2, weights=resnet18_weights)
    conv = model.backbone.conv1.weight
    assert conv.shape == (64, 5, 7, 7)
    torch.testing.assert_close(conv[:, :3], rgb * 3 / 5)
    torch.testing.assert_close(
        model.backbone.layer1[0].conv1.weight, torch.load(resnet18_weights, weights_only=True)["layer1.0.conv1.weight"]
    )


def test_missing_file(tmp_path) -> None:
    with pytest.raises(InputError, match="does not exist") as err:
        load_backbone_weights("resnet18", tmp_path / "nope.pth")
    assert "nope.pth" in str(err.value) and "imagenet" in str(err.value)


def test_garbled_file(tmp_path) -> None:
    path = tmp_path / "garbled.pth"
    path.write_bytes(os.urandom(2000))
    with pytest.raises(InputError, match="cannot read the weights file") as err:
        load_backbone_weights("resnet18", path)
    assert "garbled.pth" in str(err.value)


def test_not_a_state_dict(tmp_path) -> None:
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(InputError, match="state dict"):
        load_backbone_weights("resnet18", path)


def test_wrong_architecture(resnet18_weights, tmp_path) -> None:
    state = torch.load(resnet18_weights, weights_only=True)
    state["conv1.weight"] = torch.zeros(64, 4, 7, 7)
    del state["layer4.1.bn2.bias"]
    path = tmp_path / "other.pth"
    torch.save(state, path)
    with pytest.raises(InputError) as err:
        load_backbone_weights("resnet18", path)
    text = str(err.value)
    assert "other.pth" in text and "resnet18" in text and "conv1.weight" in text and "layer4.1.bn2.bias" in text
    with pytest.raises(InputError, match="do not fit a torchvision resnet34"):
        load_backbone_weights("resnet34", resnet18_weights)


def test_pickled_code_is_refused(tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": Evil(marker)}, path)
    with pytest.raises(InputError, match="cannot read"):
        load_backbone_weights("resnet18", path)
    assert not marker.exists()
