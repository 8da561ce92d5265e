"""The Runs area: start, watch and stop training runs."""
