"""ArcFace face embeddings (Deng et al., arXiv 1801.07698): InsightFace's IResNet, in torch.

Anti-I2V's ISM is the ArcFace cosine similarity between the face in generated frames and the
photo's face. The network here is the IResNet of InsightFace's ``arcface_torch`` (iresnet18/34/50/100:
3x3 stem with PReLU, four stages of pre-activation "IBasicBlock"s (BN, conv, BN, PReLU, conv(stride),
BN, + shortcut), final BN, flatten, a linear layer from 512x7x7 to the embedding and a BatchNorm1d),
written from the paper's description and the published layout so that an ``arcface_torch``
``backbone.pth`` converted to safetensors loads key for key (``conv1.weight``, ``bn1.*``,
``prelu.weight``, ``layer{1..4}.{j}.{bn1,conv1,bn2,prelu,conv2,bn3}.*``,
``layer{s}.0.downsample.{0,1}.*``, ``bn2.*``, ``fc.*``, ``features.*``). ``config.json``:
``{"layers": [3, 4, 14, 3]}`` (iresnet50, the default), ``[3, 13, 30, 3]`` for iresnet100.

Why torch and not InsightFace's ONNX files through onnxruntime: the embedding stays differentiable
(a method can use it as a loss), no extra runtime dependency is added, and the same tiny-model test
covers the real loading code. Input: face crops ``(B, 3, H, W)`` in [0, 1] (resized to 112x112, RGB,
scaled to [-1, 1] as ``arcface_torch``'s inference does). Choice: crops come from dlib's detector box
(:mod:`.faces`), not the 5-point similarity alignment ArcFace was trained with; that lowers absolute
similarities a little and is the same for clean and protected frames.

Supplied by ``--arcface DIR`` or ``STILLGUARD_ARCFACE``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from . import _folder, _prep

KIND, WHAT = "arcface", "ArcFace (IResNet) face encoder"
SIZE = 112


class IBasicBlock(nn.Module):
    def __init__(self, c_in: int, c: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in, eps=1e-5)
        self.conv1 = nn.Conv2d(c_in, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c, eps=1e-5)
        self.prelu = nn.PReLU(c)
        self.conv2 = nn.Conv2d(c, c, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c, eps=1e-5)
        self.downsample = None
        if stride != 1 or c_in != c:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c, 1, stride, bias=False),
                                            nn.BatchNorm2d(c, eps=1e-5))  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (self.downsample(x) if self.downsample is not None else x)


class IResNet(nn.Module):
    """IResNet. Shape: ``(B, 3, 112, 112)`` in [-1, 1] -> ``(B, num_features)``."""

    def __init__(self, layers: Sequence[int] = (3, 4, 14, 3), widths: Sequence[int] = (64, 128, 256, 512),
                 num_features: int = 512) -> None:  # fmt: skip
        super().__init__()
        stem = widths[0]
        self.conv1 = nn.Conv2d(3, stem, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem, eps=1e-5)
        self.prelu = nn.PReLU(stem)
        c_in = stem
        for s, (n, c) in enumerate(zip(layers, widths, strict=True)):
            blocks = [IBasicBlock(c_in if j == 0 else c, c, 2 if j == 0 else 1) for j in range(n)]
            self.register_module(f"layer{s + 1}", nn.Sequential(*blocks))
            c_in = c
        self.bn2 = nn.BatchNorm2d(c_in, eps=1e-5)
        self.fc = nn.Linear(c_in * 7 * 7, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)

    def forward(self, x: Tensor) -> Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.features(self.fc(torch.flatten(self.bn2(x), 1)))


class ArcFace:
    """``ArcFace.from_folder(dir)(faces) -> (B, D)`` identity embeddings (compare by cosine)."""

    def __init__(self, net: IResNet, config: dict, folder: Path | None = None) -> None:
        self.net = net.eval().requires_grad_(False)
        self.config, self.folder = config, folder

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str] | None = None, device: str = "cpu",
                    dtype: torch.dtype = torch.float32) -> ArcFace:  # fmt: skip
        path = _folder.resolve(KIND, folder, WHAT)
        cfg = {"layers": [3, 4, 14, 3], "widths": [64, 128, 256, 512], "num_features": 512}
        cfg.update(_folder.read_config(path, WHAT, KIND))
        net = IResNet(cfg["layers"], cfg["widths"], cfg["num_features"])
        _folder.load_strict(net, _folder.load_state(path, KIND), path, KIND)
        return cls(net.to(device=device, dtype=dtype), cfg, path)

    @classmethod
    def tiny(cls, seed: int = 0) -> ArcFace:
        """IResNet with one block a stage and narrow widths, random weights (tests)."""
        torch.manual_seed(seed)
        cfg = {"layers": [1, 1, 1, 1], "widths": [8, 8, 16, 16], "num_features": 32}
        return cls(IResNet(cfg["layers"], cfg["widths"], cfg["num_features"]), cfg)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        return _folder.save_state(self.net, Path(folder), self.config)

    def __call__(self, faces: Tensor) -> Tensor:
        x = _prep.squash(_prep.check(faces, "face crops"), SIZE)
        p = next(self.net.parameters())
        return self.net((x * 2 - 1).to(p))

    def similarity(self, a: Tensor, b: Tensor) -> Tensor:
        """Cosine similarity of the embeddings. Shape: ``(B,3,H,W)`` x2 -> ``(B,)``."""
        return _prep.cosine(self(a), self(b))
