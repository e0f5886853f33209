"""Training loop, checkpoints, seeding and distributed set-up (models never own the optimiser)."""
