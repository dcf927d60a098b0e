"""The HDF5 pairs store: schema, reader, block part files, assembly and merge.

Layers, each importing only those before it: ``schema`` (names, version, validation, attribute
decoding) -> ``reader`` (``PairsFile``) -> ``parts`` (one block of samples as a small file) ->
``assembly`` (pieces copied chunk by chunk into one file) -> ``merge`` (shards into one file).
Only h5py and numpy: ``blurgen.deblur`` reads pairs through ``reader`` without numba.
"""
