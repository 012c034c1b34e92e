"""The results report (``RESULTS.md``): WER tables of the recipe's systems."""
