"""gpu-trainer: every lifecycle stage as `gpu-trainer <stage> --spec SPEC.json --out DIR`."""
