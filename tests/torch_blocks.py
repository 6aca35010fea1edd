"""Model blocks of torchvision-class networks and transformer encoders, defined
here because torchvision's CPU wheels do not install. Used by the tests (when
torch is installed) and by ``tests/data/make_torch_onnx.py``, which wrote the
exports under ``tests/data/torch_onnx/`` so that CI without torch reads the same
files PyTorch's exporter writes."""

import torch
from torch import nn
from torch.nn import functional as F


def conv_bn(cin, cout, k=3, stride=1, groups=1, act=nn.ReLU6):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(inplace=True) if act in (nn.ReLU, nn.ReLU6, nn.Hardswish) else act())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2: expand 1x1, depthwise 3x3, project 1x1; ReLU6; residual when shapes allow."""

    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.block = nn.Sequential(conv_bn(cin, hidden, 1), conv_bn(hidden, hidden, 3, stride, groups=hidden),
                                   conv_bn(hidden, cout, 1, act=None))

    def forward(self, x):
        return x + self.block(x) if self.use_res else self.block(x)


class MobileNetV2Tiny(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(conv_bn(3, 8, 3, 2), InvertedResidual(8, 8, 1, 2),
                                      InvertedResidual(8, 16, 2, 3), InvertedResidual(16, 16, 1, 3))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(16, classes))

    def forward(self, x):
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


class SqueezeExcite(nn.Module):
    """MobileNetV3's squeeze-excite with a hard sigmoid gate."""

    def __init__(self, channels, squeeze):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s


class MobileNetV3Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 16, 3, 2, act=nn.Hardswish)
        self.dw = conv_bn(16, 16, 3, 1, groups=16, act=nn.Hardswish)
        self.se = SqueezeExcite(16, 8)
        self.project = conv_bn(16, 16, 1, act=None)
        self.head = nn.Sequential(nn.Linear(16, 32), nn.Hardswish(), nn.Linear(32, 10))

    def forward(self, x):
        x = self.stem(x)
        x = x + self.project(self.se(self.dw(x)))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


def channel_shuffle(x, groups):
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, -1, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2's basic unit: split channels, transform one half, concatenate, shuffle."""

    def __init__(self, channels):
        super().__init__()
        half = channels // 2
        self.branch = nn.Sequential(conv_bn(half, half, 1, act=nn.ReLU), conv_bn(half, half, 3, groups=half, act=None),
                                    conv_bn(half, half, 1, act=nn.ReLU))

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat((a, self.branch(b)), dim=1), 2)


class ShuffleNetTiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 16, 3, 2, act=nn.ReLU)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.units = nn.Sequential(ShuffleUnit(16), ShuffleUnit(16))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.units(self.pool(self.stem(x)))
        return self.fc(x.mean([2, 3]))


class Fire(nn.Module):
    def __init__(self, cin, squeeze, expand):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1 = nn.Conv2d(squeeze, expand, 1)
        self.expand3 = nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.expand1(x)), F.relu(self.expand3(x))], 1)


class SqueezeNetTiny(nn.Module):
    """SqueezeNet 1.1's shape: ceil_mode pooling between fire modules, a conv classifier."""

    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, 2), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, 2, ceil_mode=True), Fire(16, 8, 16),
                                      nn.MaxPool2d(3, 2, ceil_mode=True), Fire(32, 8, 16))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(32, classes, 1), nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


