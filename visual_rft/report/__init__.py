"""Run reports: reward curves and test images with predicted and true boxes drawn."""
