"""Corpora: data preparation for AMI and the embedded synthetic meeting corpus."""
