"""Attention pictures: source x target heatmaps for translation."""
