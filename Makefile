# Two commands on a fresh machine: `make serve` and `make test`. Both run setup first.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DATA    ?= data
SEED    ?= 1

.PHONY: setup setup-browser serve test test-fast lint bench synth train train-ft train-gpu train-cpu-ft train-cpu-long gpu-kit eval export grey-network robustness help

help:
	@echo "make setup   - create .venv and install the project with test extras (idempotent)"
	@echo "make serve   - run the service on the shipped default model (http://127.0.0.1:8000)"
	@echo "make test    - lint and run the whole test suite"
	@echo "make bench   - benchmarks (engine backends vs stock ultralytics, simulator speed)"
	@echo "make synth   - simulate the training set and the test sets into $(DATA)/"
	@echo "make train   - CPU stages 1-2 of the default model on $(DATA)/synth-train (resumable: make train RESUME=1)"
	@echo "make train-gpu - stage 3 on a CUDA GPU: fresh scans on every core, fine-tune stage 2 (training/gpu_recipe.sh)"
	@echo "make gpu-kit - wheels a lent GPU machine lacks (.whl/), checked here; then the device tool runs training/gpu_next.sh"
	@echo "make train-cpu-ft - fine-tune the shipped weights on 4,800 fresh scans on this CPU (FT_HOURS, default 1.3)"
	@echo "make train-cpu-long - stage 7: 16 epochs on 7,200 fresh scans on this CPU, ~6.5 h (run again on the same machine to resume)"
	@echo "make grey-network - export GREY_WEIGHTS into MODEL/grey: the network grey scans are routed to"
	@echo "make eval    - calibrate on val, then evaluate models/default on the test sets"
	@echo "make robustness - models/default on synth-test and synth-cal altered as other scanners alter scans"

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY)"; exit 1; }
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium for the console's end-to-end tests (no browser download by any tool)
setup-browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

serve: setup
	$(BIN)/xfd serve

lint: setup
	$(BIN)/ruff check detector training serve tests

test: setup setup-browser lint
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser"

bench: setup
	$(BIN)/xfd bench --soak 5000 --out reports/bench.json

synth: setup
	$(BIN)/xfd synth --out $(DATA)/synth-train --n 1800 --seed $(SEED) --split train=0.9,val=0.1
	$(BIN)/xfd synth --out $(DATA)/synth-test --n 300 --seed 2 --split test=1
	$(BIN)/xfd synth --out $(DATA)/synth-shifted --n 200 --seed 3 --split test=1 --shifted
	$(BIN)/xfd synth --out $(DATA)/synth-cal --n 600 --seed 5 --split val=1
	$(BIN)/xfd synth --out $(DATA)/synth-calmix --n 1200 --seed 10 --split val=1 --fan-beam 0.25 --tools 0.25 --soft-contents 0.25 --display-effects 0.25
	$(BIN)/xfd synth --out $(DATA)/synth-vendor --n 200 --seed 4 --split test=1 --display-effects 1 --soft-contents 1
	$(BIN)/xfd synth --out $(DATA)/synth-fan --n 200 --seed 6 --split test=1 --fan-beam 1
	$(BIN)/xfd synth --out $(DATA)/synth-tools --n 200 --seed 7 --split test=1 --tools 1
	$(BIN)/xfd synth --out $(DATA)/synth-packed --n 300 --seed 11 --split test=1 --clutter 10,50
	$(BIN)/xfd synth --out $(DATA)/synth-dualview --n 300 --seed 12 --split test=1 --side-view
	$(BIN)/xfd synth --out $(DATA)/synth-grey --n 600 --seed 346 --split test=1 --gray 1
	$(BIN)/xfd synth --out $(DATA)/synth-grey-shifted --n 200 --seed 347 --split test=1 --shifted --gray 1
	$(BIN)/xfd synth --out $(DATA)/synth-calmix-grey --n 1200 --seed 348 --split val=1 --gray 1 --fan-beam 0.25 --tools 0.25 --soft-contents 0.25 --display-effects 0.25

# two stages: 15 epochs from scratch (configs/train.yaml), then a fine-tune at half the learning
# rate with cached images (configs/finetune.yaml). RESUME=1 resumes whichever stage was interrupted.
train: setup
ifdef RESUME
	if [ -f runs/train/default-ft/weights/last.pt ]; then $(BIN)/xfd train --name default-ft --resume; \
	else $(BIN)/xfd train --name default --resume && $(MAKE) train-ft; fi
else
	$(BIN)/xfd train --data $(DATA)/synth-train/data.yaml --name default
	$(MAKE) train-ft
endif

