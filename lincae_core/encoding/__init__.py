"""Library -> latent store.

- ``settings``: what an encode is asked to do and what it did (``EncodeSettings``, summary, shard);
- ``identity``: what identifies an encode (lineage args, the store's ``encoding``, the resume check);
- ``plan``: probe every file's header, lay out and publish the store once;
- ``resume``: plan the store, or open and check the one there;
- ``schedule``: the canonical batches (byte-identical resumed and sharded encodes);
- ``batching``: ``--batch-size auto`` (rule or timed probe);
- ``forward``: the encoder's forward pass and its speed options;
- ``origin``: ``Enc(0)``, recorded in every store;
- ``readers``: the reader threads streaming each file's windows;
- ``run``: batched forward passes, stitching, chunk-batched writes;
- ``job``: ``encode_files``, the resumable, shardable whole.
"""
