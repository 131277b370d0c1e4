"""The blocks of a discriminator, for freezing its first ones (``--freeze-d``, FreezeD).

One rule for every discriminator that keeps the
:class:`~ganforge.nets.contract.FeatureDiscriminator` contract (a ``net`` ``nn.Sequential``
ending in its linear score layer; the built-in ``mlp``, ``dcgan``, ``radford`` and ``resnet``,
and any ``module:callable`` network that keeps it, or is itself an ``nn.Sequential``):

* each child of ``net`` that holds weights begins a block, and the children without weights
  (activations, pooling, flattening) and the normalisation layers (BatchNorm, LayerNorm, ...,
  which scale what the layer before them computed) belong to the block before them (those
  before the first weight layer, to the first block);
* the last block is the score layer, together with what a conditional wrapper adds beside it
  (the projection's class embedding, AC-GAN's class head): a wrapper's ``body`` is the
  discriminator its blocks are read from, and the wrapper's own weights join the head.

So ``mlp`` has 3 blocks (two hidden layers, the head), ``dcgan`` 4 (two convolutions, the
hidden layer, the head), ``radford`` one per strided convolution then the head (4 at 32 px,
5 at 64 px), ``resnet`` one per residual block then the head (5 at 32 px, 6 at 64 px).
"""

from __future__ import annotations

from torch import nn

#: Layers that join the block before them even when they hold weights (an affine scale).
_NORMALISATIONS = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.GroupNorm,
    nn.LayerNorm,
)


def _begins_block(module: nn.Module) -> bool:
    """A layer with weights of its own, not a normalisation of the layer before it."""
    if isinstance(module, _NORMALISATIONS):
        return False
    return any(True for _ in module.parameters())


def discriminator_blocks(discriminator: nn.Module) -> list[list[nn.Module]]:
    """``discriminator``'s blocks, first to last, each a list of modules (see the module
    docstring); ``ValueError`` in one line for a discriminator without a ``net`` sequence."""
    body, extra = discriminator, []
    while hasattr(body, "body") and not isinstance(getattr(body, "net", None), nn.Sequential):
        extra += [child for name, child in body.named_children() if name != "body"]
        body = body.body
    net = body if isinstance(body, nn.Sequential) else getattr(body, "net", None)
    if not isinstance(net, nn.Sequential):
        raise ValueError(
            f"{type(discriminator).__name__} is not a sequence of layers and has no 'net' one, so "
            "its blocks are not known; --freeze-d needs one of them"
        )
    blocks: list[list[nn.Module]] = []
    pending: list[nn.Module] = []  # weightless layers before the first weight layer
    for child in net:
        if _begins_block(child):
            blocks.append([*pending, child])
            pending = []
        elif blocks:
            blocks[-1].append(child)
        else:
            pending.append(child)
    if not blocks:
        raise ValueError(f"{type(discriminator).__name__} has no layer with weights")
    blocks[-1] += extra
    return blocks


def freeze_first_blocks(discriminator: nn.Module, count: int) -> int:
    """Freeze (no gradients, so no optimizer updates) the first ``count`` blocks of
    ``discriminator`` (:func:`discriminator_blocks`); returns the parameters frozen.
    ``ValueError`` in one line unless a block is left to train: a D with nothing to train
    cannot learn the new data (and DDP refuses to wrap it)."""
    blocks = discriminator_blocks(discriminator)
    if count >= len(blocks):
        raise ValueError(
            f"freeze_d {count}: this discriminator ({type(discriminator).__name__}) has "
            f"{len(blocks)} blocks, the last its score layer, which must train; give at most "
            f"{len(blocks) - 1}"
        )
    frozen = 0
    for block in blocks[:count]:
        for module in block:
            for parameter in module.parameters():
                parameter.requires_grad_(False)
                frozen += parameter.numel()
    return frozen
