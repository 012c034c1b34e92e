"""Training: losses (CE, knowledge distillation), and the trainer built on them."""
