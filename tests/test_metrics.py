import numpy as np
import pandas as pd
import pytest
import torch

from analyses.metrics import FSSEvaluator, episode_counts, evaluate_rows, mean_std
from analyses.summary import cell_metrics, collapse_warnings, collapsed_cells, summarize


def counts_from_confusion(tp, fp, fn, tn):
    return [tp, tp + fp + fn, tn, tn + fp + fn]


def worked_example():
    """protocol.md: three episodes, two classes."""
    return [1, 1, 2], [counts_from_confusion(15, 10, 5, 70), counts_from_confusion(2, 0, 8, 90),
                       counts_from_confusion(40, 10, 0, 50)]


def test_worked_example_from_protocol_notes():
    evaluator = FSSEvaluator()
    classes, counts = worked_example()
    evaluator.process(classes, counts)
    result = evaluator.evaluate()
    assert result["class_iou"][1] == pytest.approx(17 / 40)
    assert result["class_iou"][2] == pytest.approx(40 / 50)
    assert result["miou"] == pytest.approx(0.6125)
    assert result["fg_iou"] == pytest.approx(57 / 90)
    assert result["bg_iou"] == pytest.approx(210 / 243)
    assert result["fbiou"] == pytest.approx(0.7488, abs=1e-4)


def test_evaluator_is_independent_of_order_and_batching():
    classes, counts = worked_example()
    whole = FSSEvaluator()
    whole.process(classes, counts)
    pieces = FSSEvaluator()
    for i in [2, 0, 1]:
        pieces.process([classes[i]], [counts[i]])
    assert pieces.evaluate() == whole.evaluate()


def test_reset_clears_state_and_empty_evaluator_refuses():
    evaluator = FSSEvaluator()
    evaluator.process(*worked_example())
    evaluator.reset()
    with pytest.raises(ValueError):
        evaluator.evaluate()


