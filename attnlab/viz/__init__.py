"""Pictures of attention: heatmaps for translation, CLS maps and rollout for the ViT."""
