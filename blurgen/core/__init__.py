"""Shared ground: errors and atomic files, validated configs, Numba set-up, counter-based random
streams, image I/O, kernel shapes, progress lines. Imports nothing else of blurgen."""
