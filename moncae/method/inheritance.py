"""Which parent each layer of a crossover child inherits its starting weights from.

Pure Python (no Keras): the plan is read off the child's `Lineage` (its two parents' genes and
the crossover cut `p`: child `genes[:p]` from `parents[0]`, `genes[p:]` from `parents[1]`);
`moncae.model.inherit` turns it into layer names and copies the weights.

The rule (also in the README):

- **Block layers** (`enc{i}_conv`, `enc{i}_bn`, `dec{i}_conv`, for the child's i-th *active*
  block, which is gene block `j`): from the parent that gave block `j`'s `filters` gene (gene
  `7j + 1`). A block wholly before or after the cut has one parent anyway; a block the cut
  splits goes to the parent that fixed its number of filters, which sizes every one of its
  weights (and the next block's input). In that parent the same gene block `j` is taken, at
  that parent's own layer index (its count of active blocks before `j`): `enc{i}` of the child
  may be `enc{i'}` of the parent. A gene block inactive in that parent has no layer there, so
  nothing is inherited for it.
- **`latent` and `dec_dense`** (the dense bottleneck, `dense` space): from the parent that gave
  the first gene after the blocks (the latent gene, which fixes the units; in the paper space,
  which has no such layers, the optimizer gene).
- **`reconstruction`** (the output conv, fed by `dec0_conv`): from block 0's parent.

The plan only names candidates: a layer is inherited only when the parent's layer exists and
every weight shape equals the child's (mutation, filter capping, a different pooling history or
a cut through a block may change them); everything else keeps the child's seeded initial
weights. Layer indices count active blocks only, so the plan does not depend on the input
shape (pooling dropped for a 1-pixel map removes a layer without weights, never a block).
"""

from __future__ import annotations

from dataclasses import dataclass

from moncae.method.genome import GENES_PER_BLOCK, Genome

__all__ = ["BlockSource", "InheritancePlan", "inheritance_plan"]

FILTERS_GENE = 1  # position of `filters` within a block's genes (BLOCK_FIELDS)


@dataclass(frozen=True)
class BlockSource:
    """Where the child's active block `layer` (gene block `block`) takes its weights from."""

    layer: int  # the child's layer index i: enc{i}_conv, enc{i}_bn, dec{i}_conv
    block: int  # the gene block (position in the gene list), the same in child and parents
    parent: int  # 0: lineage.parents[0], 1: lineage.parents[1]
    parent_layer: int | None  # that parent's layer index for gene block `block`; None: inactive there


@dataclass(frozen=True)
class InheritancePlan:
    """One candidate parent layer per layer of the child (see the module docstring)."""

    blocks: tuple[BlockSource, ...]  # one per active block of the child, in layer order
    latent_parent: int  # parent of `latent` and `dec_dense`
    output_parent: int  # parent of `reconstruction`


def _layer_index(genes: tuple[int, ...], block: int) -> int | None:
    """The layer index gene block `block` has in a network of `genes` (None: inactive)."""
    if genes[block * GENES_PER_BLOCK] != 1:
        return None
    return sum(genes[j * GENES_PER_BLOCK] == 1 for j in range(block))


def inheritance_plan(child: Genome) -> InheritancePlan | None:
    """Which parent (and which of its layers) each of `child`'s layers inherits from; None for
    a genome without lineage (a random one)."""
    lineage = child.lineage
    if lineage is None:
        return None
    space = child.space
    sources = []
    for block in range(space.max_blocks):
        if not child.is_active(block):
            continue
        parent = lineage.parent_of_gene(block * GENES_PER_BLOCK + FILTERS_GENE)
        sources.append(BlockSource(len(sources), block, parent,
                                   _layer_index(lineage.parents[parent], block)))
    return InheritancePlan(tuple(sources), latent_parent=lineage.parent_of_gene(space.n_block_genes),
                           output_parent=sources[0].parent)
