"""Text encoders used by matcher."""
