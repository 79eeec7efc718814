"""Datasets: the Reddit-Amazon release loader, the synthetic world, validation."""
