"""Plots (matplotlib, Agg backend) and markdown reports of runs. Imported only when used."""
