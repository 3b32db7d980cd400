"""ADE20k scene parsing network of LaMa's segmentation-aware metrics: ResNet50-dilated encoder + PPM-deepsup decoder.

The network of CSAIL's semantic-segmentation-pytorch (Zhou et al., "Scene Parsing through ADE20K Dataset", CVPR 2017)
as LaMa's evaluation builds and calls it (advimman/lama models/ade20k/base.py, SegmentationModule with
use_default_normalization=True, used by SegmentationAwareScore in saicinpainting/evaluation/losses/base_loss.py):

- input: RGB in [0, 1] (uint8 / 255), normalised with ImageNet mean/std, at its own size (imgSizes=(-1,): no resize);
- encoder: ResNet-50 with a 3-conv deep stem (64, 64, 128 channels) whose layer3/layer4 strides are replaced by
  dilation 2/4 (output stride 8), returning the four stage outputs;
- decoder (inference branch, use_softmax=True): pyramid pooling (1, 2, 3, 6) on the last stage, concatenated with
  it, a 3×3 conv + BN + ReLU, a 1×1 conv to 150 classes, bilinear upsampling (align_corners=False) to the input
  size and a softmax over classes; the class map is the argmax (torch.max over classes, as LaMa).
  The deep-supervision head (cbr_deepsup, conv_last_deepsup) exists only for training; its tensors are in the
  checkpoint and loaded (strictly), never run.

Module and tensor names equal the official ones (`encoder.*` = encoder_epoch_20.pth's keys, `decoder.*` =
decoder_epoch_20.pth's), so the released checkpoints load by name, weights-only and strictly. The port is checked
against the official code's outputs on deterministic weights (tests/fixtures/ade20k, tests/test_ade20k_golden.py).
`smoke=True` builds the network on seeded random weights (labelled smoke; class maps are then meaningless).
"""

from __future__ import annotations

import hashlib
import os

import torch
import torch.nn.functional as F
from torch import nn

from matbench import weights as W
from matbench.features.base import SMOKE_SEED, check_u8, seeded
from matbench.models.statecheck import check_state_dict, read_plain_state_dict
from matbench.weights import WeightsFile, register_weights
from matbench.weights import resolve as resolve_weights

NUM_CLASSES = 150
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
_BASE_URL = "http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-resnet50dilated-ppm_deepsup"
_NO_HASH = ("no sha256 is published for this file (CSAIL's model zoo lists none); matbench records the hash of the "
            "first file it reads and refuses a different one later")
ENCODER_WEIGHTS = register_weights(WeightsFile(
    name="ade20k-resnet50dilated-encoder", filename="ade20k-resnet50dilated-ppm_deepsup-encoder_epoch_20.pth",
    url=f"{_BASE_URL}/encoder_epoch_20.pth", manual=_NO_HASH,
    used_by="seg_fid / seg_lpips / seg_ssim (LaMa's segmentation-aware metrics): ADE20k ResNet50-dilated encoder, "
            "CSAIL semantic-segmentation-pytorch (the file LaMa's README downloads)"))
DECODER_WEIGHTS = register_weights(WeightsFile(
    name="ade20k-ppm_deepsup-decoder", filename="ade20k-resnet50dilated-ppm_deepsup-decoder_epoch_20.pth",
    url=f"{_BASE_URL}/decoder_epoch_20.pth", manual=_NO_HASH,
    used_by="seg_fid / seg_lpips / seg_ssim: ADE20k PPM-deepsup decoder of the same model"))

