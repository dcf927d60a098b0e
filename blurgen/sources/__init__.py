"""Sharp images: procedural dead leaves, image folders, GoPro."""
