"""Multi-fidelity search (successive halving over a Pareto front), on the surrogate evaluator."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from moncae.errors import MoncaeError
from moncae.evaluation.records import EvalResult
from moncae.evaluation.surrogate import surrogate_task
from moncae.method.fidelity import Rung, promoted, rung_schedule
from moncae.search.loop import check_rungs, run_search
from tests.runs import assert_same, resume_after_crash

REF = (4.0, 12.0)
RUNGS = {"fidelity": "rungs", "rungs": [[1, 40]], "promote": 0.34}


# -- the pure rule ------------------------------------------------------------------------------
def test_rung_schedule_ends_with_the_full_budget():
    assert rung_schedule([[1, 500], [2, 2000]], 5) == (Rung(1, 500), Rung(2, 2000), Rung(5, None))
    assert rung_schedule([], 3) == (Rung(3, None),)
    with pytest.raises(MoncaeError, match="must grow"):
        rung_schedule([[2, 500], [1, 500]], 5)
    with pytest.raises(MoncaeError, match="pairs of positive integers"):
        rung_schedule([[1, 0]], 5)


def test_points_that_enter_the_all_time_front_are_promoted_first_within_a_fixed_budget():
    points = {"old": (0.10, 2.0), "a": (0.12, 2.0), "b": (0.09, 2.5), "c": (0.20, 1.0),
              "d": (0.30, 1.5), "e": (0.25, 0.9)}
    # a is dominated by old, d by c; b, c, e add hypervolume; budget ceil(0.34 * 5) = 2
    chosen = promoted(["a", "b", "c", "d", "e"], points, REF, 0.34)
    assert len(chosen) == 2 and set(chosen) <= {"b", "c", "e"}
    # with room for four: b, c, e, then a (on this generation's own front; d is not)
    assert promoted(["a", "b", "c", "d", "e"], points, REF, 0.8) == ["a", "b", "c", "e"]
    # neither adds to the all-time front; on their own front d adds 1.85 (3.7 x 0.5), a 1.8
    assert promoted(["a", "d"], points, REF, 0.5) == ["d"]
    assert promoted(["a", "d"], points, REF, 0.1, everyone=True) == ["a", "d"]


def test_front_promotion_takes_only_genomes_that_enter_or_extend_the_all_time_front():
    points = {"old": (0.10, 2.0), "a": (0.12, 2.0), "b": (0.09, 2.5), "c": (0.20, 1.0),
              "d": (0.30, 1.5), "e": (0.25, 0.9)}
    # b, c, e add hypervolume to the all-time front; a and d do not, however large the budget
    assert promoted(["a", "b", "c", "d", "e"], points, REF, 1.0, front_only=True) == ["b", "c", "e"]
    assert len(promoted(["a", "b", "c", "d", "e"], points, REF, 0.34, front_only=True)) == 2
    assert promoted(["a", "d"], points, REF, 1.0, front_only=True) == []  # none: nothing goes on
    assert promoted(["a", "d"], points, REF, 0.1, everyone=True, front_only=True) == ["a", "d"]


def test_population_promotion_judges_against_this_generations_networks_only():
    # "old" holds the all-time front at this rung, but is no longer in the population: against
    # it nothing new goes on; against the population ("elite" and the candidates) a and d do
    points = {"old": (0.05, 0.5), "elite": (0.30, 2.0), "a": (0.12, 2.0), "d": (0.35, 1.0),
              "f": (0.40, 2.5)}
    assert promoted(["a", "d", "f"], points, REF, 1.0, front_only=True) == []
    assert promoted(["a", "d", "f"], points, REF, 1.0, front_only=True,
                    within=["elite", "a", "d", "f"]) == ["a", "d"]
    # still at most ceil(promote x candidates), the largest contribution first: d adds the strip
    # below LOC 2 (3.65 x 1), a the one below the elite's loss (0.18 x 10)
    assert promoted(["a", "d", "f"], points, REF, 0.1, front_only=True, within=["elite"]) == ["d"]
    assert promoted(["f"], points, REF, 1.0, front_only=True, within=["elite"]) == []  # dominated


def test_the_budget_rounds_up():
    points = {"a": (0.2, 1.0), "b": (0.3, 2.0)}
    assert promoted(["a", "b"], points, REF, 0.01) == ["a"]


def test_a_promote_multiple_fills_the_idle_slots_with_the_next_ranked():
    points = {"old": (0.10, 2.0), "a": (0.12, 2.0), "b": (0.09, 2.5), "c": (0.20, 1.0),
              "d": (0.30, 1.5), "e": (0.25, 0.9)}
    every = ["a", "b", "c", "d", "e"]
    # front only: b, c, e enter; a multiple of 2 adds a, the next by its own-front contribution
    assert promoted(every, points, REF, 1.0, front_only=True, multiple=2) == ["a", "b", "c", "e"]
    assert promoted(every, points, REF, 1.0, front_only=True, multiple=1) == ["b", "c", "e"]
    assert promoted(every, points, REF, 1.0, front_only=True, multiple=4) == ["a", "b", "c", "e"]
    # ceil(0.34 x 5) = 2 is a multiple of 2 already; of 3: one more; past the candidates: all
    assert len(promoted(every, points, REF, 0.34, front_only=True, multiple=2)) == 2
    assert len(promoted(every, points, REF, 0.34, front_only=True, multiple=3)) == 3
    assert promoted(every, points, REF, 1.0, multiple=4) == every
    # none chosen stays none (nothing enters the front: the budget follows the search)
    assert promoted(["a", "d"], points, REF, 1.0, front_only=True, multiple=2) == []
    assert promoted(["a", "d"], points, REF, 0.5, multiple=2) == ["a", "d"]


def test_promote_multiple_must_be_at_least_one(stub_config):
    with pytest.raises(MoncaeError, match="`promote_multiple` must be >= 1"):
        stub_config(**RUNGS, promote_multiple=0)


# -- in the search ------------------------------------------------------------------------------
def with_model(task):
    """The surrogate, plus stand-in model bytes naming the training (key and rung)."""
    return EvalResult(surrogate_task(task).record, f"{task.key}@{task.rung}".encode())


def test_rungs_search_promotes_a_few_and_measures_the_final_population_at_full_fidelity(stub_config):
    seen = []

    def task_fn(task):
        seen.append(task)
        return with_model(task)

    result = run_search(stub_config(**RUNGS), task_fn=task_fn)
    ev = pd.read_csv(result.run_dir / "evaluations.csv")
    low, top = ev[ev["rung"] == 0], ev[ev["rung"] == 1]
    assert low["genome_key"].is_unique and top["genome_key"].is_unique
    assert set(top["genome_key"]) <= set(low["genome_key"])
    assert (low["train_images"] == 40).all() and (low["epochs"] == 1).all()
    assert (top["train_images"] > 40).all()
    last = ev["generation"].max()
    for gen, rows in low.groupby("generation"):
        promoted_now = top[(top["generation"] == gen)]
        if gen < last:  # successive halving: ceil(0.34 x new genomes) go on
            assert len(promoted_now) == math.ceil(0.34 * len(rows))
    # every promotion continued from the rung-0 model of the same genome
    for task in seen:
        if task.rung == 1:
            assert task.init_model == f"{task.key}@0".encode()
    # the final population is all at the top rung; stopped genomes had fitness 0
    assert all(r.ok and r.rung == 1 for r in result.records)
    pop = pd.read_csv(result.run_dir / "population.csv")
    assert (pop.loc[pop["rung"] == 0, "fitness"] == 0).all()
    front = pd.read_csv(result.run_dir / "pareto_front.csv")
    assert set(front["genome_key"]) <= set(top["genome_key"])
    assert not (result.run_dir / "models" / "rungs").exists()  # removed at the end, with its files
    gens = pd.read_csv(result.run_dir / "generations.csv")
    assert gens["trainings_total"].iloc[-1] == len(ev)
    assert gens["image_epochs_total"].iloc[-1] == (ev["train_images"] * ev["epochs"]).sum()


def test_front_promotion_in_the_search_promotes_only_front_entries(stub_config):
    result = run_search(stub_config(**{**RUNGS, "promote": 1.0}, promotion="front"), task_fn=with_model)
    ev = pd.read_csv(result.run_dir / "evaluations.csv")
    low, top = ev[ev["rung"] == 0], ev[ev["rung"] == 1]
    last = ev["generation"].max()
    seen: list[tuple[float, float]] = []
    counts = []
    for gen, rows in low.groupby("generation"):
        before = list(seen)
        seen += list(zip(rows["rec_loss"], rows["loc"]))
        if gen == last:
            continue
        went_on = set(top[top["generation"] == gen]["genome_key"])
        counts.append((len(went_on), len(rows)))
        for _, row in rows.iterrows():  # on the rung-0 front of everything so far, or not
            point = (row["rec_loss"], row["loc"])
            dominated = any(p[0] <= point[0] and p[1] <= point[1] and p != point for p in seen)
            assert (row["genome_key"] in went_on) == (not dominated), (gen, row["genome_key"], before)
    assert any(n < total for n, total in counts)  # fewer than everyone, with promote = 1.0


def _dominated(point, others) -> bool:
    """Some other point is no worse in both objectives (and not the same point)."""
    return any(p[0] <= point[0] and p[1] <= point[1] and p != point for p in others)


def test_population_promotion_in_the_search_judges_against_the_generations_population(stub_config):
    result = run_search(stub_config(**{**RUNGS, "promote": 1.0}, promotion="population"),
                        task_fn=with_model)
    ev = pd.read_csv(result.run_dir / "evaluations.csv")
    pop = pd.read_csv(result.run_dir / "population.csv")
    low, top = ev[ev["rung"] == 0], ev[ev["rung"] == 1]
    at_rung0 = {k: (r["rec_loss"], r["loc"]) for k, r in low.set_index("genome_key").iterrows()}
    beyond_front = 0  # promoted although an earlier rung-0 point outside the population dominates it
    for gen, rows in low.groupby("generation"):
        if gen == ev["generation"].max():
            continue
        went_on = set(top[top["generation"] == gen]["genome_key"])
        population = [at_rung0[k] for k in pop[pop["generation"] == gen]["genome_key"] if k in at_rung0]
        earlier = [at_rung0[k] for k in low[low["generation"] < gen]["genome_key"]]
        for _, row in rows.iterrows():
            point = (row["rec_loss"], row["loc"])
            assert (row["genome_key"] in went_on) == (not _dominated(point, population)), (gen, row["genome_key"])
            beyond_front += row["genome_key"] in went_on and _dominated(point, earlier)
    assert beyond_front > 0  # the rule differs from `front` on this run


def test_the_front_rule_promotes_a_network_a_dominated_one_would_shield():
    # "old" (trained earlier) has a's LOC and a worse loss: under the paper's formula it leaves a
    # only a sliver, so c goes first; measured against the front, a's whole box counts
    points = {"old": (0.31, 0.30), "a": (0.30, 0.30), "c": (0.20, 1.20)}
    assert promoted(["a", "c"], points, REF, 0.5) == ["c"]
    assert promoted(["a", "c"], points, REF, 0.5, rule="front") == ["a"]


def _promoted_per_generation(run_dir) -> list[tuple[int, int]]:
    """(promoted, candidates) per generation but the last, from evaluations.csv."""
    ev = pd.read_csv(run_dir / "evaluations.csv")
    low, top = ev[ev["rung"] == 0], ev[ev["rung"] == 1]
    return [(int((top["generation"] == gen).sum()), len(rows))
            for gen, rows in low.groupby("generation") if gen < ev["generation"].max()]


def test_promote_multiple_in_the_search_rounds_each_promotion_up(stub_config, tmp_path):
    settings = {**RUNGS, "promote": 0.5, "promotion": "population", "generations": 8}
    plain = _promoted_per_generation(run_search(stub_config(tmp_path / "one", **settings),
                                                task_fn=with_model).run_dir)
    paired = _promoted_per_generation(run_search(stub_config(tmp_path / "two", **settings, promote_multiple=2),
                                                 task_fn=with_model).run_dir)
    assert any(n % 2 for n, _ in plain)  # without it some rungs leave a worker idle
    assert paired[0][0] == plain[0][0] + plain[0][0] % 2  # generation 0: the same draw, rounded up
    assert all(n % 2 == 0 or n == total for n, total in paired), paired


def test_a_full_first_generation_promotes_all_of_it_then_the_rule_applies(stub_config, tmp_path):
    default = run_search(stub_config(tmp_path / "default", **RUNGS), task_fn=with_model)
    plain = pd.read_csv(default.run_dir / "evaluations.csv")
    result = run_search(stub_config(tmp_path / "full", **RUNGS, first_generation="full"), task_fn=with_model)
    ev = pd.read_csv(result.run_dir / "evaluations.csv")
    low, top = ev[ev["rung"] == 0], ev[ev["rung"] == 1]
    first = low[(low["generation"] == 0) & (low["status"] == "ok")]
    assert len(first) > 1 and set(top[top["generation"] == 0]["genome_key"]) == set(first["genome_key"])
    for gen, rows in low.groupby("generation"):
        if 0 < gen < ev["generation"].max():  # the others: ceil(0.34 x new genomes) go on
            assert len(top[top["generation"] == gen]) == math.ceil(0.34 * len(rows))
    # the default promotes a third of the first generation, as before
    assert len(plain[(plain["generation"] == 0) & (plain["rung"] == 1)]) == math.ceil(
        0.34 * len(plain[(plain["generation"] == 0) & (plain["rung"] == 0)]))


def test_first_generation_must_be_rungs_or_full(stub_config):
    with pytest.raises(MoncaeError, match="`first_generation` must be one of rungs, full"):
        stub_config(**RUNGS, first_generation="all")


def test_full_fidelity_trains_each_genome_once_on_every_image(stub_config):
    result = run_search(stub_config(), task_fn=with_model)
    ev = pd.read_csv(result.run_dir / "evaluations.csv")
    assert (ev["rung"] == 0).all() and ev["genome_key"].is_unique
    assert ev["train_images"].nunique() == 1 and ev["train_images"].iloc[0] > 40


@pytest.mark.parametrize("crash_in_rung", [0, 1])
def test_a_crash_mid_rung_resumes_to_the_uninterrupted_run(stub_config, tmp_path, crash_in_rung):
    reference = run_search(stub_config(tmp_path / "ref", **RUNGS), task_fn=with_model).run_dir
    ev = pd.read_csv(reference / "evaluations.csv")
    # the first training of that rung in generation 1: everything before it is journaled
    target = ev[(ev["generation"] == 1) & (ev["rung"] == crash_in_rung)].index[0]
    config = stub_config(tmp_path / "crash", **RUNGS)
    resume_after_crash(config, target, with_model)
    assert_same(reference, config.run_dir)


def test_rung_settings_are_checked(stub_config):
    with pytest.raises(MoncaeError, match="needs at least one lower rung"):
        stub_config(fidelity="rungs")
    with pytest.raises(MoncaeError, match="must be in"):
        stub_config(**{**RUNGS, "promote": 1.5})
    config = stub_config(**{**RUNGS, "rungs": [[1, 5000]]})  # the tiny dataset has < 100 images
    with pytest.raises(MoncaeError, match="use fewer in `rungs`"):
        run_search(config, task_fn=with_model)
    assert not config.run_dir.exists()  # nothing written
    with pytest.raises(MoncaeError, match="use fewer in `rungs`"):  # what bench/budget.py checks first
        check_rungs(stub_config(**{**RUNGS, "rungs": [[1, 64]]}), 64)
    check_rungs(stub_config(**{**RUNGS, "rungs": [[1, 63]]}), 64)


def test_inherit_hands_each_child_its_parents_trained_models(stub_config):
    seen = []

    def task_fn(task):
        seen.append(task)
        return with_model(task)

    result = run_search(stub_config(inherit=True), task_fn=task_fn)
    shape = (16, 16, 1)
    children = [t for t in seen if t.genome.lineage is not None]
    assert children and all(t.rung == 0 for t in seen)
    for task in children:
        parent_keys = [p.key_for(shape) for p in task.genome.parents()]
        assert task.parent_models == tuple(f"{k}@0".encode() for k in parent_keys)
    assert not [t for t in seen if t.genome.lineage is None and t.parent_models]
    plain = []
    run_search(stub_config(result.run_dir.parents[1] / "plain"),
               task_fn=lambda t: plain.append(t) or with_model(t))
    assert not any(t.parent_models for t in plain)  # off by default


def test_the_progress_hears_how_many_of_the_population_are_below_the_top_rung(stub_config, tmp_path):
    from moncae.search.loop import SearchProgress

    class Heard(SearchProgress):
        def __init__(self):
            self.counts = []

        def population_rungs(self, below_top):
            self.counts.append(below_top)

    heard = Heard()
    result = run_search(stub_config(tmp_path / "rungs", **RUNGS), task_fn=with_model, progress=heard)
    pop = pd.read_csv(result.run_dir / "population.csv")
    below = [pop[(pop["generation"] == g) & (pop["rung"] == 0)]["genome_key"].nunique()
             for g in sorted(pop["generation"].unique())]
    assert heard.counts == below and below[-1] == 0 and max(below) > 0  # the last promotes all
    full = Heard()
    run_search(stub_config(tmp_path / "full"), task_fn=with_model, progress=full)
    assert full.counts == []  # one rung: nothing to promote


def test_two_equal_rungs_are_refused():
    with pytest.raises(MoncaeError, match="must grow"):
        rung_schedule([[2, 100], [2, 100]], 10)


def test_promotion_ties_in_both_contributions_go_to_the_lower_loss():
    ref = (4.0, 12.0)
    points = {"x": (0.1, 1.0),  # an earlier network that dominates every candidate: overall 0 each
              "c0": (0.2, 2.0), "c1": (0.5, 5.0), "c2": (0.3, 5.5)}  # c0 dominates c1, c2: own 0 each
    # 2 of 3: c0 (own front) then, of the tied c1 and c2, the lower loss c2
    assert promoted(["c1", "c2", "c0"], points, ref, 0.5) == ["c2", "c0"]
