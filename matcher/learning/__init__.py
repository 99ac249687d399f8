"""Learning from past cases: encoder fine-tuning, the learned re-ranker, triage feedback export."""
