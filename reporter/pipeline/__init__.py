"""The render pipeline: datasets -> charts -> HTML per language -> PDF -> atomic files. One edition,
no I/O beyond reading its inputs and the final write."""
