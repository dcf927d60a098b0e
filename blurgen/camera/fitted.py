"""Hand-shake process fitted on recorded gyroscope data by tools/fit_gyro.py (generated).

Source: gyro_train.txt (sha256 b067cc9f299bb3ec..., 186.4 s at 210.2 Hz),
fitted 2026-12-04 04:40 UTC; rms error of the log10 band PSD: 0.275. Units: s, Hz, rad/s.
"""

DRIFT_TAU_S = 10
OSC_FREQ_HZ = (1.65332, 3.44427, 9.32494)
OSC_Q = (4.71666, 5.00287, 3.40034)
SIGMA_PITCH_YAW = (0, 0.0769371, 0.43565, 0.327671)
SIGMA_ROLL = (0, 0.158194, 0.284202, 0.137129)
AMPLITUDE_LOG_SD = 0.156543
ANISOTROPY_MAX = 0.7
