"""The task: datasets (``data``), what a retriever and a generator implement (``protocols``),
the paper's prompt and candidate order, the answer parser, metrics and their statistics."""
