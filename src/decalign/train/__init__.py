"""Training and evaluation: docs/method.md §10's protocol, checkpoints, history, seeds."""
