"""Inference over rasters of any size, in small parts that predict and evaluate share.

A job (:mod:`.job`) reads overlapping windows (:mod:`.windows`) of the raster as the model should see it
(:mod:`.resolution`, :mod:`.extent`), hands them in batches to a runner (:mod:`.runner`; the torch one is
:mod:`.torch_runner`), sums the weighted probabilities in a rolling buffer (:mod:`.blend`) and passes every finished
row to sinks (:mod:`.sinks`: class, probability and confidence GeoTIFFs, pixel tallies, a confusion matrix).

Only :mod:`.torch_runner` imports torch: a runner built on another runtime (onnxruntime) uses the rest as it is.
"""
