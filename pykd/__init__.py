"""pykd: Kaldi-integrated teacher/student acoustic models with knowledge distillation."""

__version__ = "0.1.0"
