"""Training and evaluation: the protocol of spec section 2, checkpoints, history, multi-seed runs."""
