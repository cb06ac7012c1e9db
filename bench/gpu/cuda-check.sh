#!/usr/bin/env bash
# Phase e of bench/gpu/session.sh: can the machine give onnxruntime-node a CUDA provider without downloads?
# onnxruntime-node's npm package has no CUDA provider (its install step downloads it); the machine's Python may
# have onnxruntime-gpu. If that wheel's version equals onnxruntime-node's and it has the provider library, the
# libraries are copied beside the node binding (in the unpacked node_modules of this machine only) and the
# original UNet is timed on --ep cuda. Appends one JSON line to $1 (results.jsonl); $2 is the model folder.
set -uo pipefail
RESULTS=$1 MODEL_DIR=$2
NODE_ORT=$(node -p 'require("./node_modules/onnxruntime-node/package.json").version')
BIND_DIR=$(ls -d node_modules/onnxruntime-node/bin/napi-v*/linux/x64 | head -1)
INFO=$(python3 - "$NODE_ORT" <<'PY'
import glob, json, os, sys
import importlib.metadata as md
r = {"phase": "cuda-check", "nodeOrt": sys.argv[1]}
for dist in ("onnxruntime-gpu", "onnxruntime"):
    try:
        r[dist] = md.version(dist)
    except Exception:
        r[dist] = None
try:
    import onnxruntime as o
    capi = os.path.join(os.path.dirname(o.__file__), "capi")
    r["pythonProviders"] = o.get_available_providers()
    r["providerLibs"] = sorted(os.path.basename(p) for p in glob.glob(os.path.join(capi, "libonnxruntime_providers_*.so")))
    r["capi"] = capi
except Exception as e:
    r["importError"] = str(e)[:300]
has_cuda = "libonnxruntime_providers_cuda.so" in r.get("providerLibs", [])
r["match"] = bool(r["onnxruntime-gpu"] == r["nodeOrt"] and has_cuda)
if r["match"]:
    r["finding"] = "onnxruntime-gpu %s matches onnxruntime-node: CUDA measured below" % r["nodeOrt"]
elif has_cuda:
    r["finding"] = "a CUDA provider library exists but of onnxruntime(-gpu) %s, not onnxruntime-node %s: not mixed" % (
        r["onnxruntime-gpu"] or r["onnxruntime"], r["nodeOrt"])
else:
    r["finding"] = "no CUDA provider in the machine's Python (onnxruntime %s, onnxruntime-gpu %s): not measured" % (
        r["onnxruntime"], r["onnxruntime-gpu"])
# Where the CUDA libraries of the pip packages are (the provider needs cuBLAS, cuDNN, the runtime).
try:
    import nvidia
    r["nvidiaLibs"] = sorted(glob.glob(os.path.join(list(nvidia.__path__)[0], "*", "lib")))
except Exception:
    r["nvidiaLibs"] = []
print(json.dumps(r))
PY
)
[ -n "$INFO" ] || INFO="{\"phase\":\"cuda-check\",\"nodeOrt\":\"$NODE_ORT\",\"error\":\"python3 check failed\"}"
echo "$INFO" >> "$RESULTS"
echo "cuda-check: $INFO"
MATCH=$(node -e 'process.stdout.write(String(JSON.parse(process.argv[1]).match === true))' "$INFO")
[ "$MATCH" = true ] || exit 0
CAPI=$(node -e 'process.stdout.write(JSON.parse(process.argv[1]).capi)' "$INFO")
LIBS=$(node -e 'process.stdout.write(JSON.parse(process.argv[1]).nvidiaLibs.join(":"))' "$INFO")
cp "$CAPI"/libonnxruntime_providers_cuda.so "$CAPI"/libonnxruntime_providers_shared.so "$BIND_DIR"/
LD_LIBRARY_PATH=${LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} node dist/bench/optimize.js --ep cuda --model "$MODEL_DIR" \
  --variants original --deadline 40 --jsonl "$RESULTS" --out /tmp/vidprior-cuda-bench
