# mmdiode: one-command set-up, the bundled benchmark, teachers and tests.
# `make help` lists the targets.
PYTHON ?= .venv/bin/python
DATA ?= data/digits
PROXY ?= data/digits_proxy
WORK ?= work_dirs
export PYTHONUNBUFFERED := 1

.PHONY: help install data teachers yolov3-teacher faster-rcnn-teacher \
        eval-teachers demo datafree lint test clean-venv

help:
	@echo "make install   create .venv with the pinned stack (tools/install.sh; CUDA=1 for CUDA ops; WHEELHOUSE=DIR offline)"
	@echo "make demo      install, build the benchmark, distil the committed YOLOv3 teacher without data, compare on the test split"
	@echo "make datafree  every row of the data-free benchmark (hours; results/digits_datafree.json)"
	@echo "make data      build digits-on-photos ($(DATA)) and its proxy set ($(PROXY))"
	@echo "make teachers  train the YOLOv3 and Faster R-CNN teachers into $(WORK)/"
	@echo "make lint      flake8 + isort on the tree (settings in setup.cfg)"
	@echo "make test      lint, then the test suite"

# WHEELHOUSE=DIR: install with no network from tools/make_wheelhouse.sh's DIR.
WHEELHOUSE ?=
install:
	WHEELHOUSE=$(WHEELHOUSE) bash tools/install.sh

$(DATA)/meta.json:
	$(PYTHON) tools/make_digits_dataset.py --out $(DATA) --seed 0 --viz
$(PROXY)/meta.json:
	$(PYTHON) tools/make_digits_dataset.py --proxy --out $(PROXY) --seed 0 --num-proxy 3000 --viz
data: $(DATA)/meta.json $(PROXY)/meta.json

# A teacher is trained once; `final.pth` is the last checkpoint of the run and
# later steps reuse it. Delete it (or the work dir) to retrain: the config is
# an order-only prerequisite, so moving or touching it does not retrain. The
# work dirs keep their names (yolov3_teacher, faster-rcnn_teacher): configs,
# docs and results refer to them. --resume: a stopped training (an hour on
# 2 cores) continues from its last epoch checkpoint when run again.
YOLOV3_TEACHER_CFG = configs/detectors/yolov3-mv2_24e_digits.py
FRCNN_TEACHER_CFG = configs/detectors/faster-rcnn-r18_8e_digits.py
$(WORK)/yolov3_teacher/final.pth: | $(YOLOV3_TEACHER_CFG) $(DATA)/meta.json
	$(PYTHON) tools/train.py $(YOLOV3_TEACHER_CFG) --work-dir $(@D) --resume
	cp "$$(cat $(@D)/last_checkpoint)" $@.tmp && mv $@.tmp $@
$(WORK)/faster-rcnn_teacher/final.pth: | $(FRCNN_TEACHER_CFG) $(DATA)/meta.json
	$(PYTHON) tools/train.py $(FRCNN_TEACHER_CFG) --work-dir $(@D) --resume
	cp "$$(cat $(@D)/last_checkpoint)" $@.tmp && mv $@.tmp $@
yolov3-teacher: $(WORK)/yolov3_teacher/final.pth
faster-rcnn-teacher: $(WORK)/faster-rcnn_teacher/final.pth
teachers: yolov3-teacher faster-rcnn-teacher

eval-teachers: teachers
	$(PYTHON) tools/test.py $(YOLOV3_TEACHER_CFG) $(WORK)/yolov3_teacher/final.pth --work-dir $(WORK)/yolov3_teacher/test
	$(PYTHON) tools/test.py $(FRCNN_TEACHER_CFG) $(WORK)/faster-rcnn_teacher/final.pth --work-dir $(WORK)/faster-rcnn_teacher/test

# The main job: the committed YOLOv3 teacher (checkpoints/, an fp16 copy of
# `make yolov3-teacher`'s checkpoint) is distilled into the student on
# images synthesized on the fly, and both are scored on the real test split
# (~30 min on 2 CPU cores, see README; finished rows are reused).
demo: install data
	$(PYTHON) tools/benchmark_datafree.py --pairs yolov3 --rows teacher kd_synth_online --stream

# Both teachers are committed (checkpoints/), so no row trains one.
datafree: data
	$(PYTHON) tools/benchmark_datafree.py

LINTED = mmdiode benchmarks tools tests configs setup.py
lint:
	$(PYTHON) -m flake8 $(LINTED)
	$(PYTHON) -m isort --check-only --diff $(LINTED)

# -n auto: one worker per core (pytest-xdist); most tests run the tools as
# single-threaded subprocesses, so a second worker halves the wall time.
test: lint
	$(PYTHON) -m pytest tests -q -p no:cacheprovider -n auto

clean-venv:
	rm -rf .venv
