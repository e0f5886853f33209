"""Ranking evaluation (full ranking by default), text metrics later, reports and plots."""
