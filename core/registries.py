"""Every registry of named choices, with its entries: adding a decoder or a weight source is one line here.

Nothing here imports torch; an entry's target is imported when it is built (see :mod:`.registry`).
"""

from __future__ import annotations

from .registry import Registry

BACKBONES = Registry("backbone")
BACKBONES.add("resnet18", "ResNet-18", "Small and fast; the default, and enough for most scenes.", "backbones:resnet18")
BACKBONES.add("resnet34", "ResNet-34", "Deeper than ResNet-18 at about twice the cost.", "backbones:resnet34")
BACKBONES.add("resnet50", "ResNet-50", "Bottleneck blocks, about 3× the training time of ResNet-18.",
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

DEVICES = Registry("device")
DEVICES.add("auto", "Best available", "A CUDA GPU, else Apple MPS, else the CPU.")
DEVICES.add("cpu", "CPU", "The processor; always available.")
DEVICES.add("cuda", "CUDA GPU", "The first NVIDIA GPU (cuda:N picks another on the command line).")
DEVICES.add("mps", "Apple MPS", "The GPU of an Apple-silicon Mac.")

#: Registries by the name a setting's ``choices`` gives.
ALL = {"backbones": BACKBONES, "decoders": DECODERS, "normalisations": NORMALISATIONS,
       "weight_sources": WEIGHT_SOURCES, "devices": DEVICES}
