"""What LaViC keeps on disk: the checkpoint chain (``checkpoint``), each image's view
embeddings (``viewcache``) and the entire-tokens ablation's rows (``tokencache``)."""