train-ft: setup
	$(BIN)/xfd train --config configs/finetune.yaml --weights runs/train/default/weights/best.pt \
	  --data $(DATA)/synth-train/data.yaml --name default-ft

MODEL   ?= models/default
VERSION ?= 2026.11.28

# INT8 calibration and the export check use the mixed calibration set (300 of its 1,200 scans)
# Stage 3 of the shipped model, as it ran on a lent H100 (16 cores): 500 val + 4 x 1000 train scans
# (seeds 100-104, display effects 0.3, soft contents 0.5), 47 epochs from stage 2's best.pt.
# Needs a CUDA GPU; on a CPU it would take days. Resume: xfd train --resume --project runs/train --name gpu
train-gpu: setup
	PATH=$(CURDIR)/$(BIN):$$PATH OUT=logs/gpu RUNS=runs/train CHUNKS=4 EPOCHS=47 \
	  WEIGHTS=runs/train/default-ft/weights/best.pt DATA=$(DATA)/gpu-train bash training/gpu_recipe.sh

# what a session lent a GPU needs to train there at once: Python 3.12 wheels the GPU image lacks (.whl/, ignored),
# checked here by running synth and train with only the image's packages and the kit's. Then, with the device
# tool: run(command="bash training/gpu_next.sh", carry=[".whl"], timeout_s=600)
gpu-kit: setup
	bash training/gpu_kit.sh

# Stage 7: the GPU stage's recipe on this CPU (configs/cpu-long.yaml), from the shipped weights: 400
# validation and 6 x 800 training parcels of generator 3.6 (every second chunk --wide; the others
# packed, fitted and also drawn in a dual-view scanner's side view: 7,200 training images), about
# 15 minutes of simulation, then 16 epochs, ~6.5 h. Run it again to resume: a session that ends
# mid-run loses at most the epoch in progress (logs/$(LONG_NAME)/last.pt is a copy kept as it goes).
# It started from 2026.11.29.11's weights (sha256 d2d57b49..., also 2026.11.29.17's); once a later model
# ships, reproduce it from those: git show acbef6f:models/default/model.pt > /tmp/m11.pt, LONG_FROM=/tmp/m11.pt.
LONG_NAME ?= cpu-long
LONG_FROM ?= models/default/model.pt
LONG_THREATS ?= gun=0.22,barrel=0.12,slide=0.08,frame=0.16,magazine=0.14,printed_part=0.14,ammunition=0.14
train-cpu-long: setup
	@if [ -f runs/train/$(LONG_NAME)/weights/last.pt ]; then \
	  $(BIN)/xfd train --resume --name $(LONG_NAME); \
	else \
	  PATH=$(CURDIR)/$(BIN):$$PATH OUT=logs/$(LONG_NAME) RUNS=runs/train NAME=$(LONG_NAME) DEVICE=cpu \
	  CONFIG=configs/cpu-long.yaml EPOCHS=16 CHUNKS=6 CHUNK=800 VAL_N=400 WIDE=1 SEED0=318 \
	  WEIGHTS=$(LONG_FROM) DATA=$(DATA)/$(LONG_NAME) \
	  SYNTH_OPTS="--display-effects 0.3 --soft-contents 0.5 --fit-contents --display-jitter 0.3 --belt-stretch 0.3 --tools 0.3 --threat-mix $(LONG_THREATS)" \
	  PLAIN_OPTS="--clutter 10,50 --side-view --fan-beam 0.3" bash training/gpu_recipe.sh; \
	fi

