"""The camera blur model, one job per module:

* ``curves`` -- sRGB / 2.2 transfer curves between uint8 codes and linear light;
* ``convolve`` -- valid convolution with a kernel (``blur_linear``);
* ``noise`` -- sensor noise on linear light;
* ``model`` -- one sample: ``BlurConfig``, the drawn values, ``render_sample`` (any blur step)
  and ``blur_sample`` (the convolution), then the sensor stages (``sensor_output``).

Numba kernels live in the private ``_*_jit`` modules beside them.
"""

from blurgen.blur.convolve import BLUR_METHODS, DIRECT_MAX_TAPS, blur_linear, convolve_valid
from blurgen.blur.curves import GAMMAS, decode_lut, encode_lut, linear_to_srgb, srgb_to_linear
from blurgen.blur.model import BlurConfig, blur_sample, draw_blur_params, jpeg_round_trip, render_sample, sensor_output
from blurgen.blur.noise import NOISE_MODELS, add_sensor_noise, noisy_to_srgb

__all__ = ["BLUR_METHODS", "DIRECT_MAX_TAPS", "GAMMAS", "NOISE_MODELS", "BlurConfig", "add_sensor_noise",
           "blur_linear", "blur_sample", "convolve_valid", "decode_lut", "draw_blur_params", "encode_lut",
           "jpeg_round_trip", "linear_to_srgb", "noisy_to_srgb", "render_sample", "sensor_output",
           "srgb_to_linear"]
