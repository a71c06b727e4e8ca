"""Training: the engine (one loop, stage lifecycle hooks, checkpoints, resume) and run
directories (build a method, train it, load it back as a Colorizer)."""
