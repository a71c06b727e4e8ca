"""The core layer: component interfaces, the registry and plugin manager, configs, checkpoints,
colour conversion, shared layers and statistics. It imports nothing from the layers above it."""
