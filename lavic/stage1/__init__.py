"""Stage 1, visual self-distillation: which images and descriptions (``data``), the Table 10
prompt (``prompt``), the full-token model describing images (``describe``) and the training of
the vision side (``distill``)."""