def test_episode_counts_exclude_ignore_pixels():
    target = torch.tensor([[1, 1, 0, 255], [0, 0, 255, 1]])
    pred = torch.tensor([[1, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.bool)
    # valid pixels: (0,0) tp, (0,1) fn, (0,2) fp, (1,0) tn, (1,1) tn, (1,3) tp
    assert episode_counts(pred, target).tolist() == counts_from_confusion(2, 1, 1, 2)


def test_episode_counts_batched_equals_single():
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 2, (3, 8, 8), generator=gen)
    target[:, 0] = 255
    pred = torch.rand(3, 8, 8, generator=gen) > 0.5
    batched = episode_counts(pred, target)
    for i in range(3):
        assert batched[i].tolist() == episode_counts(pred[i], target[i]).tolist()


def test_void_pixels_counted_as_background_lower_miou_as_in_protocol_notes():
    # Episode 1 with 5 void pixels predicted FG scored OSLSM-style: they become FP.
    evaluator = FSSEvaluator()
    evaluator.process([1, 1, 2], [counts_from_confusion(15, 15, 5, 70), counts_from_confusion(2, 0, 8, 90),
                                  counts_from_confusion(40, 10, 0, 50)])
    assert evaluator.evaluate()["class_iou"][1] == pytest.approx(17 / 45)
    assert evaluator.evaluate()["miou"] == pytest.approx(0.589, abs=1e-3)


def test_mean_std_uses_sample_std():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    mean, std = mean_std([4.0])
    assert mean == 4.0 and np.isnan(std)


def _episodes_frame():
    classes, counts = worked_example()
    rows = []
    for seed, scale in ((0, 1), (1, 2)):
        for episode, (c, k) in enumerate(zip(classes, counts)):
            k = list(k)
            if seed == 1 and episode == 1:
                k = counts_from_confusion(10, 0, 0, 90)  # a better second seed for class 1
            rows.append(dict(method="m", split=1, shot=1, seed=seed, episode=episode, class_id=c, query=f"q{episode}",
                             fg_inter=k[0], fg_union=k[1], bg_inter=k[2], bg_union=k[3]))
    return pd.DataFrame(rows)


def test_summary_mean_and_std_over_seeds():
    frame = _episodes_frame()
    cells = cell_metrics(frame)
    assert cells.loc[cells.seed == 0, "miou"].item() == pytest.approx(61.25)
    seed1 = 100 * ((25 / 40) + 0.8) / 2
    assert cells.loc[cells.seed == 1, "miou"].item() == pytest.approx(seed1)
    summary = summarize(frame)
    split_row = summary[(summary.split == "1")].iloc[0]
    assert split_row.miou_mean == pytest.approx((61.25 + seed1) / 2)
    assert split_row.miou_std == pytest.approx(np.std([61.25, seed1], ddof=1))
    mean_row = summary[(summary.split == "mean")].iloc[0]
    assert mean_row.miou_mean == pytest.approx(split_row.miou_mean)


def test_summary_mean_row_averages_splits():
    frame = _episodes_frame()
    other = frame.copy()
    other["split"] = 2
    other["fg_inter"] = other["fg_inter"] // 2
    summary = summarize(pd.concat([frame, other]))
    rows = summary.set_index("split")
    assert rows.loc["mean", "miou_mean"] == pytest.approx((rows.loc["1", "miou_mean"] + rows.loc["2", "miou_mean"]) / 2)


def test_a_method_at_or_below_all_foreground_on_a_split_is_flagged():
    frame = _episodes_frame()
    floor = frame.assign(method="all-foreground")
    equal = frame.assign(method="collapsed")  # exactly the floor's numbers, as a collapsed training scores
    better = frame.assign(method="good", fg_inter=frame.fg_union)
    rows = pd.concat([floor, floor.assign(split=2), equal, equal.assign(split=2), better, better.assign(split=2),
                      frame.assign(method="odd", fg_inter=frame.fg_union),
                      frame.assign(method="odd", split=2, fg_inter=0)])
    summary = summarize(rows)
    cells = collapsed_cells(summary, ["good", "collapsed", "odd"])
    assert sorted(zip(cells.method, cells.split)) == [("collapsed", "1"), ("collapsed", "2"), ("odd", "2")]
    lines = collapse_warnings(summary, ["odd", "good", "collapsed"])
    assert [line.split()[1] for line in lines] == ["odd", "collapsed"]  # in the given order, one line per method
    assert lines[0].startswith("warning: odd is at or below all-foreground's mIoU on 1-shot split 2 (split-2 1-shot: "
                               "0.00 vs ")
    assert collapsed_cells(summary[summary.method != "all-foreground"], ["collapsed"]).empty  # no floor, no flag


def test_class_with_zero_union_is_excluded_and_listed_never_nan():
    """A class whose episodes have no foreground in ground truth or prediction: IoU undefined; it is left out
    of the mean (HSNet's max(union, 1) would score it 0) and the mIoU stays a number."""
    classes, counts = worked_example()
    evaluator = FSSEvaluator()
    evaluator.process(classes + [3], counts + [[0, 0, 100, 100]])
    result = evaluator.evaluate()
    assert result["miou"] == pytest.approx(0.6125)  # classes 1 and 2 only
    assert result["excluded_classes"] == {3: "zero union"} and 3 not in result["class_iou"]
    assert not np.isnan(result["fbiou"])


def test_split_class_without_episode_is_excluded_and_listed():
    classes, counts = worked_example()
    rows = pd.DataFrame(counts, columns=["fg_inter", "fg_union", "bg_inter", "bg_union"]).assign(class_id=classes)
    result = evaluate_rows(rows, classes=[1, 2, 3, 4])
    assert result["miou"] == pytest.approx(0.6125)  # not (17/40 + 40/50 + 0 + 0) / 4 as HSNet's logger
    assert result["excluded_classes"] == {3: "no episode", 4: "no episode"}
    assert evaluate_rows(rows)["excluded_classes"] == {}


def test_no_scorable_class_is_refused_and_an_undefined_fb_side_is_left_out():
    evaluator = FSSEvaluator()
    evaluator.process([1], [[0, 0, 10, 10]])
    with pytest.raises(ValueError, match="no class can be scored"):
        evaluator.evaluate()
    evaluator = FSSEvaluator()
    evaluator.process([1], [[20, 20, 0, 0]])  # every valid pixel foreground in GT and prediction: bg union 0
    result = evaluator.evaluate()
    assert result["bg_iou"] is None and result["fbiou"] == pytest.approx(1.0)
