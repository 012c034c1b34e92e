"""Language models: IRSTLM training, an ARPA reader/evaluator, and ARPA -> G.fst."""
