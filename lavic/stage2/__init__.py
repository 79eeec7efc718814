"""Stage 2, recommendation fine-tuning: the run's settings and variants (``config``), the one
example type and its readers (``examples``), the Table 11 prompt as ids (``prompt``, shared with
the ``lavic`` generator), training rows and validation requests (``rows``) and the training of
the LLM (``finetune``)."""
