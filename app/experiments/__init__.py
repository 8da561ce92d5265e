"""The Experiments area: browse and compare finished runs."""
