#!/usr/bin/env bash
# Prepare, on this machine (it has PyPI), what the lent GPU machine lacks to run training/gpu_recipe.sh,
# so that a session drawn for a GPU spends its 15 minutes training, not installing:
#
#   bash training/gpu_kit.sh            # or: make gpu-kit
#
# writes .whl/ (ignored by git, about 6 MB): Python 3.12 wheels of the packages the recipe imports that
# the GPU machine's image does not hold (its package list: /work/.library/device/KINDS.md), and
# .whl/standin/polars (training/gpu_standin), a stand-in for the one polars call ultralytics' trainer makes with plots off
# (polars' runtime wheel is over the device tool's 16 MB a file). Then it checks, here, that
# `xfd synth` and `xfd train` run with only those packages and the image's: every import of a module
# outside that set fails, as it would there. The run itself, from the device tool:
#
#   run(command="bash training/gpu_next.sh", carry=[".whl"], timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=.whl
PY=${PY:-.venv/bin/python}
# what the recipe needs that the image lacks (ultralytics' and xraydb's own needs included);
# versions as pinned in pyproject.toml / installed in .venv
PKGS="ultralytics==8.4.190 ultralytics-thop==2.2.3 ultralytics-platform==0.1.99 xraydb==4.5.8 sqlalchemy==2.1.9 platformdirs==4.14.8"
rm -rf "$KIT" && mkdir -p "$KIT/standin/polars"
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.whl/' >> .git/info/exclude; }
for p in $PKGS; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$KIT" "$p"
done
cp training/gpu_standin/polars/__init__.py "$KIT/standin/polars/"
du -sh "$KIT"; ls "$KIT"

# the check: the image's packages (KINDS.md's list as read on 2026-11-17, in full) + the kit's, nothing else
"$PY" - "$KIT" <<'PY'
import sys
from pathlib import Path
kit = Path(sys.argv[1])
image = """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-
bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops
equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch
grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio iniconfig
interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-
loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py
markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-
extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-
cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile
nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13
nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-
headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy
peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-
cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov
pytest-mock pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich
sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece
sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy
tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm
transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig
werkzeug wheel wrapt xarray xxhash yarl zipp""".split()
wheels = [w.name.split("-")[0].lower().replace("_", "-") for w in kit.glob("*.whl")]
allowed = {n.lower().replace("_", "-") for n in image + wheels} | {"opencv-python"}  # cv2 here; the headless build there
(kit / "allowed.txt").write_text("\n".join(sorted(allowed)) + "\n")
print("kit wheels:", ", ".join(sorted(wheels)))
PY
CHECK=$(mktemp -d)
trap 'rm -rf "$CHECK"' EXIT
cat > "$CHECK/sitecustomize.py" <<'PY'
# block every third-party module whose distribution is not in the allowed list (the GPU image + the kit)
import importlib.abc, importlib.metadata as md, os, sys
_allowed = set(open(os.environ["XFD_KIT_ALLOWED"]).read().split())
_dists = md.packages_distributions()
_own = {"detector", "training", "serve", "polars"}  # ours; polars is the stand-in, first on PYTHONPATH
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in _own or top in sys.stdlib_module_names or top not in _dists:
            return None
        if any(d.lower().replace("_", "-") in _allowed for d in _dists[top]):
            return None
        raise ModuleNotFoundError(f"{top} ({', '.join(_dists[top])}) is not on the GPU machine and not in the kit", name=top)
sys.meta_path.insert(0, _Block())
PY
export XFD_KIT_ALLOWED=$PWD/$KIT/allowed.txt PYTHONPATH=$CHECK:$PWD/$KIT/standin:$PWD YOLO_OFFLINE=1
XFD="$PY -m detector.cli"
$XFD synth --out "$CHECK/data" --n 12 --seed 999 --split train=0.5,val=0.5 --workers 2 \
  --display-effects 0.3 --fit-contents --display-jitter 0.3 --belt-stretch 0.3 --side-view --tools 0.3 >/dev/null
# the GPU configuration, with what a CPU cannot do (bf16 autocast, a 128-scan batch) turned down
printf 'base: %s\namp: false\ncache: false\n' "$PWD/configs/gpu.yaml" > "$CHECK/kit.yaml"
$XFD train --data "$CHECK/data/data.yaml" --config "$CHECK/kit.yaml" --weights models/default/model.pt \
  --device cpu --epochs 1 --batch 4 --imgsz 128 --workers 0 --project "$CHECK/runs" --name kit >/dev/null
test -f "$CHECK/runs/kit/results.csv"
echo "gpu kit ready in $KIT: synth and train ran here with only the GPU image's packages and the kit"
