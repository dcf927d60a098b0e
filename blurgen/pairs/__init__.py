"""Blurred/sharp pairs, block by block: motion + sharp crops + the camera stages."""
