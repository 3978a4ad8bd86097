"""distill(): train a small student to mimic a large teacher, and write it as a model edgec compiles.

Reads as the steps it runs: load the teacher(s) and data, get the student (the user's, or derived
from the teacher), optionally train a teacher assistant first, train the student (or several that
also learn from each other), evaluate teacher and student on held-out data, write OUT.

OUT (written atomically, as `edgec compile` writes its OUT):
  student.keras   the trained student as a Keras model of standard layers (edgec.train.export_keras)
  model.tflite    the same student as a float TFLite flatbuffer (the IR written by the TFLite backend):
                  `edgec compile OUT/model.tflite ...` compresses it further, `edgec eval OUT` evaluates it
                  (against the teacher: report.json's "model" names it)
  report.json     the report schema (totals, layers, artifacts) with totals.accuracy the student's and
                  totals.float_accuracy the teacher's accuracy on the held-out data, and "distill": the
                  options, data, parameter counts, per-epoch losses, assistant and peers
The losses and the training are in edgec.train.distill.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from .data import Dataset, check_against, dataset_from, load_npz, model_inputs
from .errors import EdgecError


def _data(d, what: str) -> Dataset | None:
    if d is None:
        return None
    return load_npz(os.fspath(d)) if isinstance(d, (str, os.PathLike)) else dataset_from(d, what)


def _name(model) -> str:
    return os.fspath(model) if isinstance(model, (str, os.PathLike)) else getattr(model, "name", "model")


def _labels(ds: Dataset, classes: int) -> np.ndarray:
    """Integer labels of a dataset (one-hot or probability rows are argmax-ed); -1 without y."""
    if ds.y is None:
        return np.full(len(ds), -1, np.int64)
    y = np.asarray(ds.y)
    if y.ndim > 1 and y.shape[-1] == classes and y.dtype.kind == "f":
        y = y.reshape(len(y), -1).argmax(1)
    if y.dtype.kind not in "iub" or y.size != len(ds):
        raise EdgecError(f"{ds.source}: y must hold one integer class per sample (or one-hot rows)")
    y = y.reshape(-1).astype(np.int64)
    if y.min() < 0 or y.max() >= classes:
        raise EdgecError(f"{ds.source}: labels must be in [0, {classes}) for a {classes}-class teacher, "
                         f"found {int(y.min())}..{int(y.max())}")
    return y


def _train_set(train: Dataset | None, unlabeled: Dataset | None, graph, classes: int):
    from .train.distill import TrainSet
    parts = [d for d in (train, unlabeled) if d is not None]
    if not parts:
        raise EdgecError("distill needs training data (train_data, or unlabeled data for the teacher to label)")
    xs = [np.concatenate(col).astype(np.float32) for col in zip(*(model_inputs(d, graph) for d in parts))]
    labels = [_labels(train, classes)] if train is not None else []
    if unlabeled is not None:
        labels.append(np.full(len(unlabeled), -1, np.int64))
    return TrainSet(xs, np.concatenate(labels), classes)


def _check_options(student, derive, loss: str, assistant: bool, mutual: int, hints) -> None:
    if student is not None and derive is not None:
        raise EdgecError("give a student model or derive one from the teacher (derive=...), not both")
    if isinstance(mutual, bool) or not isinstance(mutual, int) or mutual < 0 or mutual == 1:
        raise EdgecError(f"mutual {mutual!r}: the number of students learning from each other, >= 2 (0: off)")
    if loss == "labels" and assistant:
        raise EdgecError("assistant: a teacher-assistant chain distils; it does not apply to loss labels")
    if loss == "labels" and hints:
        raise EdgecError("hints are feature targets from a teacher; they do not apply to loss labels")


def distill(teacher, out, train_data=None, student=None, derive=None, loss: str = "kd", temperature: float = 4.0,
            alpha: float = 0.9, epochs: int = 15, seed: int = 0, unlabeled=None, augment=None,
            assistant: bool = False, mutual: int = 0, hints=None, val_data=None, progress=None,
            batch_size: int = 64, lr: float = 5e-3, unsafe: bool = False) -> dict:
    """Distil `teacher` (a model path or keras.Model, or a list of them: an ensemble whose soft
    targets are averaged) into a student written to `out`; returns the report.

    student: a model (path or keras.Model) to train as it is given; else derive ("width=W,depth=-N"
    or a dict; default width=0.5) builds one from the first teacher. loss: kd, mse, hints or labels
    (the baseline: the same student on labels alone); temperature T and alpha weigh the teacher's
    signal against the labels (edgec.train.distill). train_data: D.npz (or dict) with x and y (y may
    be absent: teacher labels only); unlabeled: more inputs the teacher labels. augment: "noise",
    "shift", "mixup" or a comma list. assistant: train a teacher assistant (derived at the geometric
    mean of teacher and student parameters) from the teacher, and the student from it. mutual=K >= 2:
    K students (the first as given, the others re-initialised with other seeds) trained together, each
    also mimicking its peers; the first is written. hints: "teacher_tensor:student_tensor" pairs
    (tensor or op names) for loss hints, default the penultimate features. val_data: held-out data
    with labels for the accuracies in the report."""
    from .api import dumps_report, load, write_outputs
    from .backends.tflite import write_tflite
    from .evaluate import evaluate
    from .profile.report import build_report
    from .train import distill as kd
    from .train.export_keras import export_keras

    t0 = time.perf_counter()
    _check_options(student, derive, loss, assistant, mutual, hints)
    opts = kd.Options(loss, float(temperature), float(alpha), epochs, int(batch_size), float(lr), int(seed),
                      kd.parse_augment(augment)).check()

    # teachers and data
    sources = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    if not sources:
        raise EdgecError("distill needs a teacher model")
    teachers = [load(t, unsafe) for t in sources]
    tgraph = teachers[0].graph
    classes = kd.classes_of(tgraph)
    for name, t in zip(sources[1:], teachers[1:]):
        shapes = [t.graph.tensors[n].shape for n in t.graph.inputs]
        if shapes != [tgraph.tensors[n].shape for n in tgraph.inputs]:
            raise EdgecError(f"teacher {_name(name)}: its inputs {shapes} differ from the first teacher's")
    train, unl, val = _data(train_data, "train data"), _data(unlabeled, "unlabeled data"), _data(val_data, "val data")
    for ds in (train, unl, val):
        if ds is not None:
            check_against(ds, tgraph)
    if val is not None and val.y is None:
        raise EdgecError(f"{val.source}: held-out data needs labels y")
    data = _train_set(train, unl, tgraph, classes)

    # the student
    if student is not None:
        sgraph = load(student, unsafe).graph
        if [sgraph.tensors[n].shape for n in sgraph.inputs] != [tgraph.tensors[n].shape for n in tgraph.inputs]:
            raise EdgecError(f"student {_name(student)}: its inputs differ from the teacher's")
        shape = {"width": None, "depth": 0}
    else:
        shape = kd.parse_derive(derive if derive is not None else "width=0.5")
        sgraph = kd.derive_student(tgraph, shape["width"], shape["depth"], opts.seed)
    wants_hints = loss == "hints" or hints is not None
    opts.hints = kd.hint_pairs(tgraph, sgraph, hints) if wants_hints else []     # checked before training
    tobj = kd.Teacher([t.graph for t in teachers]) if loss != "labels" else None

    # a teacher assistant first: the student then learns from it (derived, it has the teacher's tensor names)
    chain = None
    if assistant:
        width = kd.assistant_width(tgraph, sgraph)
        agraph = kd.derive_student(tgraph, width, shape["depth"] // 2, opts.seed + 1000)
        aopts = kd.Options(**{**opts.__dict__, "hints": kd.hint_pairs(tgraph, agraph, hints) if wants_hints else []})
        [agraph], ahist = kd.train_students([agraph], tobj, data, aopts, _labelled(progress, "assistant"))
        chain = {"width": round(width, 4), "depth": -(shape["depth"] // 2), "params": kd.params(agraph),
                 "loss": ahist["loss"]}
        if val is not None:
            chain["accuracy"] = round(kd.accuracy(agraph, model_inputs(val, agraph), _labels(val, classes)), 6)
        tobj = kd.Teacher([agraph])
        opts.hints = kd.hint_pairs(agraph, sgraph, hints) if wants_hints else []

    # the student (and its peers)
    students = [sgraph] + [kd.reinitialize(sgraph, opts.seed + 1 + k) for k in range(max(0, mutual - 1))]
    trained, hist = kd.train_students(students, tobj, data, opts, _labelled(progress, "student"))
    result = trained[0]

    # evaluate and write
    tflite = write_tflite(result)
    evaluation = None
    if val is not None:
        evaluation = evaluate(tflite, result, val, teachers[0].tflite, teachers[0].graph)
        evaluation["data"] = "val data"
        evaluation["runtime"] = "LiteRT"
    with tempfile.TemporaryDirectory(prefix="edgec-distill-") as tmp:
        path = Path(tmp) / "student.keras"
        export_keras(result).save(path)
        keras_bytes = path.read_bytes()
    report = build_report(_name(sources[0]), None, ["distill"], result, result, len(tflite), [], evaluation,
                          {"tflite": "model.tflite", "keras": "student.keras", "c": None, "elf": None, "html": None})
    report["distill"] = _summary(sources, teachers, tgraph, result, student, shape, opts, data, unl, val, chain,
                                 trained, hist, classes, mutual)
    report["timings"] = {"distill_seconds": round(time.perf_counter() - t0, 3)}
    # what an earlier compile left in OUT (a C project, its report and firmware) describes another model
    write_outputs(out, {"student.keras": keras_bytes, "model.tflite": tflite, "report.json": dumps_report(report)},
                  replace=("report.html", "c", "firmware.elf"))
    return report


def _labelled(progress, label: str):
    return None if progress is None else (lambda _l, items: progress(label, items))


def _summary(sources, teachers, tgraph, result, student, shape, opts, data, unl, val, chain, trained, hist,
             classes: int, mutual: int) -> dict:
    """report["distill"]: what was trained from what, and how well it does on the held-out data."""
    from .train import distill as kd
    s = {
        "teachers": [{"model": _name(m), "params": kd.params(t.graph)} for m, t in zip(sources, teachers)],
        "student": _name(student) if student is not None else
        f"derived: width={shape['width']:g}, depth={-shape['depth']}",
        "student_params": kd.params(result), "teacher_params": kd.params(tgraph),
        "param_ratio": round(kd.params(result) / kd.params(tgraph), 4),
        "loss": opts.loss, "temperature": opts.temperature, "alpha": opts.alpha, "epochs": opts.epochs,
        "batch_size": opts.batch_size, "lr": opts.lr, "seed": opts.seed, "augment": list(opts.augment),
        "hints": [list(p) for p in opts.hints],
        "samples": len(data), "labelled": data.labelled, "unlabeled": 0 if unl is None else len(unl),
        "history": hist["loss"], "assistant": chain, "mutual": mutual,
    }
    if val is not None:
        y = _labels(val, classes)
        xs = model_inputs(val, tgraph)
        s["teacher_accuracy"] = [round(kd.accuracy(t.graph, xs, y), 6) for t in teachers]
        if len(teachers) > 1:   # the ensemble predicts the mean of its members' probabilities
            z = kd.Teacher([t.graph for t in teachers]).predict_logits(xs)
            p = np.exp(z - z.max(-1, keepdims=True))
            p = (p / p.sum(-1, keepdims=True)).mean(axis=0)
            s["ensemble_accuracy"] = round(float((p.argmax(1) == y).mean()), 6)
        s["student_accuracy"] = [round(kd.accuracy(g, xs, y), 6) for g in trained]
    return s
