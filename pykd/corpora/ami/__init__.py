"""AMI meeting corpus: NXT annotations -> Kaldi data directories (IHM and SDM)."""
