"""Recipes: whole experiments assembled from the library (pre-training the base, the few-shot comparison)."""
