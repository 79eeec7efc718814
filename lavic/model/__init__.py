"""The model pieces: the real architecture as data (``arch``), tiny models of it (``tiny``),
an image's views (``views``), their [CLS] embeddings spliced into a prompt (``embed``), each
stage's LoRA (``lora``) and the entire-tokens ablation's image tokens (``fulltokens``)."""
