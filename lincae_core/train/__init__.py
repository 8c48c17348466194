"""Consistency training of a Lin-CAE: the loop, run state on disk, distributed set-up, the
augmentations of the paper (Sec. 3.2), the crop sampler and the weight EMA.
"""
