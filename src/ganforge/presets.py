"""Training presets: plain data, one dict per preset, over the defaults of :class:`TrainConfig`.

The three presets are the assignment's runs: batch 128, Adam(1e-3, betas 0.5/0.999), noise of
dimension 96, samples every 250 iterations, 10 epochs for the MLP GANs and 5 for the DCGAN.
The assignment initialises only the DCGAN's networks with Xavier-uniform weights.
"""

PRESETS: dict[str, dict] = {
    "gan": {
        "description": "vanilla GAN, MLP generator and discriminator (the assignment's part 1)",
        "architecture": "mlp",
        "loss": "gan",
        "init": "default",
        "epochs": 10,
        "eval_every": 500,
    },
    "lsgan": {
        "description": "least-squares GAN, same MLPs (the assignment's part 2)",
        "architecture": "mlp",
        "loss": "lsgan",
        "init": "default",
        "epochs": 10,
        "eval_every": 500,
    },
    "dcgan": {
        "description": "DCGAN discriminator, InfoGAN generator, BCE loss (the assignment's part 3)",
        "architecture": "dcgan",
        "loss": "gan",
        "init": "xavier",
        "epochs": 5,
        "eval_every": 500,
    },
}
