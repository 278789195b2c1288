"""Every registry of named choices, with its entries: adding a decoder or a weight source is one line here.

Nothing here imports torch; an entry's target is imported when it is built (see :mod:`.registry`).
"""

from __future__ import annotations

from .registry import Registry

BACKBONES = Registry("backbone")
BACKBONES.add("resnet18", "ResNet-18", "Small and fast; the default, and enough for most scenes.", "backbones:resnet18")
BACKBONES.add("resnet34", "ResNet-34", "Deeper than ResNet-18 at about twice the cost.", "backbones:resnet34")
BACKBONES.add("resnet50", "ResNet-50", "Bottleneck blocks, about 2× the training time of ResNet-18 (measured on a CPU).",
              "backbones:resnet50")
BACKBONES.add("resnet101", "ResNet-101", "The largest; for big labelled areas on a GPU.", "backbones:resnet101")

DECODERS = Registry("decoder")
DECODERS.add("fpn", "FPN", "Feature pyramid over every backbone stage; sharp at a quarter of the tile resolution.",
             "decoders.fpn:FPNDecoder")
DECODERS.add("unet", "U-Net", "Skip connections up to full resolution, with each pixel's own band values: keeps "
             "fine detail and spectra.", "decoders.unet:UNetDecoder")
DECODERS.add("simple", "Simple", "One conv on the deepest features, upsampled 32×: coarse, for comparison.",
             "decoders.simple:SimpleDecoder")

NORMALISATIONS = Registry("normalisation")
NORMALISATIONS.add("global", "Global", "Each band scaled by the training image's mean and spread (stored with the "
                   "model): the same pixel value means the same everywhere.")
NORMALISATIONS.add("per_tile", "Per tile", "Each tile scaled by its own statistics: robust to brightness changes, "
                   "loses absolute values.")

WEIGHT_SOURCES = Registry("weight source")
WEIGHT_SOURCES.add("imagenet", "ImageNet (pretrained)", "torchvision's ImageNet weights, downloaded once when online.")
WEIGHT_SOURCES.add("none", "None (train from scratch)", "Random initial weights.")
# Published geospatial backbones (core/published_weights.py holds their URLs, hashes, bands, scaling, licences).
WEIGHT_SOURCES.add("ssl4eo-s12-moco-resnet18", "SSL4EO-S12 Sentinel-2 (ResNet-18)",
                   "MoCo on Sentinel-2 L1C, 13 bands; CC-BY-4.0. Bands placed by description or wavelength.")
WEIGHT_SOURCES.add("ssl4eo-s12-moco-resnet50", "SSL4EO-S12 Sentinel-2 (ResNet-50)",
                   "MoCo on Sentinel-2 L1C, 13 bands; CC-BY-4.0. Bands placed by description or wavelength.")
for _sensor, _name in (("tm", "Landsat 4–5 TM"), ("etm", "Landsat 7 ETM+"), ("oli-tirs", "Landsat 8–9 OLI/TIRS")):
    for _net, _label in (("resnet18", "ResNet-18"), ("resnet50", "ResNet-50")):
        WEIGHT_SOURCES.add(f"ssl4eo-l-{_sensor}-moco-{_net}", f"SSL4EO-L {_name} ({_label})",
                           f"MoCo on {_name} top-of-atmosphere bands; CC0-1.0.")
WEIGHT_SOURCES.add("seco-resnet18", "SeCo Sentinel-2 RGB (ResNet-18)", "Seasonal contrast on Sentinel-2 RGB; "
                   "Apache-2.0.")
WEIGHT_SOURCES.add("seco-resnet50", "SeCo Sentinel-2 RGB (ResNet-50)", "Seasonal contrast on Sentinel-2 RGB; "
                   "Apache-2.0.")

LR_SCHEDULES = Registry("learning-rate schedule")
LR_SCHEDULES.add("constant", "Constant", "The same learning rate in every epoch.")
LR_SCHEDULES.add("cosine", "Cosine decay", "From the learning rate down a half cosine to a hundredth of it in the "
                 "last epoch: big steps first, fine ones at the end.")

CLASS_WEIGHTINGS = Registry("class weighting")
# power: a class's weight is proportional to (1 / its pixel count) ** power
CLASS_WEIGHTINGS.add("none", "None", "Every labelled pixel counts the same.", power=0.0)
CLASS_WEIGHTINGS.add("sqrt", "Square root of inverse frequency", "A class 100 times rarer counts 10 times more.",
                     power=0.5)
CLASS_WEIGHTINGS.add("inverse", "Inverse frequency", "A class 100 times rarer counts 100 times more (at most 10 "
                     "times the average weight).", power=1.0)

PRETRAIN_METHODS = Registry("pretraining method")
PRETRAIN_METHODS.add("masked", "Masked reconstruction", "The network fills in hidden patches of every band from what "
                     "it sees around them: features for every pixel, as segmentation uses them.",
                     "selfsup.masked:MaskedReconstruction")
PRETRAIN_METHODS.add("simsiam", "SimSiam", "Two altered views of a crop (or two dates of it) must give the same "
                     "embedding: one feature per crop.", "selfsup.simsiam:SimSiam")

DEVICES = Registry("device")
DEVICES.add("auto", "Best available", "A CUDA GPU, else Apple MPS, else the CPU.")
DEVICES.add("cpu", "CPU", "The processor; always available.")
DEVICES.add("cuda", "CUDA GPU", "The first NVIDIA GPU (cuda:N picks another on the command line).")
DEVICES.add("mps", "Apple MPS", "The GPU of an Apple-silicon Mac.")

#: Registries by the name a setting's ``choices`` gives.
ALL = {"backbones": BACKBONES, "decoders": DECODERS, "normalisations": NORMALISATIONS,
       "weight_sources": WEIGHT_SOURCES, "lr_schedules": LR_SCHEDULES,
       "class_weightings": CLASS_WEIGHTINGS, "pretrain_methods": PRETRAIN_METHODS, "devices": DEVICES}
