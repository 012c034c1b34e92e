"""Dictionary and lang-directory preparation (Kaldi ``utils/prepare_lang.sh`` compatible)."""
