"""A tiny colour detector for the eval tests, used as ``--detector shape_detector:detect``.

It finds pure red, green and blue blobs (labels 1, 2, 3) on a plain background: pixels within a
colour distance of the class colour, grouped by 8-connected components; each component of at
least ``MIN_AREA`` pixels is a box, scored by the fraction of its box the colour fills. Blur mixes
the colours with the background, so blobs shrink, fade or vanish: a detector that blur hurts.
"""

import cv2
import numpy as np

COLOURS = {1: (220, 30, 30), 2: (30, 190, 30), 3: (30, 30, 220)}
MAX_DISTANCE = 60.0
MIN_AREA = 12


def detect_one(image: np.ndarray):
    boxes, scores, labels = [], [], []
    pixels = image.astype(np.float32)
    for label, colour in COLOURS.items():
        mask = (np.linalg.norm(pixels - np.asarray(colour, np.float32), axis=-1) < MAX_DISTANCE).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for x, y, w, h, area in stats[1:count]:
            if area >= MIN_AREA:
                boxes.append((x, y, x + w, y + h))
                scores.append(area / float(w * h))
                labels.append(label)
    return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
            np.asarray(labels, np.int64))


def detect(images):
    return [detect_one(image) for image in images]


def wrong_shapes(images):
    return [(np.zeros((2, 3), np.float32), np.zeros(2, np.float32), np.zeros(2, np.int64)) for _ in images]


def wrong_count(images):
    return [detect_one(images[0])]


def raises(images):
    raise RuntimeError("model file missing\non two lines")


def vandal(images):
    """Draws over its inputs (as a detector that annotates in place might) and finds nothing."""
    for image in images:
        image[:] = 0
    return [detect_one(image) for image in images]


NOT_CALLABLE = 3
