"""gpu-trainer: every lifecycle stage as `gpu-trainer <stage> --spec SPEC.json --out DIR`."""

import os as _os

from gpu_trainer.repro import pin_environment as _pin_environment

# Before torch loads OpenMP: with the default (spinning) wait policy, two intra-op threads on a
# shared 2-core box slow training ~50x whenever other processes want the cores (measured: 6.7 s
# vs 0.135 s per step under load 8). Passive waiting costs nothing on an idle box.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Before torch loads its kernels: the same seed must give the same model on every machine of a kind.
_pin_environment()
