"""The parameter groups training and adaptation may update (torch-free names; the selection
itself is :func:`pykd.frontend.model.select_parameters`)."""

PARAM_SETS = ("gates", "all", "output_bias")  # gates: the HDNN's shared W_T, b_T, W_C, b_C
