"""Hivestack: cell-based, same-city multi-active platforms from one topology file."""
