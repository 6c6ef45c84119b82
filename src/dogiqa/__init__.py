"""dogiqa: training-free image quality assessment with multimodal LLMs (Dog-IQA and beyond)."""

__version__ = "0.1.0"
