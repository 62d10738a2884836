"""What the GRPO and SFT trainers share: optimizer and schedule, checkpoints, metric logging, data order."""
