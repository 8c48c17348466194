"""The network: waveform <-> representation transforms, layers, the Lin-CAE model, consistency math.

Reads top to bottom as :mod:`~lincae_core.nn.transforms` (STFT representation),
:mod:`~lincae_core.nn.consistency` (scalings, schedules, sampler σ's),
:mod:`~lincae_core.nn.layers` (blocks) and :mod:`~lincae_core.nn.model` (``LinCAE``). Nothing here
sees a file or a store.
"""
