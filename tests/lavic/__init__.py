"""Tests of the LaViC method on tiny models of the real architecture."""