class LayerNorm2d(nn.LayerNorm):
    """ConvNeXt's channels-first LayerNorm (permute, normalise, permute back)."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, 4 * dim)
        self.pw2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, x):
        h = self.dwconv(x).permute(0, 2, 3, 1)
        h = self.pw2(F.gelu(self.pw1(self.norm(h))))
        return x + (self.gamma * h).permute(0, 3, 1, 2)


class ConvNeXtTiny(nn.Module):
    def __init__(self, dim=16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dim, 4, 4), LayerNorm2d(dim, eps=1e-6))
        self.blocks = nn.Sequential(ConvNeXtBlock(dim), ConvNeXtBlock(dim))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(self.norm(x.mean([-2, -1])))


class ViTTiny(nn.Module):
    """Patch embedding, class token, position embedding, pre-norm encoder layers, head on the class token."""

    def __init__(self, image=32, patch=8, dim=32, heads=4, depth=2):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return self.head(self.norm(self.encoder(x))[:, 0])


class TextEncoder(nn.Module):
    """A 2-layer ``nn.TransformerEncoder`` (post-norm, ReLU) over token embeddings, mean-pooled."""

    def __init__(self, vocab=50, dim=32, heads=4, depth=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, 64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(dim, 3)

    def forward(self, ids):
        return self.head(self.encoder(self.embed(ids)).mean(1))


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock, with its module names (conv1, bn1, conv2, bn2, downsample)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """torchvision's resnet18, module for module (its state dict has the same 122 names),
    at 1/8 of its widths by default so that the test data stays small."""

    def __init__(self, width=8, classes=10):
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.conv1, self.bn1 = nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        for n, cout in enumerate(widths, 1):
            stride = 1 if n == 1 else 2
            setattr(self, f"layer{n}", nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        for n in range(1, 5):
            x = getattr(self, f"layer{n}")(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class FPNTiny(nn.Module):
    """A feature-pyramid neck as detectors and segmentation heads have it: a strided
    backbone, then top-down ``F.interpolate`` (nearest x2, bilinear to a size, bilinear with
    align_corners, bicubic) with lateral 1x1 convolutions and adds."""

    def __init__(self, classes=5):
        super().__init__()
        self.c1, self.c2, self.c3 = conv_bn(3, 8, 3, 2), conv_bn(8, 16, 3, 2), conv_bn(16, 32, 3, 2)
        self.l2, self.l1 = nn.Conv2d(16, 32, 1), nn.Conv2d(8, 32, 1)
        self.head = nn.Conv2d(32, classes, 3, padding=1)

    def forward(self, x):
        f1 = self.c1(x)
        f2 = self.c2(f1)
        f3 = self.c3(f2)
        p2 = self.l2(f2) + F.interpolate(f3, scale_factor=2, mode="nearest")
        p1 = self.l1(f1) + F.interpolate(p2, size=f1.shape[-2:], mode="bilinear", align_corners=False)
        out = self.head(p1)
        out = out + F.interpolate(F.avg_pool2d(out, 2), scale_factor=2, mode="bilinear", align_corners=True)
        return F.interpolate(out, scale_factor=2, mode="bicubic", align_corners=False)


class CRNNTiny(nn.Module):
    """A text-line recognizer as OCR projects ship them: convolutions over a line image of any
    width, the height folded into the channels, one class distribution per column."""

    def __init__(self, classes=11):
        super().__init__()
        self.features = nn.Sequential(conv_bn(1, 8), nn.MaxPool2d(2), conv_bn(8, 16), nn.MaxPool2d((2, 1)))
        self.head = nn.Linear(16 * 4, classes)

    def forward(self, x):                      # (B, 1, 16, W)
        f = self.features(x)                   # (B, 16, 4, W / 2)
        b, c, h, w = f.shape
        return self.head(f.permute(0, 3, 1, 2).reshape(b, w, c * h)).log_softmax(-1)


def perturb_batchnorm(model, seed=0):
    """Non-trivial running statistics, as a trained model has."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model


# name -> (factory, example input)
BLOCKS = {
    "mobilenet_v2": (MobileNetV2Tiny, lambda: torch.randn(1, 3, 32, 32)),
    "mobilenet_v3": (MobileNetV3Block, lambda: torch.randn(1, 3, 32, 32)),
    "shufflenet_v2": (ShuffleNetTiny, lambda: torch.randn(1, 3, 32, 32)),
    "squeezenet": (SqueezeNetTiny, lambda: torch.randn(1, 3, 33, 33)),
    "convnext": (ConvNeXtTiny, lambda: torch.randn(1, 3, 32, 32)),
    "vit": (ViTTiny, lambda: torch.randn(1, 3, 32, 32)),
    "transformer_encoder": (TextEncoder, lambda: torch.randint(0, 50, (1, 12))),
    "fpn": (FPNTiny, lambda: torch.randn(1, 3, 32, 32)),
    "crnn": (CRNNTiny, lambda: torch.randn(1, 1, 16, 40)),
}

# blocks also exported with a dynamic batch axis (shape arithmetic on the batch size)
DYNAMIC = ("shufflenet_v2", "vit", "transformer_encoder")
# blocks also exported with every axis but the channels dynamic: `<name>_any_size.onnx`
# (nn.MultiheadAttention is left out: its export bakes the sizes it was traced at into a reshape)
ANY_SIZE = {"crnn": ({0: "batch", 3: "width"}, {0: "batch", 1: "columns"})}


def export(name, path, seed=0, dynamic_batch=False, any_size=False):
    """Export block ``name`` with ``torch.onnx.export`` (opset 17, eval mode); returns the example
    input. ``dynamic_batch``: a dynamic batch axis; ``any_size``: the axes of ``ANY_SIZE``."""
    factory, example = BLOCKS[name]
    torch.manual_seed(seed)
    model = perturb_batchnorm(factory(), seed).eval()
    x = example()
    kwargs = {"dynamic_axes": {"input": {0: "batch"}, "output": {0: "batch"}}} if dynamic_batch else {}
    if any_size:
        kwargs = {"dynamic_axes": dict(zip(("input", "output"), ANY_SIZE[name]))}
    # not under no_grad: nn.TransformerEncoder would take its fused fast path, which has no ONNX export
    torch.onnx.export(model, (x,), str(path), opset_version=17, input_names=["input"], output_names=["output"],
                      dynamo=False, **kwargs)
    return x.numpy()


def save_state_dict(path, seed=0):
    """ResNet18's state dict with ``safetensors.torch.save_file``, and its input and output
    (NCHW, eval mode) beside it as ``<path>.io.npz``."""
    import numpy as np
    from safetensors.torch import save_file
    torch.manual_seed(seed)
    model = perturb_batchnorm(ResNet18(), seed).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        y = model(x)
    np.savez(f"{path}.io.npz", input=x.numpy(), output=y.numpy())