# ADE20k's 150 classes in index order, as LaMa names them (object150_info.csv, column Name; index = Idx - 1)
CLASS_NAMES = (
    'wall', 'building;edifice', 'sky', 'floor;flooring', 'tree', 'ceiling', 'road;route', 'bed', 'windowpane;window',
    'grass', 'cabinet', 'sidewalk;pavement', 'person;individual;someone;somebody;mortal;soul', 'earth;ground',
    'door;double;door', 'table', 'mountain;mount', 'plant;flora;plant;life', 'curtain;drape;drapery;mantle;pall',
    'chair', 'car;auto;automobile;machine;motorcar', 'water', 'painting;picture', 'sofa;couch;lounge', 'shelf',
    'house', 'sea', 'mirror', 'rug;carpet;carpeting', 'field', 'armchair', 'seat', 'fence;fencing', 'desk',
    'rock;stone', 'wardrobe;closet;press', 'lamp', 'bathtub;bathing;tub;bath;tub', 'railing;rail', 'cushion',
    'base;pedestal;stand', 'box', 'column;pillar', 'signboard;sign', 'chest;of;drawers;chest;bureau;dresser',
    'counter', 'sand', 'sink', 'skyscraper', 'fireplace;hearth;open;fireplace', 'refrigerator;icebox',
    'grandstand;covered;stand', 'path', 'stairs;steps', 'runway', 'case;display;case;showcase;vitrine',
    'pool;table;billiard;table;snooker;table', 'pillow', 'screen;door;screen', 'stairway;staircase', 'river',
    'bridge;span', 'bookcase', 'blind;screen', 'coffee;table;cocktail;table',
    'toilet;can;commode;crapper;pot;potty;stool;throne', 'flower', 'book', 'hill', 'bench', 'countertop',
    'stove;kitchen;stove;range;kitchen;range;cooking;stove', 'palm;palm;tree', 'kitchen;island',
    'computer;computing;machine;computing;device;data;processor;electronic;computer;information;processing;system',
    'swivel;chair', 'boat', 'bar', 'arcade;machine', 'hovel;hut;hutch;shack;shanty',
    'bus;autobus;coach;charabanc;double-decker;jitney;motorbus;motorcoach;omnibus;passenger;vehicle', 'towel',
    'light;light;source', 'truck;motortruck', 'tower', 'chandelier;pendant;pendent', 'awning;sunshade;sunblind',
    'streetlight;street;lamp', 'booth;cubicle;stall;kiosk',
    'television;television;receiver;television;set;tv;tv;set;idiot;box;boob;tube;telly;goggle;box',
    'airplane;aeroplane;plane', 'dirt;track', 'apparel;wearing;apparel;dress;clothes', 'pole', 'land;ground;soil',
    'bannister;banister;balustrade;balusters;handrail', 'escalator;moving;staircase;moving;stairway',
    'ottoman;pouf;pouffe;puff;hassock', 'bottle', 'buffet;counter;sideboard',
    'poster;posting;placard;notice;bill;card', 'stage', 'van', 'ship', 'fountain',
    'conveyer;belt;conveyor;belt;conveyer;conveyor;transporter', 'canopy', 'washer;automatic;washer;washing;machine',
    'plaything;toy', 'swimming;pool;swimming;bath;natatorium', 'stool', 'barrel;cask', 'basket;handbasket',
    'waterfall;falls', 'tent;collapsible;shelter', 'bag', 'minibike;motorbike', 'cradle', 'oven', 'ball',
    'food;solid;food', 'step;stair', 'tank;storage;tank', 'trade;name;brand;name;brand;marque',
    'microwave;microwave;oven', 'pot;flowerpot', 'animal;animate;being;beast;brute;creature;fauna',
    'bicycle;bike;wheel;cycle', 'lake', 'dishwasher;dish;washer;dishwashing;machine',
    'screen;silver;screen;projection;screen', 'blanket;cover', 'sculpture', 'hood;exhaust;hood', 'sconce', 'vase',
    'traffic;light;traffic;signal;stoplight', 'tray',
    'ashcan;trash;can;garbage;can;wastebin;ash;bin;ash-bin;ashbin;dustbin;trash;barrel;trash;bin', 'fan',
    'pier;wharf;wharfage;dock', 'crt;screen', 'plate', 'monitor;monitoring;device', 'bulletin;board;notice;board',
    'shower', 'radiator', 'glass;drinking;glass', 'clock', 'flag',
)


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=dilation * (k // 2), dilation=dilation, bias=False)


class Bottleneck(nn.Module):
    """ResNet-50 bottleneck (1×1, 3×3, 1×1 ×4) with the 3×3 conv's stride / dilation given."""

    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1, downsample: bool = False) -> None:
        super().__init__()
        self.conv1 = _conv(cin, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv(planes, planes, 3, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv(planes, planes * 4, 1)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = (nn.Sequential(_conv(cin, planes * 4, 1, stride), nn.BatchNorm2d(planes * 4))
                           if downsample else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


def _layer(cin: int, planes: int, blocks: int, stride: int, first_dilation: int, dilation: int) -> nn.Sequential:
    # the dilated layers: the first block keeps the stride-2 position at stride 1 with half the dilation
    # (semantic-segmentation-pytorch's _nostride_dilate), the others use the full dilation
    layers = [Bottleneck(cin, planes, stride, first_dilation, downsample=True)]
    layers += [Bottleneck(planes * 4, planes, 1, dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet50Dilated(nn.Module):
    """The encoder: deep stem, max pool, four stages (layer3 dilation 2, layer4 dilation 4; output stride 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv(3, 64, 3, 2), nn.BatchNorm2d(64)
        self.conv2, self.bn2 = _conv(64, 64), nn.BatchNorm2d(64)
        self.conv3, self.bn3 = _conv(64, 128), nn.BatchNorm2d(128)
        self.layer1 = _layer(128, 64, 3, 1, 1, 1)
        self.layer2 = _layer(256, 128, 4, 2, 1, 1)
        self.layer3 = _layer(512, 256, 6, 1, 1, 2)
        self.layer4 = _layer(1024, 512, 3, 1, 2, 4)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.max_pool2d(x, 3, stride=2, padding=1)
        out = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            out.append(x)
        return out


def _cbr(cin: int, cout: int, k: int) -> list[nn.Module]:
    return [_conv(cin, cout, k), nn.BatchNorm2d(cout), nn.ReLU()]


class PPMDeepsup(nn.Module):
    """The decoder: pyramid pooling module + last conv (inference branch); deep-supervision tensors kept for loading."""

    def __init__(self, fc_dim: int = 2048, num_classes: int = NUM_CLASSES, pool_scales: tuple[int, ...] = (1, 2, 3, 6)
                 ) -> None:
        super().__init__()
        self.ppm = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(s), *_cbr(fc_dim, 512, 1)) for s in pool_scales)
        self.cbr_deepsup = nn.Sequential(*_cbr(fc_dim // 2, fc_dim // 4, 3))  # training only
        self.conv_last = nn.Sequential(*_cbr(fc_dim + len(pool_scales) * 512, 512, 3), nn.Dropout2d(0.1),
                                       nn.Conv2d(512, num_classes, 1))
        self.conv_last_deepsup = nn.Conv2d(fc_dim // 4, num_classes, 1)  # training only

    def logits(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Class scores at the encoder's resolution (output stride 8)."""
        c5 = feats[-1]
        size = c5.shape[2:]
        pooled = [F.interpolate(p(c5), size, mode="bilinear", align_corners=False) for p in self.ppm]
        return self.conv_last(torch.cat([c5, *pooled], 1))

    def forward(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        x = F.interpolate(self.logits(feats), size=size, mode="bilinear", align_corners=False)
        return F.softmax(x, dim=1)


class ADE20kSegmenter(nn.Module):
    """uint8 RGB [N, 3, H, W] -> ADE20k class probabilities [N, 150, H, W] or class map [N, H, W] (LaMa's predict)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = ResNet50Dilated()
        self.decoder = PPMDeepsup()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self.weights_sha256 = ""
        self.smoke = False

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 -> float32 [0, 1] -> ImageNet normalisation (subtract, then divide, as LaMa's NormalizeTensor)."""
        check_u8(images, "ADE20k segmentation")
        x = images.to(self.mean.device, torch.float32) / 255
        return (x - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities [N, 150, H, W] (softmax of the upsampled scores)."""
        x = self.normalise(images)
        return self.decoder(self.encoder(x), tuple(x.shape[2:]))

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Class map int64 [N, H, W]: the argmax over classes of the probabilities (SegmentationModule.predict)."""
        return self(images).max(dim=1).indices

    def describe(self) -> dict:
        return {"name": "ade20k-resnet50dilated-ppm_deepsup", "weights_sha256": self.weights_sha256,
                "smoke": self.smoke, "input": "uint8/255, ImageNet mean/std, native size; argmax of softmax"}


def load_into(model: ADE20kSegmenter, encoder: dict[str, torch.Tensor], decoder: dict[str, torch.Tensor],
              source: tuple[str, str] = ("encoder", "decoder")) -> ADE20kSegmenter:
    """Strictly load the official encoder and decoder state dicts (their own key names, no prefix)."""
    check_state_dict(encoder, model.encoder.state_dict(), "the ADE20k ResNet50-dilated encoder", source[0])
    check_state_dict(decoder, model.decoder.state_dict(), "the ADE20k PPM-deepsup decoder", source[1])
    model.encoder.load_state_dict(encoder, strict=True)
    model.decoder.load_state_dict(decoder, strict=True)
    return model


def smoke_segmenter() -> ADE20kSegmenter:
    """The network on seeded random weights (PyTorch's default init under SMOKE_SEED): for plumbing tests only."""
    model = seeded(ADE20kSegmenter).eval()
    model.smoke = True
    ident = f"ade20k:{SMOKE_SEED}:{torch.__version__}"
    model.weights_sha256 = "smoke-" + hashlib.sha256(ident.encode()).hexdigest()[:32]
    return model


def load_segmenter(encoder_path: str | os.PathLike | None = None, decoder_path: str | os.PathLike | None = None,
                   device: str = "cpu", smoke: bool = False, allow_download: bool = True) -> ADE20kSegmenter:
    """The segmenter with the released weights (found through matbench.weights, or the paths given), or smoke.

    The files are read weights-only (no code from them runs) and loaded strictly by their official tensor names."""
    if smoke:
        return smoke_segmenter().to(device)
    paths = []
    for entry, given in ((ENCODER_WEIGHTS, encoder_path), (DECODER_WEIGHTS, decoder_path)):
        paths.append(resolve_weights(entry.name, given, allow_download=allow_download, check_hash=False))
    digests = [W.verify(e, p) for e, p in zip((ENCODER_WEIGHTS, DECODER_WEIGHTS), paths, strict=True)]
    enc, dec = (read_plain_state_dict(p, f"ADE20k {w} state dict") for p, w in zip(paths, ("encoder", "decoder"),
                                                                                    strict=True))
    model = load_into(ADE20kSegmenter(), enc, dec, (str(paths[0]), str(paths[1])))
    model.weights_sha256 = hashlib.sha256("".join(digests).encode()).hexdigest()  # one identity for the pair
    return model.eval().to(device)
