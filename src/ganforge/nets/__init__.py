"""The networks: the assignment's (``mlp``, ``dcgan``), Radford et al.'s DCGAN (``radford``), the
residual networks of Miyato et al. 2018 (``resnet``), all described in the table
:data:`ARCHITECTURES`; the contract conditioning and the VAE rely on
(:mod:`ganforge.nets.contract`); the class-conditional wrappers, the VAE's encoder, and the noise
generators start from.

Generators map noise ``(N, noise_dim)`` (and labels ``(N,)`` when conditional) to images
``(N, C, H, W)`` in ``[-1, 1]``; discriminators map images to scores ``(N, 1)``. This package
imports nothing else of ganforge.
"""

from ganforge.nets.architectures import ARCHITECTURES, ArchitectureSpec, resolve_image_shape
from ganforge.nets.blocks import discriminator_blocks, freeze_first_blocks
from ganforge.nets.build import (
    CONDITIONINGS,
    INITS,
    NATIVE_IMAGE_SHAPE,
    UntrustedCode,
    apply_spectral_norm,
    build_generator,
    build_models,
    check_image_shape,
    count_parameters,
    import_user_architecture,
    is_user_architecture,
)
from ganforge.nets.classic import (
    IMAGE_SHAPE,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    xavier_init_,
)
from ganforge.nets.conditional import (
    AuxiliaryClassifierDiscriminator,
    ConditionalGenerator,
    ProjectionDiscriminator,
)
from ganforge.nets.contract import (
    ConditionableGenerator,
    Discriminator,
    FeatureDiscriminator,
    Generator,
    LinearHeadDiscriminator,
    check_networks,
    class_count,
    generate_images,
)
from ganforge.nets.noise import NOISE_DISTRIBUTIONS, sample_noise
from ganforge.nets.radford import RadfordDiscriminator, RadfordGenerator
from ganforge.nets.resnet import ResNetDiscriminator, ResNetGenerator
from ganforge.nets.vae import VAEEncoder, reconstruct

__all__ = [
    "ARCHITECTURES",
    "CONDITIONINGS",
    "IMAGE_SHAPE",
    "INITS",
    "NATIVE_IMAGE_SHAPE",
    "NOISE_DISTRIBUTIONS",
    "ArchitectureSpec",
    "AuxiliaryClassifierDiscriminator",
    "ConditionableGenerator",
    "ConditionalGenerator",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "Discriminator",
    "FeatureDiscriminator",
    "Generator",
    "LinearHeadDiscriminator",
    "MLPDiscriminator",
    "MLPGenerator",
    "ProjectionDiscriminator",
    "RadfordDiscriminator",
    "RadfordGenerator",
    "ResNetDiscriminator",
    "ResNetGenerator",
    "UntrustedCode",
    "VAEEncoder",
    "apply_spectral_norm",
    "build_generator",
    "build_models",
    "check_image_shape",
    "check_networks",
    "class_count",
    "count_parameters",
    "discriminator_blocks",
    "freeze_first_blocks",
    "generate_images",
    "import_user_architecture",
    "is_user_architecture",
    "reconstruct",
    "resolve_image_shape",
    "sample_noise",
    "xavier_init_",
]
