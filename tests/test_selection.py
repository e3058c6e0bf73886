"""Parent selection, elitism and breeding (pure Python, no Keras)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from deap import base

from moncae.method.evolution import breed, elite_count, make_toolbox
from moncae.method.genome import GenomeSpace, random_genome
from moncae.method.selection import SELECTORS, elite_indices, select_paper, select_tournament

SPACE = GenomeSpace(max_blocks=3, max_filters=16)


def test_paper_selection_never_picks_a_zero_fitness_individual_when_one_is_positive():
    picks = select_paper([0.0, 2.0, 0.0, 1.0], 3000, random.Random(1))
    counts = Counter(picks)
    assert set(counts) == {1, 3}
    assert counts[1] / counts[3] == pytest.approx(2.0, rel=0.1)  # proportional to fitness


def test_paper_selection_is_uniform_when_every_fitness_is_zero():
    counts = Counter(select_paper([0.0] * 4, 4000, random.Random(2)))
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > 850


def test_tournament_takes_the_fittest_aspirant():
    fitness = [0.1, 0.5, 0.3, 0.9, 0.0]
    rng, replay = random.Random(5), random.Random(5)
    picks = select_tournament(fitness, 50, rng, size=3)
    for pick in picks:
        aspirants = [replay.randrange(5) for _ in range(3)]
        assert pick == max(aspirants, key=lambda i: fitness[i])


def test_selectors_are_deterministic_for_a_seed():
    for name, select in SELECTORS.items():
        fitness = [0.3, 0.0, 1.2, 0.7, 0.7]
        assert select(fitness, 20, random.Random(9)) == select(fitness, 20, random.Random(9)), name


def test_elite_indices_order_by_fitness_then_loss_then_position():
    assert elite_indices([1.0, 3.0, 3.0, 0.0], [0.2, 0.5, 0.4, 0.1], 3) == [2, 1, 0]
    assert elite_indices([0.0, 0.0], [0.3, 0.3], 2) == [0, 1]


@pytest.mark.parametrize(("elitism", "n", "expected"), [(0.0, 20, 0), (0.1, 20, 2), (0.01, 20, 1),
                                                          (0.25, 8, 2)])
def test_elite_count(elitism, n, expected):
    assert elite_count(elitism, n) == expected


def fixed_toolbox(children):
    """Selection that never picks the best two, and children taken from a list."""
    toolbox = base.Toolbox()
    toolbox.register("select", lambda fitness, k, rng: [2, 3])
    toolbox.register("mate", lambda a, b, rng: (children.pop(0), None))
    toolbox.register("mutate", lambda child, rng, generation: child)
    return toolbox


def test_breed_keeps_the_elite_unchanged_and_first():
    rng = random.Random(0)
    population = [random_genome(SPACE, rng) for _ in range(8)]
    children = [random_genome(SPACE, rng) for _ in range(8)]
    fitness = [0.1, 0.9, 0.0, 0.2, 0.8, 0.0, 0.3, 0.0]
    nextgen = breed(population, fitness, [0.5] * 8, 1, rng, fixed_toolbox(list(children)), 0.25)
    assert nextgen[:2] == [population[1], population[4]]
    assert nextgen[2:] == children[:6]


def test_breed_without_elitism_keeps_no_one():
    """The test above fails if elitism is switched off: this is what that looks like."""
    rng = random.Random(0)
    population = [random_genome(SPACE, rng) for _ in range(8)]
    children = [random_genome(SPACE, rng) for _ in range(8)]
    nextgen = breed(population, [0.1, 0.9, 0.0, 0.2, 0.8, 0.0, 0.3, 0.0], [0.5] * 8, 1, rng,
                    fixed_toolbox(list(children)), 0.0)
    assert population[1] not in nextgen and nextgen == children


def test_breed_with_the_real_operators_is_deterministic_and_valid():
    toolbox = make_toolbox(SPACE, "paper")
    rng = random.Random(3)
    population = [toolbox.individual(rng) for _ in range(10)]
    fitness = [random.Random(i).random() for i in range(10)]
    a = breed(population, fitness, [0.2] * 10, 4, random.Random(11), toolbox, 0.2)
    b = breed(population, fitness, [0.2] * 10, 4, random.Random(11), toolbox, 0.2)
    assert a == b and len(a) == 10
    assert all(g.space == SPACE and g.genes[0] == 1 for g in a)


SPACE = GenomeSpace(max_blocks=3, max_filters=32)


def test_the_search_elite_puts_the_lowest_loss_network_first_whatever_its_fitness():
    # the documented rule with `keys`: lowest loss first (ties: higher fitness), then by fitness
    assert elite_indices([0.9, 0.1, 0.5], [0.3, 0.1, 0.2], 2, ["a", "b", "c"]) == [1, 0]
    assert elite_indices([0.1, 0.5, 0.9], [0.1, 0.1, 0.3], 3, ["a", "b", "c"]) == [1, 2, 0]
    # without keys (plain fitness order) the rule does not apply
    assert elite_indices([0.9, 0.1, 0.5], [0.3, 0.1, 0.2], 2) == [0, 2]


def test_elite_count_rounds_to_nearest():
    assert elite_count(0.15, 10) == 2  # round(1.5) == 2 (floor would keep 1)
    assert elite_count(0.26, 10) == 3


def test_tournament_draws_three_aspirants_by_default():
    class Counting(random.Random):
        calls = 0

        def randrange(self, *args, **kwargs):
            Counting.calls += 1
            return super().randrange(*args, **kwargs)

    select_tournament([0.1, 0.2, 0.3, 0.4], 5, Counting(0))
    assert Counting.calls == 15


def _recording_toolbox(picks):
    seen = {"mate": [], "mutate": []}
    toolbox = base.Toolbox()
    toolbox.register("select", lambda fitness, k, rng: list(picks.pop(0)))

    def mate(a, b, rng):
        seen["mate"].append((a, b))
        return a, b

    def mutate(child, rng, generation):
        seen["mutate"].append(generation)
        return child

    toolbox.register("mate", mate)
    toolbox.register("mutate", mutate)
    return toolbox, seen


def test_breed_crosses_both_selected_parents_and_mutates_at_this_generation():
    rng = random.Random(0)
    population = [random_genome(SPACE, rng) for _ in range(4)]
    toolbox, seen = _recording_toolbox([(0, 1), (2, 3), (3, 0), (1, 2)])
    out = breed(population, [0.0] * 4, [0.5] * 4, 7, rng, toolbox, 0.0)
    assert len(out) == 4
    assert seen["mate"] == [(population[0], population[1]), (population[2], population[3]),
                            (population[3], population[0]), (population[1], population[2])]
    assert seen["mutate"] == [7, 7, 7, 7]  # DEvol's schedule grows with the generation


def test_breed_makes_a_generation_of_the_size_asked():
    rng = random.Random(0)
    population = [random_genome(SPACE, rng) for _ in range(4)]
    toolbox, _ = _recording_toolbox([(0, 1)] * 10)
    assert len(breed(population, [0.0] * 4, [0.5] * 4, 1, rng, toolbox, 0.0, size=6)) == 6
