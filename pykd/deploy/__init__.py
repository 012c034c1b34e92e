"""Deploying a trained acoustic network: one ONNX file (fp32 or int8) holding the splice, the
CMVN, the network and the prior division, and its runtime (onnxruntime, whole utterance or
chunk by chunk). docs/deploy.md describes the file's inputs and outputs."""
