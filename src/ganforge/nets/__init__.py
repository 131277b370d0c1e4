"""The networks: the assignment's (``mlp``, ``dcgan``), Radford et al.'s DCGAN (``radford``), the
class-conditional wrappers, the VAE's encoder, and the noise generators start from.

Generators map noise ``(N, noise_dim)`` (and labels ``(N,)`` when conditional) to images
``(N, C, H, W)`` in ``[-1, 1]``; discriminators map images to scores ``(N, 1)``. This package
imports nothing else of ganforge.
"""

from ganforge.nets.build import (
    ARCHITECTURES,
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
from ganforge.nets.noise import NOISE_DISTRIBUTIONS, sample_noise
from ganforge.nets.radford import RadfordDiscriminator, RadfordGenerator
from ganforge.nets.vae import VAEEncoder, reconstruct

__all__ = [
    "ARCHITECTURES",
    "CONDITIONINGS",
    "IMAGE_SHAPE",
    "INITS",
    "NATIVE_IMAGE_SHAPE",
    "NOISE_DISTRIBUTIONS",
    "AuxiliaryClassifierDiscriminator",
    "ConditionalGenerator",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "ProjectionDiscriminator",
    "RadfordDiscriminator",
    "RadfordGenerator",
    "UntrustedCode",
    "VAEEncoder",
    "apply_spectral_norm",
    "build_generator",
    "build_models",
    "check_image_shape",
    "count_parameters",
    "import_user_architecture",
    "is_user_architecture",
    "reconstruct",
    "sample_noise",
    "xavier_init_",
]
