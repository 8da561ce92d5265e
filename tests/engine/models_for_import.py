"""Models the import tests bring in, written in plain torch.

torchvision 0.28.0 (the release for torch 2.13.0) does not load beside the CPU build of torch
2.13.0 here (`RuntimeError: operator torchvision::nms does not exist` on import), so ResNet is
written out as torchvision's `resnet18`/`resnet50` define it: the same modules, names, options
and forward, hence the same 11,689,512 and 25,557,032 parameters and the same state dict keys.
"""

import torch
from torch import nn


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def resnet18(num_classes=1000):
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes)


def resnet50(num_classes=1000):
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes)


class SortGate(nn.Module):
    """A custom forward with a Python-side op no registry op expresses: each sample's features
    re-weighted by their rank (a sort)."""

    def __init__(self, features, temperature=1.0):
        super().__init__()
        self.scale = nn.Linear(features, features)
        self.temperature = temperature

    def forward(self, x):
        ranked = torch.sort(x, dim=-1).values
        return x * torch.sigmoid(self.scale(ranked) / self.temperature)


class GatedMLP(nn.Module):
    def __init__(self, features=8, hidden=16, classes=3):
        super().__init__()
        self.inp = nn.Linear(features, hidden)
        self.act = nn.ReLU()
        self.gate = SortGate(hidden, temperature=2.0)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.out(self.gate(self.act(self.inp(x))))


def seeded(name="resnet18", seed=0, **kwargs):
    """A model built after seeding torch, so a test can build the very same weights again."""
    torch.manual_seed(seed)
    return {"resnet18": resnet18, "resnet50": resnet50, "gated": GatedMLP}[name](**kwargs)


class ShapeBranch(nn.Module):
    """Python control flow on a tensor's shape in the model's own forward: torch.fx cannot trace
    it (a traced value in an `if`), torch.export specialises it."""

    def __init__(self, classes=4):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, classes)

    def forward(self, x):
        if x.dim() == 3:  # a single image without its batch
            x = x.unsqueeze(0)
        x = nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.fc(x.flatten(1))


class ScaledOutput(nn.Module):
    """A Python-side op (a scale by a constant) in the model's own forward: nothing smaller than
    the whole model can be kept as it is."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x) * 0.5


class AttentionClassifier(nn.Module):
    """A sequence model on torch.nn's own attention (self-attention, batch first)."""

    def __init__(self, dim=16, heads=4, classes=3):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.head = nn.Linear(dim * 6, classes)

    def forward(self, x):
        h = self.norm(x)
        y, _ = self.attn(h, h, h, need_weights=False)
        return self.head(torch.flatten(x + y, 1))
