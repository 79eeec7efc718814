"""LaViC: visual self-distillation + LoRA recommendation fine-tuning (the method)."""
