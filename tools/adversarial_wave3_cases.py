"""The surfaces of the wave-3 adversarial pass (``tools/adversarial_wave3.py``): name -> runner."""

from __future__ import annotations

import adversarial_wave3_formats as formats
import adversarial_wave3_merge as merge
import adversarial_wave3_options as options

SURFACES = {"formats": formats.run_all, "export": formats.run_export, "camera": options.camera,
            "clips": options.clips, "dask": lambda p: (options.dask(p), options.dask_interrupted(p)),
            "merge": lambda p: (merge.shards_changed(p), merge.merge_inputs(p), merge.many_shards(p)),
            "inspect": merge.inspect_outputs, "transforms": options.transforms,
            # the steps whose failures were fixed during the pass, run again on the fixed code
            "formats-rerun": lambda p: (formats.damaged_parts(p), formats.mismatched_resume(p), formats.odd_prefixes(p))}
