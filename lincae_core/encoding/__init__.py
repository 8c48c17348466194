"""Library -> latent store: plan (probe files, lay out the table), schedule (the canonical batches),
run (streamed reading, batched forward passes, stitching) and job (the resumable, shardable whole).
"""