# CPU fine-tune of the shipped weights on fresh generator-3.1 scans: 2 x 2,400 scans (seeds
# FT_SEED_A and FT_SEED_B, the second --wide; fan beam, gun-shaped tools, soft contents and display
# effects each on 30%), about 10 minutes of simulation, then --hours $(FT_HOURS) of training.
# Stage 4 (2026.11.28.8) = the defaults (seeds 300, 301, run cpu-ft); each further round takes two
# unused seeds and its own name, e.g. make train-cpu-ft FT_SEED_A=302 FT_SEED_B=303 FT_NAME=cpu-ft2.
# Resume: xfd train --name $(FT_NAME) --resume
FT_HOURS  ?= 1.3
FT_FROM   ?= models/default/model.pt
FT_SEED_A ?= 300
FT_SEED_B ?= 301
FT_NAME   ?= cpu-ft
FT_DATA   ?= $(DATA)/$(subst cpu-,,$(FT_NAME))
FT_MIX    := --fan-beam 0.3 --tools 0.3 --soft-contents 0.3 --display-effects 0.3
# weights of the threat classes drawn (xfd synth --threat-mix), e.g. FT_THREATS=gun=0.22,frame=0.16,...;
# empty: the generator's default mix (gun 0.36, each component about 0.11)
FT_THREATS ?=
FT_SYNTH  = $(FT_MIX) $(if $(FT_THREATS),--threat-mix $(FT_THREATS))
# more xfd synth options for the first (default-ranges) and the second (--wide) half, e.g.
# FT_OPTS_A="--clutter 20,60" for densely packed parcels
FT_OPTS_A ?=
FT_OPTS_B ?=
# parcels drawn for each half (with FT_OPTS_A="--side-view" each parcel of the first half is two images)
FT_N_A ?= 2400
FT_N_B ?= 2400
# the training configuration, e.g. FT_CONFIG=configs/finetune-cpu-head.yaml (backbone frozen)
FT_CONFIG ?= configs/finetune-cpu.yaml
train-cpu-ft: setup
	$(BIN)/xfd synth --out $(FT_DATA)-a --n $(FT_N_A) --seed $(FT_SEED_A) --split train=0.9,val=0.1 $(FT_SYNTH) $(FT_OPTS_A)
	$(BIN)/xfd synth --out $(FT_DATA)-b --n $(FT_N_B) --seed $(FT_SEED_B) --split train=0.9,val=0.1 $(FT_SYNTH) --wide $(FT_OPTS_B)
	$(BIN)/xfd mix --data $(FT_DATA)-a/data.yaml --data $(FT_DATA)-b/data.yaml --out $(FT_DATA)
	$(BIN)/xfd train --config $(FT_CONFIG) --weights $(FT_FROM) \
	  --data $(FT_DATA)/data.yaml --hours $(FT_HOURS) --name $(FT_NAME)

WEIGHTS ?= runs/train/gpu/weights/best.pt
# the calibration set (INT8 quantisation and the thresholds); another one to reproduce a model calibrated under an
# older generator, e.g. 2026.11.30.18's (generator 3.6.0: README, "The shipped model")
CALMIX ?= $(DATA)/synth-calmix/data.yaml
export: setup
	$(BIN)/xfd export --weights $(WEIGHTS) --out $(MODEL) --data $(CALMIX) \
	  --name xfd-default --version $(VERSION) --compact

# the grey network (training/grey.py): weights fine-tuned on grey scans only, e.g. 2026.11.30.19's (session 24:
# make train-cpu-ft FT_SEED_A=344 FT_SEED_B=345 FT_NAME=cpu-ft14-grey FT_HOURS=1.2 FT_OPTS_A="--gray 1" FT_OPTS_B="--gray 1"),
# exported into MODEL/grey and named in MODEL's model.json; make eval then calibrates it on grey scans
GREY_WEIGHTS ?= runs/train/cpu-ft14-grey/weights/best.pt
CALGREY ?= $(DATA)/synth-calmix-grey/data.yaml
grey-network: setup
	rm -rf $(MODEL)/grey
	$(BIN)/xfd export --weights $(GREY_WEIGHTS) --out $(MODEL)/grey --data $(CALGREY) --formats openvino --compact
	$(BIN)/python -m training.grey $(MODEL)

