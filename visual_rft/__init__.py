"""visual-rft: reinforcement fine-tuning of vision-language models with verifiable visual rewards."""

__version__ = "0.1.0"
