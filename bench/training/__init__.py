"""Training, checkpoints, the model provider, profiles, backbone pretraining, DDP, the supervised reference."""
