"""Explore one site: a 2-D map of its rows and what a selection of them has in common (the app's Explore page)."""
