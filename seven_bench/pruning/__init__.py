"""The pruning core: criterion (scores), schedule (keep ratio per step), selection (scores -> mask) and
timing (pre: before fine-tuning; dyn: inside the training loop). Methods are combinations of these."""
