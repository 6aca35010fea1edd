"""ONNX export beyond the 2 GiB protobuf limit: a model with --gib GiB of
float32 weights exported with `mwconv export --format onnx`, which moves the
weights to one external data file; onnxruntime then runs it and the outputs
are compared with Keras (the export's own verification).

    .venv/bin/python benchmarks/onnx_large.py --gib 2.1
"""

import argparse
import json
import os
import tempfile
import time


def build(gib):
    from frozen_mlp import frozen_mlp

    return frozen_mlp(gib * (1 << 30), 8192)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from mwconv._quiet import import_quietly
    import_quietly("tensorflow")
    from mwconv.convert.exporter import export

    model = build(args.gib)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        out = os.path.join(tmp, "big.onnx")
        t0 = time.perf_counter()
        result = export(model, "onnx", out, progress=lambda s: print(f"  {s}", flush=True))
        seconds = time.perf_counter() - t0
        outputs = result.report.check("outputs")
        doc = {"weight_bytes": result.weight_bytes, "model_file_bytes": os.path.getsize(out),
               "data_file_bytes": os.path.getsize(out + ".data"), "seconds": round(seconds, 1),
               "verified": result.report.ok, "max_abs_error": outputs.details["outputs"][0]["max_abs"]}
    if args.json:
        print(json.dumps(doc))
    else:
        for k, v in doc.items():
            print(f"{k:18} {v}")
        print(f"data file / weight bytes: {doc['data_file_bytes'] / doc['weight_bytes']:.3f}")


if __name__ == "__main__":
    main()