# calibrate on the 1,200-scan mixed calibration set (never test; fan beam, gun-shaped tools, soft contents and display
# effects each on a quarter of it), FP32 and INT8 each to its own thresholds for the same target Pfa, then measure the
# five test sets (PAIRED) on both paths, choose the served path from them pooled and paired (training/card.py
# choose_backend: INT8 only when ahead beyond noise, a tie goes to FP32; INT8 ahead is then also measured on
# synth-test and synth-cal altered as other scanners alter them, both paths, ~22 min more than the served path's
# alone, whose reports the card then reuses), measure the other sets and the default-settings calibration set (now held
# out) on that path, run xfd robustness on the served path, and write the card
# the training runs behind MODEL, for its card; a fine-tune of a shipped model whose runs are not
# on this machine: CARD_RUNS="--from-model DIR_OF_THAT_MODEL --run runs/train/cpu-ft --reproduce '...'"
# (default: whichever of the stage runs default, default-ft and gpu exist here)
CARD_RUNS ?= $(foreach r,default default-ft gpu,$(if $(wildcard runs/train/$(r)/results.csv),--run runs/train/$(r)))
PAIRED := test shifted vendor fan tools
eval: setup
	$(BIN)/xfd eval --model $(MODEL) --backend openvino --data $(CALMIX) --split val --calibrate --pfa-confidence 0.9 $(if $(FLIPS),--flips $(FLIPS)) --out reports/val
	$(BIN)/xfd eval --model $(MODEL) --backend openvino-int8 --data $(CALMIX) --split val --calibrate --pfa-confidence 0.9 $(if $(FLIPS),--flips $(FLIPS)) --out reports/val-int8
	if [ -d $(MODEL)/grey ]; then $(BIN)/xfd eval --model $(MODEL)/grey --data $(CALGREY) --split val --calibrate --pfa-confidence 0.9 $(if $(FLIPS),--flips $(FLIPS)) --out reports/val-grey; fi
	for s in $(PAIRED); do \
	  $(BIN)/xfd eval --model $(MODEL) --backend openvino --data $(DATA)/synth-$$s/data.yaml --split test --out reports/$$s && \
	  $(BIN)/xfd eval --model $(MODEL) --backend openvino-int8 --data $(DATA)/synth-$$s/data.yaml --split test --out reports/$$s-int8 || exit 1; \
	done
	choice=$$($(BIN)/python -m training.card $(MODEL) --backend-only $(foreach s,$(PAIRED),--report $(s)=reports/$(s) --report $(s)-int8=reports/$(s)-int8)) && \
	echo "served path: $$choice" && \
	if [ "$$choice" = openvino-int8 ]; then \
	  for b in openvino openvino-int8; do \
	    $(BIN)/xfd robustness --model $(MODEL) --backend $$b --data $(DATA)/synth-test/data.yaml --split test --out reports/altered-test-$$b && \
	    $(BIN)/xfd robustness --model $(MODEL) --backend $$b --data $(DATA)/synth-cal/data.yaml --split val --out reports/altered-cal-$$b || exit 1; \
	  done; \
	  final=$$($(BIN)/python -m training.card $(MODEL) --backend-only $(foreach s,$(PAIRED),--report $(s)=reports/$(s) --report $(s)-int8=reports/$(s)-int8) \
	    --altered reports/altered-test-openvino=reports/altered-test-openvino-int8 --altered reports/altered-cal-openvino=reports/altered-cal-openvino-int8) && \
	  echo "served path, with the altered scans: $$final" && \
	  for s in test cal; do rm -rf reports/robustness-$$s && cp -r reports/altered-$$s-$$final reports/robustness-$$s || exit 1; done; \
	else \
	  $(BIN)/xfd robustness --model $(MODEL) --data $(DATA)/synth-test/data.yaml --split test --out reports/robustness-test && \
	  $(BIN)/xfd robustness --model $(MODEL) --data $(DATA)/synth-cal/data.yaml --split val --out reports/robustness-cal; \
	fi
	$(BIN)/xfd eval --model $(MODEL) --data $(DATA)/synth-packed/data.yaml --split test --out reports/packed
	$(BIN)/xfd eval --model $(MODEL) --data $(DATA)/synth-cal/data.yaml --split val --out reports/cal
	$(BIN)/xfd eval --model $(MODEL) --data $(DATA)/synth-dualview/data.yaml --split test --out reports/dualview
	for s in grey grey-shifted; do $(BIN)/xfd eval --model $(MODEL) --data $(DATA)/synth-$$s/data.yaml --split test --out reports/$$s || exit 1; done
	$(BIN)/xfd cues --model $(MODEL) --per-row 20 --out reports/cues
	for r in val val-int8 $(if $(wildcard $(MODEL)/grey),val-grey) $(foreach s,$(PAIRED),$(s) $(s)-int8) packed cal dualview grey grey-shifted; do mkdir -p $(MODEL)/eval/$$r && cp reports/$$r/report.md $(MODEL)/eval/$$r/; done
	cp reports/test/*.png $(MODEL)/eval/test/
	mkdir -p $(MODEL)/eval/cues && cp reports/cues/cues.md $(MODEL)/eval/cues/
	$(BIN)/python -m training.card $(MODEL) $(CARD_RUNS) $(foreach s,$(PAIRED),--report $(s)=reports/$(s) --report $(s)-int8=reports/$(s)-int8) \
	  --report packed=reports/packed --report cal=reports/cal --report dualview=reports/dualview \
	  --report grey=reports/grey --report grey-shifted=reports/grey-shifted \
	  --robustness reports/robustness-test --robustness reports/robustness-cal --cues reports/cues

# the model on held-out scans altered as other scanners alter them (pixel size, non-square pixels, JPEG, blur, noise, display
# curve, hue, grey, negative, edge enhancement, black frame), at its own thresholds: reports/robustness-*/robustness.md
# (make eval runs the same and puts the largest losses in the card)
robustness: setup
	$(BIN)/xfd robustness --model $(MODEL) --data $(DATA)/synth-test/data.yaml --split test --out reports/robustness-test
	$(BIN)/xfd robustness --model $(MODEL) --data $(DATA)/synth-cal/data.yaml --split val --out reports/robustness-cal
