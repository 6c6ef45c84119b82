"""Test helpers: tiny offline models of real architectures (see ``dogiqa.testing.tiny``)."""

from dogiqa.testing.tiny import QUALITY_WORDS, build_tiny_idefics3, build_tiny_qwen2vl, build_tiny_qwen25vl

__all__ = ["QUALITY_WORDS", "build_tiny_idefics3", "build_tiny_qwen2vl", "build_tiny_qwen25vl"]
