"""Attention pictures: translation heatmaps and grids, ViT maps and rollout."""
